"""PAD phase 3: why the aligned expert's gate stays near 1 %, and settings that let it move.

Starts from one finished (or checkpointed) phase 1 (``<run>/phase1/model.safetensors``, else its
``checkpoint/best.safetensors``), trains phase 2 for ``--epochs2`` epochs at ``--lr2`` (or loads
``<run>/phase2/model.safetensors`` when present), then runs phase 3 for ``--steps`` steps from the
same start under several settings, on MovieLens-100K's 943 latest windows, batch 128, AdamW with
the release's two parameter groups:

* ``released``: the release's gate init (ID ``linspace(1, 0)``, aligned ``linspace(-4, -5)``, text
  ``linspace(0, 1)``) and learning rate (lr3 1e-4, gates included);
* ``lr1e-3``: the same at lr 1e-3 (the budget run in docs/pad.md);
* ``gate_lr``: released init, lr 1e-3, gates at ``--gate-lr`` (``train.gate_lr``);
* ``uniform``: all gate logits 0 (``model.gate_init=uniform``), lr 1e-3.

For each: the aligned expert's weight (mean over bins 1..10) at the start and every ``--every``
steps, the mean |gradient| of the gate logits per expert, the gate logits' total movement, and the
validation Hit@10 at the end. Adam moves a parameter by about ``lr`` per step whatever its
gradient's size, so in ``S`` steps a logit moves at most about ``S x lr``.

    .venv/bin/python benchmarks/pad_gates.py /tmp/pad20/conv/seed0 --text ~/.cache/recwise/prepared/pad-text-<hash>.npy
"""

from __future__ import annotations

import argparse
import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file

from recwise.data.seq_datasets import load_sequences
from recwise.data.sequence import eval_inputs, seq_schema
from recwise.metrics.sequential import evaluate_by_popularity, popularity_bins, train_item_counts
from recwise.models.seq.pad import PADConfig, PADPhase1, PADPhase2, PADPhase3
from recwise.tasks.pad.protocol import _train_windows, train_keys

SETTINGS = {  # name: (gate_init, lr3, gate_lr or None)
    "released": ("released", 1e-4, None),
    "lr1e-3": ("released", 1e-3, None),
    "gate_lr": ("released", 1e-3, "GATE"),
    "uniform": ("uniform", 1e-3, None),
}


def _weights(path: Path) -> dict[str, torch.Tensor]:
    return load_file(str(path))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("run_dir", type=Path)
    ap.add_argument("--text", type=Path, required=True, help="the phase-0 matrix (.npy)")
    ap.add_argument("--data-dir", default=None)
    ap.add_argument("--epochs2", type=int, default=2)
    ap.add_argument("--lr2", type=float, default=1e-3)
    ap.add_argument("--steps", type=int, default=64)
    ap.add_argument("--every", type=int, default=16)
    ap.add_argument("--gate-lr", type=float, default=1e-2)
    ap.add_argument("--settings", default=",".join(SETTINGS))
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    seqs, _ = load_sequences("ml-100k", args.data_dir)
    text = torch.from_numpy(np.load(args.text))
    base = PADConfig()
    schema = seq_schema(seqs.n_items)
    keys = train_keys(seqs)
    windows = _train_windows(seqs, base.max_len, "latest")
    val = eval_inputs(seqs, "val", base.max_len, "left")
    items = torch.from_numpy(np.asarray(seqs.items))
    bins = popularity_bins(train_item_counts(seqs), base.n_bins)
    B, n = 128, len(windows["user"])

    def hit10(m: torch.nn.Module) -> float:
        return evaluate_by_popularity(m, val, items, bins, mask=True, batch_size=1024)["all"]["hit@10"]

    p1 = PADPhase1(schema, base)
    w1 = args.run_dir / "phase1" / "model.safetensors"
    p1.load_state_dict(_weights(w1 if w1.exists() else args.run_dir / "phase1" / "checkpoint" / "best.safetensors"),
                       strict=False)
    p2 = PADPhase2(schema, base, text)
    w2 = args.run_dir / "phase2" / "model.safetensors"
    if w2.exists():
        p2.load_state_dict(_weights(w2), strict=False)
        print(f"phase 2 from {w2}")
    else:
        p2.copy_from(p1)
        p2.set_seen(keys)
        opt = torch.optim.AdamW(p2.parameters(), lr=args.lr2, weight_decay=0.1)
        torch.manual_seed(0)
        for _ in range(args.epochs2):
            perm = torch.randperm(n)
            for s in range(0, n, B):
                loss = p2.loss({k: v[perm[s:s + B]] for k, v in windows.items()})
                opt.zero_grad()
                loss.backward()
                opt.step()
        print(f"phase 2: {args.epochs2} epochs at lr {args.lr2}")
    p1.eval(), p2.eval()
    print(f"start: val hit@10 phase 1 {hit10(p1):.4f}, phase 2 {hit10(p2):.4f}")
    out = {}
    for name in args.settings.split(","):
        init, lr, gate_lr = SETTINGS[name]
        glr = args.gate_lr if gate_lr == "GATE" else None
        torch.manual_seed(0)
        m = PADPhase3(schema, replace(base, gate_init=init), text, torch.from_numpy(bins))  # type: ignore[arg-type]
        m.copy_from(p1, p2)
        m.set_seen(keys)
        opt = torch.optim.AdamW(m.param_groups(lr, 0.1, glr), lr=lr, weight_decay=0.1)
        g0 = m.gate.detach().clone()
        trace = [(0, float(m.bin_weights()[1].mean()))]
        grads = []
        step = 0
        torch.manual_seed(1)
        while step < args.steps:
            perm = torch.randperm(n)
            for s in range(0, n, B):
                m.train()
                loss = m.loss({k: v[perm[s:s + B]] for k, v in windows.items()})
                opt.zero_grad()
                loss.backward()
                grads.append(m.gate.grad[:, 1:].abs().mean(1).tolist())  # type: ignore[union-attr]
                opt.step()
                step += 1
                if step % args.every == 0:
                    trace.append((step, float(m.bin_weights()[1].mean())))
                if step >= args.steps:
                    break
        m.eval()
        moved = (m.gate.detach() - g0)[:, 1:].abs()
        g = np.array(grads)
        res = {"lr": lr, "gate_lr": glr or lr, "init": init, "aligned_weight": trace,
               "gate_grad_mean_abs": {"id": float(g[:, 0].mean()), "aligned": float(g[:, 1].mean()),
                                      "text": float(g[:, 2].mean())},
               "gate_moved_max": float(moved.max()), "gate_moved_mean": float(moved.mean()),
               "bin_weights": m.bin_weights().tolist(), "val_hit10": hit10(m)}
        out[name] = res
        w = res["bin_weights"]
        print(f"\n{name}: init {init}, lr {lr}, gate lr {glr or lr}, {args.steps} steps")
        print("  aligned weight (mean over bins) by step: " + ", ".join(f"{s}: {v:.4f}" for s, v in trace))
        print("  mean |grad| of gate logits: ID {id:.2e}, aligned {aligned:.2e}, text {text:.2e}".format(
            **res["gate_grad_mean_abs"]))
        print(f"  gate logits moved: max {res['gate_moved_max']:.4f}, mean {res['gate_moved_mean']:.4f} "
              f"(steps x gate lr = {args.steps * (glr or lr):.4f})")
        print("  final weights bin 1 / 5 / 10: ID " + " / ".join(f"{w[0][b]:.3f}" for b in (0, 4, 9))
              + ", aligned " + " / ".join(f"{w[1][b]:.3f}" for b in (0, 4, 9))
              + ", text " + " / ".join(f"{w[2][b]:.3f}" for b in (0, 4, 9)))
        print(f"  val hit@10 {res['val_hit10']:.4f}", flush=True)
    if args.json:
        args.json.write_text(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
