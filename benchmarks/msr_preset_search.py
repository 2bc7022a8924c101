"""Choose a dataset's training preset for every multi-scenario model on the validation split.

Each model (the logistic-regression floor included) gets the same small grid of (lr, weight decay);
the pair with the best validation AUC at one seed is its preset. Test AUC is printed for the record
but never used to choose. Writes a YAML fragment for ``src/recwise/configs/msr/<dataset>.yaml``.

    python benchmarks/msr_preset_search.py --dataset ml-100k --out results/preset-search

``--grid wide --batch-sizes 1024,512`` is the second stage run for the models that stayed below the
floor (STAR, SAR-Net) and for the floor itself: lr {1e-3, 3e-3, 1e-2} x weight decay {1e-5, 1e-4,
1e-3} at smaller batches. Results of both stages share one log, keyed by (model, lr, wd, batch).

    python benchmarks/msr_preset_search.py --models star,sarnet,lr --grid wide --batch-sizes 1024,512
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

from recwise.data.datasets import prepare
from recwise.registry import list_models
from recwise.tasks.msr import MSRRun, run

GRID = [(1e-3, 1e-5), (3e-3, 1e-5), (3e-3, 1e-4), (1e-2, 1e-4)]
WIDE = [(lr, wd) for lr in (1e-3, 3e-3, 1e-2) for wd in (1e-5, 1e-4, 1e-3)]
DEFAULT_BATCH = 4096  # TrainConfig.batch_size; log lines without a batch size ran at it


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dataset", default="ml-100k")
    ap.add_argument("--data-dir", default=None)
    ap.add_argument("--models", default="all")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--patience", type=int, default=6)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--grid", choices=["base", "wide"], default="base")
    ap.add_argument("--batch-sizes", default=str(DEFAULT_BATCH), help="comma-separated")
    ap.add_argument("--out", type=Path, default=Path("results/preset-search"))
    args = ap.parse_args()
    grid = [(lr, wd, bs) for bs in map(int, args.batch_sizes.split(","))
            for lr, wd in (GRID if args.grid == "base" else WIDE)]
    torch.set_num_threads(args.threads)
    prepared = prepare(args.dataset, args.data_dir)
    models = list_models("msr") if args.models == "all" else args.models.split(",")
    args.out.mkdir(parents=True, exist_ok=True)
    log = args.out / "search.jsonl"
    done = {}
    if log.exists():
        for line in log.read_text().splitlines():
            r = json.loads(line)
            r.setdefault("batch_size", DEFAULT_BATCH)
            done[(r["model"], r["lr"], r["weight_decay"], r["batch_size"])] = r
    for model in models:
        for lr, wd, bs in grid:
            if (model, lr, wd, bs) in done:
                continue
            t0 = time.perf_counter()
            opts = {"lr": lr, "weight_decay": wd, "batch_size": bs, "patience": args.patience,
                    "epochs": 200 if model == "lr" else 60}
            rows = run(MSRRun(args.dataset, model, args.seed), prepared, train_options=opts, progress=False)
            r = {(x.split, x.metric): x.value for x in rows if x.segment == "all"}
            rec = {"model": model, "lr": lr, "weight_decay": wd, "batch_size": bs, "val_auc": r[("val", "auc")],
                   "test_auc": r[("test", "auc")], "seconds": time.perf_counter() - t0}
            done[(model, lr, wd, bs)] = rec
            with open(log, "a") as fh:
                fh.write(json.dumps(rec) + "\n")
            print(f"{model:<13} lr {lr:<6g} wd {wd:<6g} batch {bs:<5d} val {rec['val_auc']:.4f} "
                  f"test {rec['test_auc']:.4f} {rec['seconds']:.0f}s", flush=True)
    print("\nchosen on validation AUC over every logged run:\n"
          "| model | lr | weight decay | batch | val AUC | (test AUC) |\n|---|---|---|---|---|---|")
    yaml_lines = ["models:"]
    for model in models:
        best = max((r for k, r in done.items() if k[0] == model), key=lambda r: r["val_auc"])
        bs = best["batch_size"]
        print(f"| {model} | {best['lr']:g} | {best['weight_decay']:g} | {bs} | {best['val_auc']:.4f} "
              f"| ({best['test_auc']:.4f}) |")
        batch = "" if bs == DEFAULT_BATCH else f", batch_size: {bs}"
        yaml_lines.append(f"  {model}:\n    train: {{lr: {best['lr']:g}, weight_decay: {best['weight_decay']:g}"
                          f"{batch}, patience: {args.patience}}}")
    (args.out / "preset.yaml").write_text("\n".join(yaml_lines) + "\n")
    print(f"\nYAML fragment in {args.out / 'preset.yaml'}")


if __name__ == "__main__":
    main()
