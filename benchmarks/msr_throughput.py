"""Training throughput of recwise's MMoE against torch-rechub 0.9.0 on the same MovieLens-100K split.

torch-rechub 0.9.0 is the framework whose DataGenerator and CTRTrainer Scenario-Wise Rec copies.
One run trains, on identical rows (recwise's fixed split, exported to a temporary .npz):

* ``recwise``: recwise's Trainer on recwise's MMoE (samples/s from the per-epoch ``train_seconds``,
  which exclude validation);
* ``recwise bare``: a fresh instance of the same nn.Module (same seed) driven by a bare loop over
  pre-built tensors (randperm, index_select, BCE-with-logits, the same Adam): the compute ceiling;
* ``torch-rechub pandas`` / ``numpy``: torch-rechub's MMOE (one task) fed by ``DataGenerator`` from
  a pandas DataFrame (Scenario-Wise Rec's scripts) or from numpy arrays (its fast path), trained by
  ``CTRTrainer`` (train time = the ``train_one_epoch`` calls);
* ``torch-rechub bare``: torch-rechub's module in a bare loop, for reference;
* ``... per-scenario heads``: torch-rechub's MMOE with one gate and tower per scenario (each row
  takes its own scenario's output), which is recwise's and Scenario-Wise Rec's MMoE; numpy-fed and
  bare. The one-task MMOE above is the module the anchor figures were measured with, and it does
  less work per row (one gate and tower instead of three).

The peer runs in its own virtual environment (created once in ``benchmarks/.venvs/torch-rechub``)
as a subprocess. Each repeat runs every variant once, interleaved, and ratios are taken per repeat,
so a slow period of the machine hits both sides of a ratio alike. Medians [min-max] are printed.

    .venv/bin/python benchmarks/msr_throughput.py                # 5 epochs, 3 repeats, 2 threads
    .venv/bin/python benchmarks/msr_throughput.py --quick        # smoke run: 1 epoch, 1 repeat
    .venv/bin/python benchmarks/msr_throughput.py --json out.json --data-dir /path/to/ml-100k
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

HERE = Path(__file__).resolve().parent
PEER_SCRIPT = HERE / "_peer_torch_rechub.py"
PEER_VENV = HERE / ".venvs" / "torch-rechub"
PEER_MODES = ("pandas", "numpy", "bare", "numpy_scen", "bare_scen")
PEER_REQUIREMENTS = ["torch==2.13.0", "torch-rechub==0.9.0", "pandas", "scikit-learn"]

# Figures measured on the project machine (2 vCPU, 2 threads, MMoE embed 16, batch 4096, 3 epochs;
# shared/reference/peers-measured.md, Task 1), for orientation only: re-run baselines in the same run.
ANCHORS = {"pandas": 9_386, "numpy": 53_005, "peer_bare": 297_140}
TARGETS = {"vs_pandas": 10.0, "vs_numpy": 3.0, "vs_bare": 0.90, "auc_gap": 0.003}


# ----------------------------------------------------------------------------------- peer venv


def peer_python(explicit: str | None) -> Path:
    """torch-rechub's interpreter: ``--peer-python``, else the cached venv (created on first use)."""
    if explicit:
        return Path(explicit)
    py = PEER_VENV / "bin" / "python"
    probe = "import torch, torch_rechub, pandas, sklearn; assert torch.__version__.startswith('2.13.0')"
    check = [str(py), "-c", probe]
    if py.exists() and subprocess.run(check, capture_output=True).returncode == 0:
        return py
    print(f"creating torch-rechub's environment in {PEER_VENV} (once) ...", file=sys.stderr, flush=True)
    base = getattr(sys, "_base_executable", sys.executable)
    subprocess.run([base, "-m", "venv", str(PEER_VENV)], check=True)
    # torch pinned: an unpinned torch pulls a CUDA build
    subprocess.run([str(py), "-m", "pip", "install", "--quiet", *PEER_REQUIREMENTS], check=True)
    subprocess.run(check, check=True)
    return py


def run_peer(py: Path, npz: Path, args: argparse.Namespace, modes: list[str]) -> dict[str, Any]:
    cmd = [str(py), str(PEER_SCRIPT), "--data", str(npz), "--epochs", str(args.epochs),
           "--batch-size", str(args.batch_size), "--threads", str(args.threads), "--seed", str(args.seed),
           "--embed-dim", str(args.embed_dim), "--modes", ",".join(modes)]
    env = {**os.environ, "OMP_NUM_THREADS": str(args.threads), "MKL_NUM_THREADS": str(args.threads)}
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if proc.returncode != 0:
        tail = "\n".join(proc.stderr.strip().splitlines()[-25:])
        raise SystemExit(f"torch-rechub run failed (exit {proc.returncode}):\n{tail}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


# ------------------------------------------------------------------------------------- data


def export_rows(prepared: Any, path: Path) -> dict[str, int]:
    """Write the label-encoded columns of each split to ``path`` (.npz) for the peer."""
    schema = prepared.table.schema
    sparse = [f.name for f in schema.sparse]
    dense = [f.name for f in schema.dense]
    arrays: dict[str, np.ndarray] = {
        "sparse_names": np.array(sparse), "dense_names": np.array(dense),
        "vocab": np.array([f.vocab_size for f in schema.sparse], dtype=np.int64),
        "n_scenarios": np.array(schema.num_scenarios),
    }
    sizes = {}
    for split in ("train", "val", "test"):
        part = prepared.part(split)
        sizes[split] = len(part)
        for name in sparse:
            arrays[f"{split}/{name}"] = np.asarray(part.columns[name], dtype=np.int64)
        for name in dense:
            arrays[f"{split}/{name}"] = np.asarray(part.columns[name], dtype=np.float32)
        arrays[f"{split}/label"] = np.asarray(part.columns[schema.label.name], dtype=np.float32)
        arrays[f"{split}/scenario"] = np.asarray(part.columns[schema.scenario.name], dtype=np.int64)
    np.savez(path, **arrays)
    return sizes


# ---------------------------------------------------------------------------------- recwise


def run_recwise(prepared: Any, args: argparse.Namespace) -> dict[str, Any]:
    """recwise's Trainer on recwise's MMoE, as ``recwise.tasks.msr.run`` drives it."""
    from recwise.models.msr.mmoe import MMoE
    from recwise.tasks.msr import bce_loss, evaluate
    from recwise.train import TrainConfig, Trainer, seed_everything

    schema = prepared.table.schema
    train, val, test = (prepared.part(s).tensors() for s in ("train", "val", "test"))
    n_scen = schema.num_scenarios
    tcfg = TrainConfig(epochs=args.epochs, batch_size=args.batch_size, lr=1e-3, weight_decay=1e-5,
                       patience=args.epochs + 1, seed=args.seed, device="cpu")
    seed_everything(args.seed)
    model = MMoE(schema, MMoE.Config(embed_dim=args.embed_dim))

    def monitor(m: nn.Module) -> float:
        return evaluate(m, val, n_scen, tcfg.eval_batch_size)["all"]["auc"]

    trainer = Trainer(model, tcfg, loss_fn=bce_loss, monitor=monitor, mode="max", progress=False)
    t0 = time.perf_counter()
    result = trainer.fit(train)
    wall = time.perf_counter() - t0
    test_auc = evaluate(model, test, n_scen, tcfg.eval_batch_size)["all"]["auc"]
    epoch_s = [h["train_seconds"] for h in result.history]
    return {"train_seconds": result.train_seconds, "epoch_seconds": epoch_s, "wall_seconds": wall,
            "samples_per_second": result.train_samples / max(result.train_seconds, 1e-9),
            "test_auc": float(test_auc), "epochs": len(epoch_s), "best_epoch": result.best_epoch}


def warm_up(prepared: Any, args: argparse.Namespace, steps: int = 3) -> None:
    """A few steps of a throwaway model, so the first measured run does not pay the process's cold start."""
    from recwise.models.msr.mmoe import MMoE

    train = prepared.part("train").tensors()
    batch = {k: v[: args.batch_size] for k, v in train.items()}
    model = MMoE(prepared.table.schema, MMoE.Config(embed_dim=args.embed_dim))
    opt = torch.optim.Adam(model.parameters())
    for _ in range(steps):
        loss = nn.functional.binary_cross_entropy_with_logits(model(batch), batch["label"])
        opt.zero_grad()
        loss.backward()
        opt.step()


def run_recwise_bare(prepared: Any, args: argparse.Namespace) -> dict[str, Any]:
    """The same nn.Module (fresh, same seed) in a bare loop over pre-built tensors: the ceiling."""
    from recwise.models.msr.mmoe import MMoE
    from recwise.tasks.msr import evaluate
    from recwise.train import seed_everything

    schema = prepared.table.schema
    train, test = prepared.part("train").tensors(), prepared.part("test").tensors()
    seed_everything(args.seed)
    model = MMoE(schema, MMoE.Config(embed_dim=args.embed_dim))
    opt = torch.optim.Adam(model.parameters(), lr=1e-3, weight_decay=1e-5)
    bs, n = args.batch_size, len(train["label"])
    epoch_s = []
    t_all = time.perf_counter()
    for _ in range(args.epochs):
        model.train()
        t0 = time.perf_counter()
        perm = torch.randperm(n)
        for s in range(0, n, bs):
            idx = perm[s : s + bs]
            batch = {k: v.index_select(0, idx) for k, v in train.items()}
            loss = nn.functional.binary_cross_entropy_with_logits(model(batch), batch["label"])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
        epoch_s.append(time.perf_counter() - t0)
    wall = time.perf_counter() - t_all
    test_auc = evaluate(model, test, schema.num_scenarios, 16384)["all"]["auc"]
    return {"train_seconds": float(sum(epoch_s)), "epoch_seconds": epoch_s, "wall_seconds": wall,
            "samples_per_second": n * len(epoch_s) / max(sum(epoch_s), 1e-9), "test_auc": float(test_auc),
            "epochs": len(epoch_s)}


# ---------------------------------------------------------------------------------- reporting


def summary(values: list[float]) -> dict[str, float]:
    return {"median": statistics.median(values), "min": min(values), "max": max(values)}


def fmt(s: dict[str, float], spec: str, n: int) -> str:
    if n == 1:
        return format(s["median"], spec)
    return f"{format(s['median'], spec)} [{format(s['min'], spec)}-{format(s['max'], spec)}]"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--epochs", type=int, default=5, help="epochs per training run, the same on every side")
    ap.add_argument("--repeats", type=int, default=3, help="runs of every variant (interleaved)")
    ap.add_argument("--threads", type=int, default=2, help="torch intra-op threads on both sides")
    ap.add_argument("--batch-size", type=int, default=4096)
    ap.add_argument("--embed-dim", type=int, default=16)
    ap.add_argument("--seed", type=int, default=2022, help="init and shuffle seed (the split seed is recwise's 2022)")
    ap.add_argument("--data-dir", default=None, help="ML-100K raw files (default: recwise's raw_dir_for('ml-100k'))")
    ap.add_argument("--peer-python", default=None, help="an interpreter with torch-rechub 0.9.0 (default: own venv)")
    ap.add_argument("--no-peer", action="store_true", help="recwise and its bare loop only")
    ap.add_argument("--peer-modes", default=",".join(PEER_MODES),
                    help=f"torch-rechub variants to run (default: all of {','.join(PEER_MODES)})")
    ap.add_argument("--quick", action="store_true", help="smoke run: 1 epoch, 1 repeat")
    ap.add_argument("--json", default=None, metavar="PATH", help="write every figure and ratio here")
    args = ap.parse_args(argv)
    if args.quick:
        args.epochs, args.repeats = 1, 1

    torch.set_num_threads(args.threads)
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else 0.0
    if load > 0.5:
        print(f"warning: load average {load:.1f} before start. On a busy machine, {args.threads} intra-op thread(s) "
              "spin against other processes and timings can be many times too low: measure on a quiet machine.",
              file=sys.stderr, flush=True)
    from recwise.data.datasets import prepare, raw_dir_for

    raw = raw_dir_for("ml-100k", args.data_dir)
    prepared = prepare("ml-100k", raw)
    py = None if args.no_peer else peer_python(args.peer_python)
    peer_modes = [m for m in args.peer_modes.split(",") if m]
    unknown = sorted(set(peer_modes) - set(PEER_MODES))
    if unknown:
        ap.error(f"--peer-modes: unknown {unknown}; choose from {','.join(PEER_MODES)}")
    peer_modes = [m for m in PEER_MODES if m in peer_modes]
    if not peer_modes:
        py = None

    runs: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="msr-throughput-") as tmp:
        npz = Path(tmp) / "ml100k-split.npz"
        sizes = export_rows(prepared, npz)
        print(f"MovieLens-100K from {raw}: train/val/test {sizes['train']:,}/{sizes['val']:,}/{sizes['test']:,} rows; "
              f"MMoE embed {args.embed_dim}, batch {args.batch_size}, {args.epochs} epoch(s), "
              f"{args.repeats} repeat(s), {args.threads} thread(s)", flush=True)
        warm_up(prepared, args)
        for r in range(args.repeats):
            one: dict[str, Any] = {}
            # alternate which of the two goes first, so neither always gets the warmer caches
            for key in (("recwise", "recwise_bare") if r % 2 == 0 else ("recwise_bare", "recwise")):
                one[key] = run_recwise(prepared, args) if key == "recwise" else run_recwise_bare(prepared, args)
            if py is not None:
                peer = run_peer(py, npz, args, peer_modes)
                one["peer_info"] = {k: v for k, v in peer.items() if k not in peer_modes}
                for m in peer_modes:
                    one[f"peer_{m}"] = peer[m]
            runs.append(one)
            line = ", ".join(f"{k} {v['samples_per_second']:,.0f}/s" for k, v in sorted(one.items())
                             if k != "peer_info")
            print(f"  repeat {r + 1}/{args.repeats}: {line}", flush=True)

    variants = [("recwise", "recwise Trainer"), ("recwise_bare", "recwise module, bare loop"),
                ("peer_pandas", "torch-rechub, pandas-fed"), ("peer_numpy", "torch-rechub, numpy-fed"),
                ("peer_bare", "torch-rechub module, bare loop"),
                ("peer_numpy_scen", "torch-rechub per-scen., numpy"),
                ("peer_bare_scen", "torch-rechub per-scen., bare")]
    variants = [(k, label) for k, label in variants if k in runs[0]]
    n = args.repeats
    table = {}
    for key, _ in variants:
        table[key] = {
            "samples_per_second": summary([r[key]["samples_per_second"] for r in runs]),
            "seconds_per_epoch": summary([r[key]["train_seconds"] / r[key]["epochs"] for r in runs]),
            "test_auc": summary([r[key]["test_auc"] for r in runs]),
        }
    ratios: dict[str, dict[str, float]] = {}

    def per_repeat(num: str, den: str) -> dict[str, float]:
        return summary([r[num]["samples_per_second"] / r[den]["samples_per_second"] for r in runs])

    ratios["recwise / recwise bare"] = per_repeat("recwise", "recwise_bare")
    if "peer_pandas" in table:
        ratios["recwise / torch-rechub pandas-fed"] = per_repeat("recwise", "peer_pandas")
    if "peer_numpy" in table:
        ratios["recwise / torch-rechub numpy-fed"] = per_repeat("recwise", "peer_numpy")
    if "peer_bare" in table:
        ratios["recwise / torch-rechub bare"] = per_repeat("recwise", "peer_bare")
    if "peer_bare" in table and "peer_numpy" in table:
        ratios["torch-rechub bare / numpy-fed"] = per_repeat("peer_bare", "peer_numpy")
    if "peer_numpy_scen" in table:
        ratios["recwise / torch-rechub per-scen. numpy"] = per_repeat("recwise", "peer_numpy_scen")
    if "peer_bare_scen" in table:
        ratios["recwise bare / torch-rechub per-scen. bare"] = per_repeat("recwise_bare", "peer_bare_scen")

    print()
    print(f"{'variant':<34} {'train samples/s':>28} {'s/epoch':>20} {'test AUC':>26}")
    for key, label in variants:
        t = table[key]
        print(f"{label:<34} {fmt(t['samples_per_second'], ',.0f', n):>28} {fmt(t['seconds_per_epoch'], '.3f', n):>20} "
              f"{fmt(t['test_auc'], '.4f', n):>26}")
    print()
    print("ratios (median of per-repeat ratios):")
    for name, s in ratios.items():
        print(f"  {name:<44} {fmt(s, '.2f', n)}x")
    share = 1.0 - ratios["recwise / recwise bare"]["median"]
    print(f"  share of recwise step time outside forward/backward/optimizer: {100 * share:.1f}% (below 0: noise)")

    checks = {"recwise >= 90% of its bare loop": ratios["recwise / recwise bare"]["median"] >= TARGETS["vs_bare"]}
    auc_gap = None
    if "peer_pandas" in table:
        vs_pandas = ratios["recwise / torch-rechub pandas-fed"]["median"]
        checks["recwise >= 10x pandas-fed"] = vs_pandas >= TARGETS["vs_pandas"]
    if "peer_numpy" in table:
        checks["recwise >= 3x numpy-fed"] = ratios["recwise / torch-rechub numpy-fed"]["median"] >= TARGETS["vs_numpy"]
    ctr = "peer_numpy" if "peer_numpy" in table else "peer_pandas" if "peer_pandas" in table else None
    if ctr is not None:
        auc_gap = table["recwise"]["test_auc"]["median"] - table[ctr]["test_auc"]["median"]
        checks[f"|test AUC gap| <= {TARGETS['auc_gap']}"] = abs(auc_gap) <= TARGETS["auc_gap"]
        print(f"  test AUC recwise - torch-rechub (CTRTrainer): {auc_gap:+.4f}")
    if "peer_numpy_scen" in table:
        gap = table["recwise"]["test_auc"]["median"] - table["peer_numpy_scen"]["test_auc"]["median"]
        print(f"  test AUC recwise - torch-rechub per-scen. (same heads): {gap:+.4f}")
    print()
    print("targets:")
    for name, ok in checks.items():
        print(f"  {'PASS' if ok else 'FAIL'}  {name}")
    if auc_gap is not None and abs(auc_gap) > TARGETS["auc_gap"]:
        print(f"  note: the AUC gap exceeds {TARGETS['auc_gap']}. Both sides train the same rows for the same epochs, "
              "but batch order, initialisation and the heads differ: recwise's MMoE has one gate and tower per "
              "scenario, torch-rechub's MMOE here one task. Per-scenario heads learn more slowly in the first "
              "epoch (compare the per-scen. rows), so short runs (--quick) show a large gap.")
    if args.epochs < 3:
        print(f"  note: {args.epochs} epoch(s): the first epoch carries warm-up; use the default 5 epochs to measure.")
    print(f"anchors measured earlier on this machine (3 epochs, quiet): pandas-fed {ANCHORS['pandas']:,}/s, "
          f"numpy-fed {ANCHORS['numpy']:,}/s, torch-rechub bare {ANCHORS['peer_bare']:,}/s")

    if args.json:
        import recwise

        report = {
            "benchmark": "msr_throughput", "dataset": "ml-100k", "rows": sizes, "model": "mmoe",
            "options": {k: v for k, v in vars(args).items() if k not in ("json",)},
            "machine": {"python": platform.python_version(), "torch": torch.__version__, "cpus": os.cpu_count(),
                        "platform": platform.platform()},
            "recwise_version": recwise.__version__, "peer": runs[0].get("peer_info"),
            "table": table, "ratios": ratios, "auc_gap": auc_gap, "targets": TARGETS, "checks": checks,
            "anchors": ANCHORS, "runs": runs,
        }
        Path(args.json).write_text(json.dumps(report, indent=1))
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
