"""Feature selection (ERASE protocol, AUKC): the task, its protocol (:mod:`.protocol`) and its
tables and figure (:mod:`.report`).

``recwise run selection`` / ``recwise bench selection``: a cell is (method, backbone, seed). The
method ranks the candidate fields (search), the backbone is retrained on the top-k fields for
every k of the grid, and the cell gives test AUC/logloss per k and the AUKC; its ``model`` is
``<backbone>+<method>``. A bench's cells share a rankings cache and a retrains cache in the bench
folder (``cache/``), so a backbone-independent method is searched once per seed and a field set
is trained once per (backbone, seed, options, data), whatever the executor.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from recwise.errors import ConfigError
from recwise.tasks.base import Task, protocol_attribute

if TYPE_CHECKING:
    from recwise.bench import Cell, GridResult
    from recwise.results import ResultRow

__all__ = ["ERASE_BACKBONES", "ERASE_METHODS", "TASK", "Ranking", "SelectionData", "SelectionRun", "SelectionTask",
           "aukc", "cell_rows", "depends_on_backbone", "parse_k_grid", "resolve_fields", "retrain", "run", "search",
           "split_sets"]

# ERASE's methods and backbones: `--methods erase` and the default --backbones
ERASE_METHODS = ("lasso", "gbdt", "rf", "xgboost", "permutation", "autofield", "adafs", "optfs", "lpfs", "shark",
                 "sfs")
ERASE_BACKBONES = ("widedeep", "deepfm", "dcn", "fibinet")


def __getattr__(name: str) -> Any:  # the protocol (torch) loads on first use, not with the CLI
    return protocol_attribute(__name__, name)


def split_sets(overrides: dict[str, str], methods: Sequence[str]) -> tuple[dict[str, str], dict[str, str],
                                                                           dict[str, dict[str, str]]]:
    """``train.x``, ``backbone.y`` and ``method.<name>.z`` (or ``method.z`` when one method is run).

    Returns (train, backbone, method name -> options)."""
    train: dict[str, str] = {}
    backbone: dict[str, str] = {}
    method: dict[str, dict[str, str]] = {}
    for key, value in overrides.items():
        scope, _, rest = key.partition(".")
        if scope == "train" and rest:
            train[rest] = value
        elif scope == "backbone" and rest:
            backbone[rest] = value
        elif scope == "method" and rest:
            name, _, opt = rest.partition(".")
            if opt and name in methods:
                method.setdefault(name, {})[opt] = value
            elif len(methods) == 1 and not opt:
                method.setdefault(methods[0], {})[rest] = value
            else:
                raise ConfigError(f"--set key {key!r}: use method.<name>.<option> with <name> one of {list(methods)}")
        else:
            raise ConfigError(f"--set key {key!r} must start with 'train.', 'backbone.' or 'method.'")
    return train, backbone, method


class SelectionTask(Task):
    name = "selection"
    help = "feature selection: search, top-k retrain, AUC per k and AUKC"
    bench_help = "feature-selection benchmark: methods x backbones x k x seeds, resumable"
    unit = "method"
    default_unit = "gbdt"
    default_units = "erase"
    units_help = "comma-separated names, 'erase' (ERASE's 11 methods) or 'all' (every selector)"
    dataset_help = "ml-100k, ml-1m, avazu, criteo, ali-ccp, kuairand"
    scopes = ("train", "backbone", "method")
    set_help = ("override an option: train.patience=2, backbone.embed_dim=16, method.alpha=0.01 "
                "(bench: method.<name>.alpha=0.01) (repeatable)")
    out_prefix = "selection"

    # -- what a cell varies -----------------------------------------------------------------

    def units(self) -> list[str]:
        from recwise.select import list_selectors

        return list_selectors()

    def check_unit(self, name: str) -> None:
        from recwise.select import SELECTORS

        SELECTORS.get(name)  # "unknown selection method 'gdbt'; did you mean 'gbdt'?"

    def expand_units(self, spec: str) -> list[str]:
        """``--methods``: comma-separated names, ``erase`` (ERASE's 11) or ``all`` (every selector)."""
        if spec.strip() == "erase":
            names = list(ERASE_METHODS)
        elif spec.strip() == "all":
            names = self.units()
        else:
            names = list(dict.fromkeys(m.strip() for m in spec.split(",") if m.strip()))
        if not names:
            raise ConfigError("option --methods names no method")
        for n in names:
            self.check_unit(n)
        return names

    # -- the command line --------------------------------------------------------------------

    def add_arguments(self, parser: argparse.ArgumentParser, *, bench: bool) -> None:
        parser.add_argument("--max-rows", type=int, default=None, help="keep the first N raw rows (large datasets)")
        parser.add_argument("--split-seed", type=int, default=2022, help="seed of the random split (ML, KuaiRand)")
        parser.add_argument("--k", default="3,5,7,all", help="the k grid: comma-separated ints and/or 'all'")
        parser.add_argument("--fields", default=None, help="candidate fields (comma-separated; default all)")
        if bench:
            parser.add_argument("--backbones", default=",".join(ERASE_BACKBONES),
                                help="comma-separated ctr backbones (`recwise models ctr`)")
        else:
            parser.add_argument("--backbone", default="deepfm", help="ctr backbone (`recwise models ctr`)")

    @staticmethod
    def _backbones(args: argparse.Namespace) -> list[str]:
        if hasattr(args, "backbones"):
            names = list(dict.fromkeys(b.strip() for b in args.backbones.split(",") if b.strip()))
            if not names:
                raise ConfigError("option --backbones names no backbone")
            return names
        return [args.backbone]

    def options(self, args: argparse.Namespace, units: Sequence[str]) -> dict[str, Any]:
        """Resolved configs, checked before any data is read: the train config (ERASE's defaults,
        ``train.*``, ``--epochs``; its seed is each cell's), each backbone's and each method's."""
        from recwise.config import config_from_dict, config_to_dict, parse_overrides
        from recwise.registry import get_model
        from recwise.select import ERASE_TRAIN, SELECTORS
        from recwise.tasks.selection.protocol import train_key
        from recwise.train import TrainConfig

        if args.max_rows is not None and args.max_rows < 1:
            raise ConfigError(f"option --max-rows must be >= 1; got {args.max_rows}")
        backbones = self._backbones(args)
        train_opts, backbone_opts, method_opts = split_sets(parse_overrides(args.set), list(units))
        merged: dict[str, Any] = {**config_to_dict(ERASE_TRAIN), **train_opts}
        if args.epochs is not None:
            merged["epochs"] = args.epochs
        train = config_from_dict(TrainConfig, merged, where="train")
        bopts = {b: config_to_dict(config_from_dict(get_model("ctr", b).Config, backbone_opts, where="backbone"))
                 for b in backbones}
        mopts = {m: config_to_dict(config_from_dict(SELECTORS.get(m).Config, method_opts.get(m, {}), where="method"))
                 for m in units}
        return {"backbones": backbones, "train": train_key(train), "backbone_options": bopts,
                "method_options": mopts}

    def load(self, args: argparse.Namespace, out: Path | None) -> tuple[Any, dict[str, Any]]:
        """The prepared table (and, for a bench, the cache folder), the candidate fields and the k grid."""
        from recwise.data.datasets.fs_tables import prepare_fs
        from recwise.tasks.selection.protocol import SelectionData, parse_k_grid, resolve_fields

        prepared = prepare_fs(args.dataset, args.data_dir, split_seed=args.split_seed, max_rows=args.max_rows)
        names = [f.strip() for f in args.fields.split(",") if f.strip()] if args.fields else None
        fields = resolve_fields(prepared, names)
        ks = parse_k_grid(args.k, len(fields))
        # absolute: Ray workers need not share the driver's working folder
        shared = SelectionData(prepared, None if out is None else Path(out).resolve() / "cache")
        return shared, {"data": prepared.meta.get("key"), "fields": fields, "k": list(ks)}

    def cells(self, args: argparse.Namespace, units: Sequence[str], seeds: Sequence[int],
              options: dict[str, Any]) -> list[Cell]:
        """One cell per (method, backbone, seed); its model is ``<backbone>+<method>``."""
        from recwise.bench import Cell

        rest = {k: v for k, v in options.items() if k not in ("backbones", "backbone_options", "method_options")}
        return [Cell(self.name, args.dataset, f"{b}+{m}", s,
                     {"method": m, "backbone": b, "method_options": options["method_options"][m],
                      "backbone_options": options["backbone_options"][b], **rest})
                for m in units for b in options["backbones"] for s in seeds]

    def run_cell(self, cell: Cell, out_dir: Path, shared: Any, *, resume: bool, progress: bool) -> list[ResultRow]:
        """Search and retrain (nothing to resume inside a cell: a bench's caches keep its searches and
        retrains)."""
        from recwise.config import config_from_dict
        from recwise.tasks.selection import protocol
        from recwise.train import TrainConfig

        o = cell.options
        train = config_from_dict(TrainConfig, {**o["train"], "seed": cell.seed}, where="train")
        run = protocol.SelectionRun(cell.dataset, o["method"], o["backbone"], cell.seed, tuple(o["k"]),
                                    tuple(o["fields"]))
        rows, _ = protocol.run(run, shared.prepared, method_options=o["method_options"],
                               backbone_options=o["backbone_options"], train=train, out_dir=out_dir,
                               progress=progress, cache_dir=shared.cache_dir)
        return rows

    # -- reporting ---------------------------------------------------------------------------

    def run_report(self, cell: Cell, rows: list[ResultRow], out_dir: Path, seconds: float) -> str:
        import json

        info = json.loads((out_dir / "run.json").read_text())
        ranking = json.loads((out_dir / "ranking.json").read_text())
        o = cell.options
        lines = [f"{o['method']} on {cell.dataset} ({o['backbone']}, seed {cell.seed}): search "
                 f"{info['search_seconds']:.1f} s{'' if info.get('searched', True) else ' (cached)'}, "
                 f"total {seconds:.1f} s",
                 "ranking: " + ", ".join(f"{f} ({s:.4g})" for f, s in
                                         zip(ranking["ranking"], sorted(ranking["scores"], reverse=True))),
                 f"{'k':>4} {'auc':>8} {'logloss':>8}"]
        test = {(r.segment, r.metric): r.value for r in rows if r.split == "test"}
        for k in info["k"]:
            lines.append(f"{k:>4} {test[(f'k={k}', 'auc')]:>8.4f} {test[(f'k={k}', 'logloss')]:>8.4f}")
        lines.append(f"AUKC {test[('aukc', 'auc')]:.4f}; results in {out_dir / 'results.csv'}, "
                     f"ranking in {out_dir / 'ranking.json'}")
        return "\n".join(lines)

    def bench_report(self, res: GridResult, out: Path, dataset: str) -> str:
        """The AUKC / AUC-per-k / top-half markdown; writes ``auc_vs_k.html`` beside ``results.md``.
        Near-noise searches (:func:`~recwise.tasks.selection.report.near_noise`, from the cells'
        ``ranking.json``) are named instead of scored."""
        import json

        from recwise.results import atomic_write_text
        from recwise.tasks.selection.report import near_noise, plot_html, summary

        ks = sorted({int(r.segment[2:]) for r in res.rows if r.segment.startswith("k=")})
        if res.rows:
            atomic_write_text(out / "auc_vs_k.html", plot_html(res.rows, dataset))
        models = {r.model for r in res.rows}
        rankings = {}
        for path in sorted((out / "cells").glob("**/ranking.json")):
            r = json.loads(path.read_text())
            if f"{r.get('backbone') or ''}+{r['method']}" in models or r.get("backbone") is None:
                rankings[(r["method"], r.get("backbone"), r["seed"])] = r  # a shallow search: once per seed
        backbones = sorted({m.split("+", 1)[0] for m in models})
        return summary(res.rows, ks, dataset, noise=near_noise(rankings.values(), backbones))


TASK = SelectionTask()
