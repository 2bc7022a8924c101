"""CTR backbones of the feature-selection task (ERASE's): importing registers them under task "ctr"."""

from __future__ import annotations

import importlib

from recwise.models.ctr._base import CTRModel, feature_fields

__all__ = ["CTRModel", "feature_fields"]

for _name in ("mlp", "widedeep", "deepfm", "dcn", "fibinet"):
    _full = f"{__name__}.{_name}"
    try:
        importlib.import_module(_full)
    except ModuleNotFoundError as _exc:
        if _exc.name != _full:
            raise
