"""Give the finished cells of a sequential bench folder their ``test_ranks.npz`` (cells finished before the
protocol kept every test user's rank), so that ``recwise compare`` can bootstrap Hit/NDCG/MRR@k over test users.

Each cell is re-scored from its saved best model (``model.safetensors``, kept locally, never committed) and its
file is written only when the ranks repeat every test metric of the cell's results.csv
(:func:`recwise.tasks.sequential.protocol.write_test_ranks`). Cells that have the file, or no saved model, are
left as they are and listed.

    python scripts/seq_test_ranks.py benchmarks/records/seq-sigma-paper [--data-dir DIR]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

from recwise.data.seq_datasets import load_sequences
from recwise.tasks.sequential.protocol import write_test_ranks


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("folder", type=Path, help="a `recwise bench sequential` output folder")
    ap.add_argument("--data-dir", default=None, help="the dataset's raw files (default: as `recwise bench`)")
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)  # the kept cells were scored on one thread
    loaded: dict[str, tuple] = {}
    for rec_path in sorted(args.folder.glob("cells/*/seed*/cell.json")):
        cell = rec_path.parent
        rec = json.loads(rec_path.read_text())
        if rec.get("status") != "done":
            print(f"{cell}: not finished, left")
            continue
        if (cell / "test_ranks.npz").exists():
            print(f"{cell}: has test_ranks.npz")
            continue
        if not (cell / "model.safetensors").exists():
            print(f"{cell}: no saved model, left")
            continue
        dataset = json.loads((cell / "run.json").read_text())["dataset"]
        if dataset not in loaded:
            loaded[dataset] = load_sequences(dataset, args.data_dir)
        seqs, meta = loaded[dataset]
        path = write_test_ranks(cell, seqs, data_key=str(meta.get("key")))
        print(f"{cell}: wrote {path.name} (the ranks repeat the cell's test metrics)")


if __name__ == "__main__":
    main()
