"""Serving cost of LLM-enhanced recommenders vs their plain backbones (no LLM at serving time).

For each model: full-ranking scores over every item for real MovieLens-100K test inputs (or random
sequences when the raw files are absent), timed per user at batch size 1 (one request per user)
and at a larger batch, median of ``--repeats`` passes after one warm-up pass, the models
timed round-robin (pass k of every model, then pass k+1) so load changes hit them alike. The enhanced models'
text tables are fixed inputs: the AlphaRec tower and KAR's item adaptor are evaluated once and
kept while the weights stay (as a deployment would store the item table), so a request costs the
backbone's work plus a lookup. The ratio column divides by the backbone measured in the same run.

Weights: trained models from a ``recwise bench llmers`` folder (``--from-results``), else freshly
initialised ones with random text tables of the real shapes (latency does not depend on values).

    .venv/bin/python benchmarks/serving_cost.py --threads 1
    .venv/bin/python benchmarks/serving_cost.py --threads 1 --from-results results/llmers-ml-100k --json serving.json
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

N_USERS_ML100K, N_ITEMS_ML100K = 943, 1682


def _inputs(n_items: int, max_len: int, n: int, seed: int = 0) -> dict[str, torch.Tensor]:
    try:
        from recwise.data.seq_datasets import load_sequences
        from recwise.data.sequence import eval_inputs

        seqs, _ = load_sequences("ml-100k")
        data = eval_inputs(seqs, "test", max_len)
        print(f"inputs: MovieLens-100K test inputs ({len(data['target'])} users)", file=sys.stderr)
        return {k: v[:n] for k, v in data.items() if k in ("item_seq", "item_len", "user")}
    except Exception as exc:  # noqa: BLE001 - no raw files: random right-padded sequences
        print(f"inputs: random sequences ({exc})", file=sys.stderr)
        g = torch.Generator().manual_seed(seed)
        length = torch.randint(5, max_len + 1, (n,), generator=g)
        seq = torch.randint(1, n_items + 1, (n, max_len), generator=g) * (torch.arange(max_len)[None] < length[:, None])
        return {"item_seq": seq, "item_len": length, "user": torch.arange(n) % N_USERS_ML100K}


def _pass(model: torch.nn.Module, data: dict[str, torch.Tensor], batch: int) -> float:
    """One pass over the users; ms per user."""
    n = len(data["item_seq"])
    t0 = time.perf_counter()
    with torch.no_grad():
        for s in range(0, n, batch):
            model({k: v[s:s + batch] for k, v in data.items()})
    return (time.perf_counter() - t0) * 1000 / n


def build_models(text_path: Path, from_results: Path | None, layers: int) -> dict[str, tuple[torch.nn.Module, str]]:
    """name -> (model, backbone name)."""
    from recwise.data.sequence import seq_schema
    from recwise.models.seq.sasrec import SASRec, SASRecConfig
    from recwise.train import load_model

    schema = seq_schema(N_ITEMS_ML100K)
    options = {"sasrec": {}, "sasrec+text-init": {"item_init": "text"}, "sasrec+alpharec": {"item_tower": "alpharec"},
               "sasrec+kar": {"knowledge": "kar"}, "sasrec+kar-item": {"knowledge": "kar", "kar_user": False},
               "sasrec+llmrec": {}}
    folder = {"sasrec": "plain", "sasrec+text-init": "text-init", "sasrec+alpharec": "alpharec", "sasrec+kar": "kar",
              "sasrec+kar-item": "kar-item", "sasrec+llmrec": "llmrec"}
    out: dict[str, tuple[torch.nn.Module, str]] = {}
    for name, opts in options.items():
        trained = from_results / "cells" / folder[name] / "seed0" / "model" if from_results else None
        if trained is not None and trained.with_suffix(".json").exists():
            out[name] = (load_model(trained, task="sequential"), "sasrec")
            continue
        torch.manual_seed(0)
        cfg = SASRecConfig(n_layers=layers, **opts, **({"text_path": str(text_path)} if opts else {}))
        out[name] = (SASRec(schema, cfg), "sasrec")
    try:  # PAD (helper "pad"): phase 3 (three experts, gates) vs phase 1 (its SASRec ID backbone)
        from recwise.models.seq.pad import PADConfig, PADPhase1, PADPhase3

        text = torch.randn(N_ITEMS_ML100K + 1, 384)
        text[0] = 0
        bins = torch.randint(1, 11, (N_ITEMS_ML100K + 1,))
        bins[0] = 0
        pcfg = PADConfig(max_len=50)
        torch.manual_seed(0)
        out["pad-phase1 (backbone)"] = (PADPhase1(schema, pcfg, text), "pad-phase1 (backbone)")
        out["pad-phase3"] = (PADPhase3(schema, pcfg, text, bins), "pad-phase1 (backbone)")
    except ImportError as exc:
        print(f"PAD not measured: {exc}", file=sys.stderr)
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--users", type=int, default=256, help="test users timed")
    ap.add_argument("--batch", type=int, default=256, help="the larger batch size (the other is 1)")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--layers", type=int, default=2, help="SASRec layers of freshly built models")
    ap.add_argument("--from-results", type=Path, default=None, help="a `recwise bench llmers` output folder")
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    from safetensors.torch import save_file

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "text.safetensors"
        g = torch.Generator().manual_seed(0)
        item = torch.randn(N_ITEMS_ML100K + 1, 384, generator=g)
        item[0] = 0
        save_file({"item_text": item, "item_knowledge": torch.randn(N_ITEMS_ML100K + 1, 384, generator=g),
                   "user_knowledge": torch.randn(N_USERS_ML100K, 384, generator=g)}, str(path))
        models = build_models(path, args.from_results, args.layers)
        data = _inputs(N_ITEMS_ML100K, 50, args.users)
        inputs = {name: data if "pad" not in name else {k: v[:, -m.config.max_len:] if k == "item_seq" else v
                                                         for k, v in data.items()} for name, (m, _) in models.items()}
        times: dict[tuple[str, int], list[float]] = {}
        first: dict[str, float] = {}
        for name, (model, _) in models.items():
            model.eval()
            first[name] = _pass(model, inputs[name], 1)  # warm-up (and the item table's first computation)
        # round-robin over the models, so that load changes on a shared machine hit all of them alike
        for _ in range(args.repeats):
            for batch in (1, args.batch):
                for name, (model, _) in models.items():
                    times.setdefault((name, batch), []).append(_pass(model, inputs[name], batch))
        res: dict[str, dict[str, float | str]] = {}
        for name, (model, backbone) in models.items():
            res[name] = {"backbone": backbone, "ms_per_user_b1": statistics.median(times[(name, 1)]),
                         "ms_per_user_first_pass_b1": first[name],
                         f"ms_per_user_b{args.batch}": statistics.median(times[(name, args.batch)]),
                         "params": sum(p.numel() for p in model.parameters()),
                         "buffers": sum(b.numel() for b in model.buffers())}
    print(f"| model | backbone | ms/user, batch 1 | ratio | ms/user, batch {args.batch} | ratio | "
          "first pass, batch 1 | params | fixed text tables |")
    print("|---|---|---|---|---|---|---|---|---|")
    for name, r in res.items():
        base = res[str(r["backbone"])]
        print(f"| {name} | {r['backbone']} | {r['ms_per_user_b1']:.3f} | "
              f"{r['ms_per_user_b1'] / base['ms_per_user_b1']:.2f} | "
              f"{r[f'ms_per_user_b{args.batch}']:.3f} | "
              f"{r[f'ms_per_user_b{args.batch}'] / base[f'ms_per_user_b{args.batch}']:.2f} | "
              f"{r['ms_per_user_first_pass_b1']:.3f} | {r['params']:,} | {r['buffers']:,} |")
    print("LLM calls at serving: 0 (no model above holds a generator or an encoder; text tables are fixed inputs)")
    if args.json:
        args.json.write_text(json.dumps({"threads": args.threads, "users": args.users, "results": res}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
