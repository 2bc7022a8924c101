"""G3's alignment with the trained location encoder (the released default): float32 against bfloat16
autocast (`align.precision=bf16`), seconds per epoch, in one run.

The rows are `--rows` places with uniform random coordinates and random unit query / text
embeddings of width 384 (the task's MiniLM widths): the cost of an epoch does not depend on what the
rows say. GeoCLIP's pretrained encoder (the file `scripts/setup.sh` extracts), copied per arm, the
released batch 256, AdamW and StepLR. Arms alternate over `--repeats` rounds of one epoch each; the
median is printed, with the ratio fp32 / bf16 and the mean cosine between the two arms' trained
encoders on 2,000 fresh places after the last round (how far bfloat16 training moved the encoder
from float32 training).

    .venv/bin/python benchmarks/geo_align_precision.py --rows 32306 --repeats 2 --threads 1
"""

from __future__ import annotations

import argparse
import copy
import json
import statistics

import numpy as np
import torch


def main() -> None:
    from recwise.models.geo.align import AlignConfig, GeoAligner, train_alignment
    from recwise.models.geo.location import LocationEncoder, project

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rows", type=int, default=8192)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--json", default=None)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    rng = np.random.default_rng(0)
    latlon = np.column_stack([rng.uniform(-60, 70, args.rows), rng.uniform(-180, 180, args.rows)])
    xy = project(latlon, "mercator")

    def unit(n: int, d: int) -> np.ndarray:
        x = rng.normal(size=(n, d)).astype(np.float32)
        return x / np.linalg.norm(x, axis=1, keepdims=True)

    q, t = unit(args.rows, 384), unit(args.rows, 384)
    base = LocationEncoder.pretrained()
    models, seconds, losses = {}, {"fp32": [], "bf16": []}, {}
    for precision in seconds:
        torch.manual_seed(0)
        models[precision] = GeoAligner(384, 384, location_encoder=copy.deepcopy(base))
    for r in range(args.repeats):
        for precision in seconds:
            cfg = AlignConfig(epochs=1, precision=precision)
            hist = train_alignment(models[precision], q, t, xy, cfg, seed=r)
            seconds[precision].append(hist["seconds"][0])
            losses[precision] = hist["loss"][0]
            print(f"round {r} {precision}: {hist['seconds'][0]:.1f} s, loss {hist['loss'][0]:.4f}", flush=True)
    fresh = torch.from_numpy(project(np.column_stack([rng.uniform(-60, 70, 2000), rng.uniform(-180, 180, 2000)]),
                                     "mercator")).float()
    with torch.no_grad():
        a = models["fp32"].location_encoder.encode_projected(fresh)
        b = models["bf16"].location_encoder.encode_projected(fresh)
    cos = float(torch.nn.functional.cosine_similarity(a, b, dim=-1).mean())
    med = {k: statistics.median(v) for k, v in seconds.items()}
    out = {"rows": args.rows, "threads": args.threads, "repeats": args.repeats, "s_per_epoch": med,
           "fp32_over_bf16": med["fp32"] / med["bf16"], "last_loss": losses, "encoder_cosine": cos}
    print(f"\n| precision | s/epoch ({args.rows} rows, median of {args.repeats}) | last epoch loss |")
    print("|---|---|---|")
    for k in ("fp32", "bf16"):
        print(f"| {k} | {med[k]:.1f} | {losses[k]:.4f} |")
    print(f"\nfp32 / bf16: {out['fp32_over_bf16']:.2f}x; mean cosine of the two trained encoders: {cos:.5f}")
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(out, fh, indent=1)


if __name__ == "__main__":
    main()
