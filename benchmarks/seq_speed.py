"""recwise vs RecBole 1.2.1: SASRec and GRU4Rec on MovieLens-100K, CPU, in one run.

Both sides use the same data (the ml-100k atomic files, no filtering: 100,000 ratings, 943 users),
leave-one-out by time, full ranking, max length 50, hidden 64, CE over all items, Adam 1e-3,
2 threads. SASRec: 2 layers, 2 heads, inner 256, dropout 0.5/0.5; GRU4Rec: 1 layer, dropout 0.3.

Measured per model, each in its own process (peak RSS = that process's ``ru_maxrss``):

* ``recbole``: RecBole's every-prefix training (97,171 examples), batch 2048, ``--peer-epochs``
  epochs (RecBole's autograd anomaly mode switched off after the model import, as in
  shared/reference/peers-measured.md), then test metrics of the best-valid model;
* ``recwise-prefix``: the same construction and batch, ``--prefix-epochs`` epochs -> examples/s;
* ``recwise-default``: recwise's default construction (``sequence``, batch 32 windows, 1 thread by
  default: its small per-step ops stall with 2 OpenMP threads on a loaded 2-core VM), epochs
  until test NDCG@10 reaches RecBole's 5-epoch test NDCG@10 (or ``--max-epochs``); the time to
  get there counts data preparation, training and validation, not the extra test evaluations.

RecBole runs in its own environment, created once in ``benchmarks/.venvs/recbole`` (RecBole 1.2.1
needs numpy<2, pandas<2.3, setuptools<81 and ``TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD=1``).

    .venv/bin/python benchmarks/seq_speed.py                      # SASRec + GRU4Rec, 1 peer epoch
    .venv/bin/python benchmarks/seq_speed.py --peer-epochs 5      # RecBole's full 5 epochs (~16 min)
    .venv/bin/python benchmarks/seq_speed.py --models sasrec --json out.json
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
PEER_VENV = HERE / ".venvs" / "recbole"
PEER_REQUIREMENTS = ["torch==2.13.0", "numpy<2", "pandas<2.3", "setuptools<81"]
# shared/reference/peers-measured.md, Task 2 (2 threads, anomaly off, 5 epochs): for orientation and
# as the NDCG@10 target when the peer runs fewer than 5 epochs.
ANCHOR = {"sasrec": {"s_per_epoch": 181.1, "ex_per_s": 537, "ndcg@10": 0.0447, "hit@10": 0.1007, "rss_gib": 3.67},
          "gru4rec": {"s_per_epoch": 23.8, "ex_per_s": 4080, "ndcg@10": 0.0242, "hit@10": 0.0456, "rss_gib": 1.24}}
RB_PARAMS = {"sasrec": {"hidden_size": 64, "n_layers": 2, "n_heads": 2, "inner_size": 256,
                        "hidden_dropout_prob": 0.5, "attn_dropout_prob": 0.5},
             "gru4rec": {"embedding_size": 64, "hidden_size": 64, "num_layers": 1, "dropout_prob": 0.3}}


# ----------------------------------------------------------------------------- workers


class _Reached(Exception):  # noqa: N818 - a control-flow signal, not an error
    """The default-construction run reached the target NDCG@10."""


def worker_recbole(model: str, data_root: str, epochs: int) -> dict[str, Any]:
    import torch
    from recbole.config import Config
    from recbole.data import create_dataset, data_preparation
    from recbole.utils import get_model, get_trainer, init_seed

    torch.set_num_threads(2)
    t_start = time.perf_counter()
    ckpt = tempfile.mkdtemp(prefix="rb-ckpt-")
    cfg = {
        "data_path": data_root, "load_col": {"inter": ["user_id", "item_id", "rating", "timestamp"]},
        "MAX_ITEM_LIST_LENGTH": 50,
        "eval_args": {"split": {"LS": "valid_and_test"}, "order": "TO", "mode": "full", "group_by": "user"},
        "metrics": ["Hit", "NDCG", "MRR"], "topk": [10], "valid_metric": "MRR@10",
        "train_batch_size": 2048, "eval_batch_size": 4096, "learner": "adam", "learning_rate": 1e-3,
        "weight_decay": 0.0, "loss_type": "CE", "train_neg_sample_args": None, "seed": 2020,
        "reproducibility": True, "use_gpu": False, "eval_step": 1, "epochs": epochs, "stopping_step": 1000,
        "checkpoint_dir": ckpt, "show_progress": False, **RB_PARAMS[model],
    }
    name = {"sasrec": "SASRec", "gru4rec": "GRU4Rec"}[model]
    config = Config(model=name, dataset="ml-100k", config_dict=cfg)
    init_seed(config["seed"], config["reproducibility"])
    dataset = create_dataset(config)
    train, valid, test = data_preparation(config, dataset)
    init_seed(config["seed"], config["reproducibility"])
    net = get_model(config["model"])(config, train._dataset).to(config["device"])
    torch.autograd.set_detect_anomaly(False)  # RecBole's sine.py turns it on at import
    trainer = get_trainer(config["MODEL_TYPE"], config["model"])(config, net)
    times: list[float] = []
    inner = trainer._train_epoch

    def timed(*a: Any, **k: Any) -> Any:
        t0 = time.perf_counter()
        out = inner(*a, **k)
        times.append(time.perf_counter() - t0)
        return out

    trainer._train_epoch = timed
    trainer.fit(train, valid, saved=True, show_progress=False, verbose=False)
    res = trainer.evaluate(test, load_best_model=True, show_progress=False)
    n = len(train.dataset)
    return {"side": "recbole", "model": model, "epochs": len(times), "epoch_seconds": times, "train_examples": n,
            "examples_per_s": n * len(times) / sum(times), "wall_seconds": time.perf_counter() - t_start,
            "test": {k: float(v) for k, v in res.items()}}


def _recwise_setup(model: str, kind: str, threads: int) -> tuple[Any, ...]:
    import torch

    from recwise.data.seq_datasets import load_sequences
    from recwise.data.sequence import eval_inputs, make_examples, seq_schema
    from recwise.registry import get_model

    torch.set_num_threads(threads)
    seqs, _ = load_sequences("ml-100k", use_cache=False)
    train = make_examples(seqs, kind, 50, "right")
    val, test = eval_inputs(seqs, "val", 50), eval_inputs(seqs, "test", 50)
    cls = get_model("sequential", model)
    opts = {"max_len": 50} if model == "sasrec" else {}
    torch.manual_seed(0)
    net = cls(seq_schema(seqs.n_items), cls.Config(**opts))
    return seqs, train, val, test, net, torch.from_numpy(seqs.items)


def worker_recwise(model: str, kind: str, epochs: int, target: float, threads: int) -> dict[str, Any]:
    from recwise.tasks.sequential import evaluate, seq_loss
    from recwise.train import TrainConfig, Trainer
    from recwise.train.presets import sequential_train_defaults as train_defaults

    t_start = time.perf_counter()
    seqs, train, val, test, net, items = _recwise_setup(model, kind, threads)
    if kind == "prefix":  # as tasks.sequential.run does (RECWISE_KEEP_MALLOC=1 turns it off)
        from recwise.train.memory import return_freed_memory

        return_freed_memory()
    bs = train_defaults(kind)["batch_size"]
    cfg = TrainConfig(epochs=epochs, batch_size=bs, eval_batch_size=4096, lr=1e-3, weight_decay=0.0,
                      patience=1000, seed=0, device="cpu")
    log: list[dict[str, float]] = []
    excluded = [0.0]  # test evaluations (not part of the protocol's cost)
    evals = [0.0]  # validation evaluations (part of it)

    def monitor(m: Any) -> float:
        t0 = time.perf_counter()
        score = evaluate(m, val, items)["all"]["ndcg@10"]
        evals[0] += time.perf_counter() - t0
        t0 = time.perf_counter()
        t = evaluate(m, test, items)["all"]
        excluded[0] += time.perf_counter() - t0
        log.append({"elapsed": time.perf_counter() - t_start - excluded[0], "val_ndcg@10": score,
                    "test_ndcg@10": t["ndcg@10"], "test_hit@10": t["hit@10"]})
        if kind == "sequence" and t["ndcg@10"] >= target:
            raise _Reached
        return score

    trainer = Trainer(net, cfg, loss_fn=seq_loss, monitor=monitor, progress=False)
    t_fit = time.perf_counter()
    try:
        res = trainer.fit(train)
        epoch_seconds = [h["train_seconds"] for h in res.history]
    except _Reached:  # stop at the first epoch that reaches the target (the model as it is then)
        epoch_seconds = []
    if not epoch_seconds:  # per-epoch training time: total minus the evaluations, spread evenly
        epoch_seconds = [(time.perf_counter() - t_fit - excluded[0] - evals[0]) / len(log)] * len(log)
    n_rows = len(next(iter(train.values())))
    n_targets = int((train["target_seq"] > 0).sum()) if "target_seq" in train else n_rows
    reached = next((e for e in log if e["test_ndcg@10"] >= target), None)
    best = evaluate(net, test, items)["all"]
    return {"side": f"recwise-{'prefix' if kind == 'prefix' else 'default'}", "model": model, "examples": kind,
            "batch_size": bs, "epochs": len(log), "epoch_seconds": epoch_seconds,
            "train_rows": n_rows, "train_targets": n_targets,
            "examples_per_s": n_targets * len(epoch_seconds) / sum(epoch_seconds),
            "target_ndcg@10": target, "reached": reached, "log": log,
            "test_best_valid": {"hit@10": best["hit@10"], "ndcg@10": best["ndcg@10"], "mrr@10": best["mrr@10"]}}


# ----------------------------------------------------------------------------- driver


def peer_python(explicit: str | None, wheel: str | None) -> Path:
    if explicit:
        return Path(explicit)
    py = PEER_VENV / "bin" / "python"
    probe = ("import torch, recbole, numpy; "
             "assert torch.__version__.startswith('2.13.0') and recbole.__version__ == '1.2.1'")
    if py.exists() and subprocess.run([str(py), "-c", probe], capture_output=True).returncode == 0:
        return py
    print(f"creating RecBole's environment in {PEER_VENV} (once) ...", file=sys.stderr, flush=True)
    base = getattr(sys, "_base_executable", sys.executable)
    subprocess.run([base, "-m", "venv", str(PEER_VENV)], check=True)
    subprocess.run([str(py), "-m", "pip", "install", "--quiet", *PEER_REQUIREMENTS, wheel or "recbole==1.2.1"],
                   check=True)
    return py


def spawn(cmd: list[str], env: dict[str, str] | None = None, cwd: str | None = None) -> dict[str, Any]:
    """Run a worker; returns its JSON (last stdout line) plus its own peak RSS in GiB."""
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, **(env or {})}, cwd=cwd)
    out, err = proc.communicate()
    if proc.returncode != 0:
        raise RuntimeError(f"worker failed ({' '.join(cmd[:4])} ...):\n{err[-3000:]}")
    result = json.loads(out.strip().splitlines()[-1])
    result["peak_rss_gib"] = result.pop("_rss_kib") / 2**20
    return result


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", default="sasrec,gru4rec")
    ap.add_argument("--peer-epochs", type=int, default=1, help="RecBole epochs (5 = the anchor run; ~181 s each)")
    ap.add_argument("--prefix-epochs", type=int, default=1)
    ap.add_argument("--max-epochs", type=int, default=30, help="cap for the default-construction run")
    ap.add_argument("--default-threads", type=int, default=1,
                    help="intra-op threads of the default-construction run (batches of 32 windows: 2 threads "
                         "stall on a shared 2-core machine, measured 20x slower per step)")
    ap.add_argument("--skip-peer", action="store_true", help="use the anchor figures instead of running RecBole")
    ap.add_argument("--peer-python", default=None)
    ap.add_argument("--recbole-wheel", default=None, help="install RecBole from this wheel instead of PyPI")
    ap.add_argument("--data-root", default=None, help="folder holding ml-100k/ml-100k.inter")
    ap.add_argument("--json", default=None, help="write all figures here")
    ap.add_argument("--worker", nargs="*", help=argparse.SUPPRESS)
    args = ap.parse_args()

    if args.worker:  # inside a child process
        kind, model, *rest = args.worker
        if kind == "recbole":
            res = worker_recbole(model, rest[0], int(rest[1]))
        else:
            res = worker_recwise(model, kind, int(rest[0]), float(rest[1]), int(rest[2]))
        import resource

        res["_rss_kib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        print(json.dumps(res))
        return 0

    from recwise.data.seq_datasets import default_raw_dir

    data_root = args.data_root or str(default_raw_dir("ml-100k").parent)
    if not (Path(data_root) / "ml-100k" / "ml-100k.inter").exists():
        raise SystemExit(f"no ml-100k/ml-100k.inter under {data_root}; pass --data-root")
    me = [sys.executable, str(Path(__file__).resolve()), "--worker"]
    report: dict[str, Any] = {"threads": 2, "peer_epochs": args.peer_epochs}
    for model in [m.strip() for m in args.models.split(",") if m.strip()]:
        fig: dict[str, Any] = {}
        if args.skip_peer:
            a = ANCHOR[model]
            fig["recbole"] = {"examples_per_s": a["ex_per_s"], "epoch_seconds": [a["s_per_epoch"]] * 5, "epochs": 5,
                              "peak_rss_gib": a["rss_gib"], "test": {"ndcg@10": a["ndcg@10"]}, "anchor": True,
                              "wall_seconds": 5 * a["s_per_epoch"]}
        else:
            py = peer_python(args.peer_python, args.recbole_wheel)
            fig["recbole"] = spawn([str(py), str(Path(__file__).resolve()), "--worker", "recbole", model, data_root,
                                    str(args.peer_epochs)], {"TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD": "1"},
                                   cwd=tempfile.mkdtemp(prefix="rb-run-"))  # RecBole writes logs into its cwd
        rb = fig["recbole"]
        # the NDCG@10 to reach: RecBole's own 5-epoch figure when it ran 5 epochs, else the anchor
        target = rb["test"]["ndcg@10"] if rb["epochs"] >= 5 else ANCHOR[model]["ndcg@10"]
        rb_epoch = sum(rb["epoch_seconds"]) / len(rb["epoch_seconds"])
        rb_wall5 = rb["wall_seconds"] if rb["epochs"] >= 5 else rb["wall_seconds"] + (5 - rb["epochs"]) * rb_epoch
        fig["recwise-prefix"] = spawn(me + ["prefix", model, str(args.prefix_epochs), str(target), "2"])
        fig["recwise-default"] = spawn(me + ["sequence", model, str(args.max_epochs), str(target),
                                             str(args.default_threads)])
        p, d = fig["recwise-prefix"], fig["recwise-default"]
        reached = d["reached"]
        fig["ratios"] = {
            "prefix_examples_per_s_vs_recbole": p["examples_per_s"] / rb["examples_per_s"],
            "default_time_to_target_vs_recbole_5_epoch_wall": (reached["elapsed"] / rb_wall5) if reached else None,
            "peak_rss_recwise_default_vs_recbole": d["peak_rss_gib"] / rb["peak_rss_gib"],
            "peak_rss_recwise_prefix_vs_recbole": p["peak_rss_gib"] / rb["peak_rss_gib"],
        }
        fig["target_ndcg@10"], fig["recbole_5_epoch_wall_s"] = target, rb_wall5
        report[model] = fig
        print(f"\n== {model} on ML-100K (2 threads) ==")
        print(f"RecBole 1.2.1   : {rb['epochs']} epoch(s){' (anchor figures)' if rb.get('anchor') else ''}, "
              f"{rb_epoch:.1f} s/epoch, {rb['examples_per_s']:.0f} examples/s, peak RSS {rb['peak_rss_gib']:.2f} GiB, "
              f"test NDCG@10 {rb['test'].get('ndcg@10', float('nan')):.4f} after {rb['epochs']} epoch(s); "
              f"5-epoch wall {'measured' if rb['epochs'] >= 5 else 'extrapolated'} {rb_wall5:.0f} s")
        print(f"recwise prefix  : {sum(p['epoch_seconds']) / p['epochs']:.1f} s/epoch, {p['examples_per_s']:.0f} "
              f"examples/s, peak RSS {p['peak_rss_gib']:.2f} GiB, test NDCG@10 {p['log'][-1]['test_ndcg@10']:.4f} "
              f"after {p['epochs']} epoch(s)")
        print(f"recwise default : {args.default_threads} thread(s), "
              f"{sum(d['epoch_seconds']) / d['epochs']:.1f} s/epoch ({d['train_rows']} windows, "
              f"{d['train_targets']} targets), peak RSS {d['peak_rss_gib']:.2f} GiB; test NDCG@10 >= {target:.4f} "
              + (f"at epoch {d['log'].index(reached) + 1}, {reached['elapsed']:.1f} s" if reached
                 else f"not reached in {d['epochs']} epochs (best {max(e['test_ndcg@10'] for e in d['log']):.4f})"))
        r = fig["ratios"]
        print(f"ratios          : prefix examples/s x{r['prefix_examples_per_s_vs_recbole']:.2f} (target >= 2); "
              + (f"time to RecBole's 5-epoch NDCG {r['default_time_to_target_vs_recbole_5_epoch_wall']:.3f} of its "
                 f"wall (target <= 0.1); " if reached else "target NDCG not reached; ")
              + f"peak RSS x{r['peak_rss_recwise_default_vs_recbole']:.2f} default / "
                f"x{r['peak_rss_recwise_prefix_vs_recbole']:.2f} prefix (target < 0.5)")
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
