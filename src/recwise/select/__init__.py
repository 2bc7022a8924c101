"""Feature selectors: one ``FieldSelector`` API (``fit`` on a Table -> ``scores_``, ``ranking_``).

Importing this package registers every selector module that exists; ``get_selector(name)``
builds one. Shallow (scikit-learn / xgboost / lightgbm), filter (chi2, mutual information) and
permutation selectors live beside the gate (AutoField, AdaFS, OptFS, LPFS), sensitivity (SHARK,
SFS) and LLM (AltFS) ones.
"""

from __future__ import annotations

import importlib

from recwise.select.base import (
    ERASE_TRAIN,
    SELECTORS,
    FieldSelector,
    candidate_fields,
    fit_backbone,
    get_selector,
    list_selectors,
    rank_fields,
    register_selector,
    set_ranking,
)

__all__ = [
    "ERASE_TRAIN",
    "SELECTORS",
    "FieldSelector",
    "candidate_fields",
    "fit_backbone",
    "get_selector",
    "list_selectors",
    "rank_fields",
    "register_selector",
    "set_ranking",
]

_MODULES = ("shallow", "filters", "permutation", "autofield", "adafs", "optfs", "lpfs", "shark", "sfs", "altfs")

for _name in _MODULES:
    _full = f"{__name__}.{_name}"
    try:
        importlib.import_module(_full)
    except ModuleNotFoundError as _exc:  # a module not written yet; any other missing import is a real error
        if _exc.name != _full:
            raise
