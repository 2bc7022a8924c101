"""Sequential recommenders; importing this package registers them under task ``sequential``."""

from recwise.models.seq import bert4rec, gru4rec, mamba4rec, pop, sasrec, sigma  # noqa: F401
from recwise.models.seq._base import SeqModel, last_index

__all__ = ["SeqModel", "last_index"]
