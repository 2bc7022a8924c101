"""Data core: schema, columnar tables, batch loading, prepared-data cache, splits, dataset loaders."""

from recwise.data.cache import Prepared, default_root
from recwise.data.schema import Field, FieldKind, Schema
from recwise.data.split import random_split
from recwise.data.table import Batch, BatchLoader, Table

__all__ = ["Batch", "BatchLoader", "Field", "FieldKind", "Prepared", "Schema", "Table", "default_root", "random_split"]
