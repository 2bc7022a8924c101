"""Dataset loaders; importing this package registers them all."""

from recwise.data.datasets import aliccp, amazon, douban, kuairand, mind, movielens  # noqa: F401
from recwise.data.datasets._base import (
    DatasetInfo,
    Download,
    RawData,
    dataset_info,
    list_datasets,
    prepare,
    raw_dir_for,
)

__all__ = ["DatasetInfo", "Download", "RawData", "dataset_info", "list_datasets", "prepare", "raw_dir_for"]
