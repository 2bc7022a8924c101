"""Sequential recommenders; importing this package registers them under task ``sequential``."""

from recwise.models.seq import gru4rec, mamba4rec, sasrec, sigma  # noqa: F401
from recwise.models.seq._base import SeqModel, last_index

__all__ = ["SeqModel", "last_index"]
