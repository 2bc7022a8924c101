"""Training from a table larger than what it may take in memory: peak RSS against the size on disk.

1. Writes a Criteo-shaped synthetic table in recwise's prepared-data format (one ``.npy`` per
   column, ``schema.json``, ``split.npz``, ``meta.json``): 13 dense fields (float32), 26 sparse
   fields (int64, as the dataset loaders store ids) with the Criteo Kaggle cardinalities (the
   list torchrec and DLRM use), capped at ``--max-vocab`` as DLRM's ``--max-ind-range`` hashes
   them, a scenario (3 scenarios, 50/30/20 %) and a label planted on a few fields (CTR about 25 %).
   It is written chunk by chunk, every column appended to its own file, so generating 20M rows
   holds one chunk in memory. An existing table with the same options is reused.
2. In a fresh process (so its peak RSS is training's alone), opens it memory-mapped and runs
   ``recwise.tasks.msr.run`` for one epoch with ``stream=True``: block-shuffled batches
   (``TableStream(shuffle="blocks")``), validation and test (1 % each) streamed too.
3. Prints the train rows/s (per-epoch train time, validation excluded; and per CPU second of the
   whole run, which a busy machine disturbs less), the stream's own read rate (the first batches
   without a model), the peak RSS (``VmHWM``: anonymous and file-backed pages),
   the table size on disk and their ratio (target: under 25 %), and the test AUC.

    .venv/bin/python benchmarks/scale_memory.py                      # 20M rows (5.4 GB), several minutes
    .venv/bin/python benchmarks/scale_memory.py --rows 2000000       # a smaller table
    .venv/bin/python benchmarks/scale_memory.py --dir /tmp/rw-scale --keep --json out.json

Needs the table's size free on disk (``--dir``, default a temp folder, removed at the end unless
``--keep``). Figures taken while other processes share the machine are noisy: run it alone.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

# Criteo Kaggle display-advertising challenge, C1..C26 distinct values (torchrec's KAGGLE_NUM_EMBEDDINGS_PER_FEATURE)
CRITEO_CARDINALITIES = (1460, 583, 10131227, 2202608, 305, 24, 12517, 633, 3, 93145, 5683, 8351593, 3194, 27, 14992,
                        5461306, 10, 5652, 2173, 4, 7046547, 18, 15, 286181, 105, 142572)
N_DENSE = 13
SCENARIO_SHARE = (0.5, 0.3, 0.2)


# ------------------------------------------------------------------------------------ generate


def _schema(vocab: list[int]) -> Any:
    from recwise.data.schema import Field, FieldKind, Schema

    return Schema((
        *(Field(f"I{j + 1}", FieldKind.DENSE) for j in range(N_DENSE)),
        *(Field(f"C{j + 1}", FieldKind.SPARSE, v) for j, v in enumerate(vocab)),
        Field("scenario", FieldKind.SCENARIO, len(SCENARIO_SHARE)),
        Field("label", FieldKind.LABEL),
    ))


def _chunk(rng: np.random.Generator, n: int, vocab: list[int], weights: dict[int, np.ndarray]) -> dict[str, np.ndarray]:
    """``n`` rows: skewed ids (a few values take most rows, as in Criteo), log-count dense values, planted label."""
    cols: dict[str, np.ndarray] = {}
    for j in range(N_DENSE):
        cols[f"I{j + 1}"] = (np.log1p(rng.exponential(10.0 * (j + 1), n)) / 8.0).astype(np.float32)
    for j, v in enumerate(vocab):
        cols[f"C{j + 1}"] = np.minimum((v * rng.random(n) ** 3).astype(np.int64), v - 1)
    scenario = rng.choice(len(SCENARIO_SHARE), n, p=SCENARIO_SHARE).astype(np.int64)
    cols["scenario"] = scenario
    logit = np.full(n, -1.6)
    for j, w in weights.items():  # a few fields carry signal; field C1's sign depends on the scenario
        part = w[cols[f"C{j + 1}"] % len(w)]
        logit += part * np.array([1.0, -1.0, 0.5])[scenario] if j == 0 else part
    logit += 1.5 * (cols["I1"] - cols["I1"].mean())
    cols["label"] = (rng.random(n) < 1.0 / (1.0 + np.exp(-logit))).astype(np.float32)
    return cols


def generate(folder: Path, rows: int, max_vocab: int, chunk_rows: int, seed: int = 0) -> dict[str, Any]:
    """Write the table into ``folder`` (prepared-data format) unless the same one is there already."""
    from recwise.data.cache import FORMAT_VERSION

    vocab = [min(v, max_vocab) for v in CRITEO_CARDINALITIES]
    key = f"criteo-synth-{rows}-{max_vocab}-{seed}"
    meta_path = folder / "meta.json"
    if meta_path.exists() and json.loads(meta_path.read_text()).get("key") == key:
        return json.loads(meta_path.read_text())
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    schema = _schema(vocab)
    names = [f.name for f in schema.fields]
    rng = np.random.default_rng(seed)
    weights = {j: rng.normal(0.0, 0.8, 997) for j in (0, 1, 5, 8, 13, 19)}
    files = {}
    t0 = time.perf_counter()
    for f in schema.fields:
        dtype = np.dtype(np.int64 if f.kind.value in ("sparse", "scenario") else np.float32)
        fh = open(folder / f"{f.name}.npy", "wb")  # noqa: SIM115 (closed below)
        np.lib.format.write_array_header_1_0(fh, {"descr": np.lib.format.dtype_to_descr(dtype),
                                                  "fortran_order": False, "shape": (rows,)})
        files[f.name] = fh
    try:
        for start in range(0, rows, chunk_rows):
            cols = _chunk(rng, min(chunk_rows, rows - start), vocab, weights)
            for name in names:
                files[name].write(np.ascontiguousarray(cols[name]).tobytes())
            print(f"\rgenerating: {min(start + chunk_rows, rows):,} / {rows:,} rows", end="", file=sys.stderr)
    finally:
        for fh in files.values():
            fh.close()
    print(file=sys.stderr)
    n_eval = max(rows // 100, 1)
    np.savez(folder / "split.npz", train=np.arange(rows - 2 * n_eval), val=np.arange(rows - 2 * n_eval, rows - n_eval),
             test=np.arange(rows - n_eval, rows))
    (folder / "schema.json").write_text(schema.to_json(), encoding="utf-8")
    meta = {"key": key, "format": FORMAT_VERSION, "columns": names, "rows": rows,
            "generate_seconds": time.perf_counter() - t0}
    meta_path.write_text(json.dumps(meta, indent=1), encoding="utf-8")
    return meta


# ------------------------------------------------------------------------------------ train


def _status_kib(key: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1])
    return 0


def train(args: argparse.Namespace) -> dict[str, Any]:
    """One epoch streamed from the table (run in its own process); returns the figures."""
    import torch

    torch.set_num_threads(args.threads)
    from recwise.data.cache import load_prepared
    from recwise.data.table import TableStream
    from recwise.tasks.msr import MSRRun, run

    prepared = load_prepared(args.dir)
    rss_open = _status_kib("VmRSS")
    stream = TableStream(prepared.table, prepared.splits["train"], shuffle="blocks")
    loader = stream.loader(args.batch_size, seed=0)
    t0, c0, n = time.perf_counter(), time.process_time(), 0
    for k, b in enumerate(loader):
        n += len(b["label"])
        if k + 1 == args.read_batches:
            break
    read_rate, read_cpu_rate = n / (time.perf_counter() - t0), n / (time.process_time() - c0)
    out = Path(args.dir) / "run"
    t0, c0 = time.perf_counter(), time.process_time()
    rows = run(MSRRun("criteo-synth", args.model, 0), prepared, out_dir=out, progress=not args.quiet, stream=True,
               train_options={"epochs": 1, "batch_size": args.batch_size, "device": args.device})
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    info = json.loads((out / "run.json").read_text())
    return {
        "rows_per_second": info["train_samples_per_second"], "train_rows": info["history"][0]["train_samples"],
        "train_seconds": info["train_seconds"], "run_wall_seconds": wall, "run_cpu_seconds": cpu,
        "stream_read_rows_per_second": read_rate, "stream_read_rows_per_cpu_second": read_cpu_rate,
        "test_auc": next(r.value for r in rows if (r.split, r.segment, r.metric) == ("test", "all", "auc")),
        "peak_rss_kib": _status_kib("VmHWM"), "rss_after_open_kib": rss_open,
        "rss_anon_end_kib": _status_kib("RssAnon"), "rss_file_end_kib": _status_kib("RssFile"),
        "streamed": info.get("streamed"),
    }


# ------------------------------------------------------------------------------------ main


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--rows", type=int, default=20_000_000)
    p.add_argument("--dir", type=Path, default=None, help="where the table goes (default: a temp folder)")
    p.add_argument("--keep", action="store_true", help="keep the table (reused by the next run with --dir)")
    p.add_argument("--model", default="mmoe", help="a multi-scenario model (`recwise models msr`)")
    p.add_argument("--batch-size", type=int, default=4096)
    p.add_argument("--max-vocab", type=int, default=100_000, help="cap on a field's ids (hashing, as DLRM)")
    p.add_argument("--chunk-rows", type=int, default=1 << 18, help="rows generated per chunk")
    p.add_argument("--read-batches", type=int, default=200, help="batches of the read-only pass")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--device", default="cpu")
    p.add_argument("--quiet", action="store_true")
    p.add_argument("--json", type=Path, default=None, help="also write the figures here")
    p.add_argument("--train-only", action="store_true", help=argparse.SUPPRESS)  # the child process
    args = p.parse_args()
    if args.train_only:
        print(json.dumps(train(args)))
        return 0

    temp = args.dir is None
    folder = Path(tempfile.mkdtemp(prefix="recwise-scale-")) if temp else args.dir
    try:
        meta = generate(folder, args.rows, args.max_vocab, args.chunk_rows)
        size = sum(f.stat().st_size for f in folder.glob("*.npy"))
        cmd = [sys.executable, __file__, "--train-only", "--dir", str(folder), "--model", args.model,
               "--batch-size", str(args.batch_size), "--threads", str(args.threads), "--device", args.device,
               "--read-batches", str(args.read_batches), *(["--quiet"] if args.quiet else [])]
        env = {**os.environ, "OMP_NUM_THREADS": str(args.threads)}
        proc = subprocess.run(cmd, env=env, stdout=subprocess.PIPE, text=True, check=True)
        fig = json.loads(proc.stdout.strip().splitlines()[-1])
        child_maxrss_kib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    finally:
        if temp and not args.keep:
            shutil.rmtree(folder, ignore_errors=True)
    fig.update(rows=args.rows, table_bytes=size, generate_seconds=meta.get("generate_seconds"),
               child_ru_maxrss_kib=child_maxrss_kib, model=args.model, batch_size=args.batch_size,
               threads=args.threads, device=args.device, max_vocab=args.max_vocab,
               rss_over_size=fig["peak_rss_kib"] * 1024 / size)
    print(f"table: {args.rows:,} rows x 41 columns, {size / 2**30:.2f} GiB on disk ({folder})")
    print(f"train: {args.model}, 1 epoch over {fig['train_rows']:,} rows, batch {args.batch_size}, "
          f"{args.threads} thread(s), {args.device}")
    print(f"rows/s (train):        {fig['rows_per_second']:,.0f} (per CPU second of the whole run, validation and "
          f"test included: {fig['train_rows'] / fig['run_cpu_seconds']:,.0f})")
    print(f"rows/s (stream only):  {fig['stream_read_rows_per_second']:,.0f} (per CPU second: "
          f"{fig['stream_read_rows_per_cpu_second']:,.0f})")
    print(f"peak RSS:              {fig['peak_rss_kib'] / 2**20:.3f} GiB (after opening the table: "
          f"{fig['rss_after_open_kib'] / 2**20:.3f} GiB)")
    print(f"peak RSS / table size: {100 * fig['rss_over_size']:.1f} % (target < 25 %)")
    print(f"test AUC:              {fig['test_auc']:.4f}")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(fig, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
