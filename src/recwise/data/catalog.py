"""Every dataset recwise reads, grouped by the tasks that use it (``recwise data list``)."""

from __future__ import annotations

__all__ = ["catalog"]


def catalog() -> dict[str, list[tuple[str, str]]]:
    """``{group: [(name, description), ...]}`` for the multi-scenario, sequential and selection loaders."""
    from recwise.data.datasets import dataset_info, list_datasets
    from recwise.data.datasets.fs_tables import FS_DATASETS
    from recwise.data.retrieval import RETRIEVAL_DATASETS
    from recwise.data.seq_datasets import SEQ_DATASETS

    def describe(obj: object) -> str:
        return str(getattr(obj, "description", "") or getattr(obj, "title", "") or "")

    return {
        "multi-scenario CTR (run/bench msr)": [(n, dataset_info(n).description) for n in list_datasets()],
        "sequential (run/bench sequential, pad, llmers)": [(n, describe(i)) for n, i in SEQ_DATASETS.items()],
        "feature selection (run/bench selection)": [(n, describe(i)) for n, i in FS_DATASETS.items()],
        "retrieval (run/bench retrieval; any BEIR folder with --data-dir)": [
            (n, s.description) for n, s in RETRIEVAL_DATASETS.items()],
    }
