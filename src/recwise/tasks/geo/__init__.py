"""Retrieval-augmented worldwide geolocalization (G3, NeurIPS 2024): the task and its protocol.

``recwise run geo --dataset geonames --arm g3 --seed 0 --limit 100 --out DIR`` writes
``DIR/results.csv`` (model = the arm; segments ``km=1`` ... ``km=2500`` with metric ``accuracy``,
segment ``all`` with errors, LLM calls, parse failures and timings), ``DIR/predictions.csv`` and
``DIR/run.json``. ``recwise bench geo --arms g3,nn --seeds 3`` runs arms x seeds through the grid
runner. The generator is ``--llm-model`` on ``--backend`` (local, or http with ``--base-url``).

The offline dataset ``geonames`` holds out whole GeoNames places; a query is a place's name, so
it tests retrieval, prompting and verification on names, not visual geolocalization.
Protocol: :mod:`.protocol`; prompts: :mod:`.prompts`.
"""

from __future__ import annotations

import argparse
import hashlib
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from recwise.errors import ConfigError
from recwise.tasks.base import Task, protocol_attribute

if TYPE_CHECKING:
    from recwise.bench import Cell, GridResult
    from recwise.results import ResultRow

__all__ = ["TASK", "GeoTask", "bench_markdown"]

ARM_NAMES = ("g3", "nn", "zero-shot", "one-rag", "no-verify", "no-reverse", "equal-earth")
DATASETS = ("geonames", "im2gps3k", "yfcc4k")
IMAGE_OPTIONS = ("image_tower", "database", "database_images")
KM = ("km=1", "km=25", "km=200", "km=750", "km=2500")
# G3's published IM2GPS3k table (acc. %, from the first author's list; see docs/geo.md)
PUBLISHED_IM2GPS3K = {"G3": (16.7, 40.9, 55.6, 71.2, 84.7), "GeoCLIP": (14.1, 34.5, 50.7, 69.7, 83.8),
                      "Img2Loc": (17.1, 45.1, 57.9, 72.9, 84.7)}


def __getattr__(name: str) -> Any:  # the protocol loads on first use, not with the CLI
    return protocol_attribute(__name__, name)


def bench_markdown(rows: list[ResultRow], dataset: str) -> str:
    """Accuracy (%) at each threshold per arm, mean ± std over seeds, beside the published IM2GPS3k table."""
    import statistics

    cells: dict[tuple[str, str], list[float]] = {}
    seeds: dict[str, set[int]] = {}
    for r in rows:
        cells.setdefault((r.model, r.segment if r.metric == "accuracy" else r.metric), []).append(r.value)
        seeds.setdefault(r.model, set()).add(r.seed)

    def fmt(v: list[float], scale: float = 100.0, digits: int = 1) -> str:
        if not v:
            return "-"
        m = statistics.fmean(v) * scale
        return f"{m:.{digits}f}" + (f" ± {statistics.stdev(v) * scale:.{digits}f}" if len(v) > 1 else "")

    md = [f"# geo on {dataset}: accuracy (%) within each distance, mean ± std over seeds\n",
          "| arm | seeds | " + " | ".join(f"{k[3:]} km" for k in KM)
          + " | median km | LLM calls | cache hits | parse fail % | wall s |",
          "|---|---|" + "---|" * (len(KM) + 5)]
    for arm in sorted(seeds, key=lambda a: ARM_NAMES.index(a) if a in ARM_NAMES else 99):
        md.append(f"| {arm} | {len(seeds[arm])} | " + " | ".join(fmt(cells.get((arm, k), [])) for k in KM)
                  + f" | {fmt(cells.get((arm, 'median_km'), []), 1.0, 0)}"
                  + f" | {fmt(cells.get((arm, 'llm_calls'), []), 1.0, 0)}"
                  + f" | {fmt(cells.get((arm, 'llm_cache_hits'), []), 1.0, 0)}"
                  + f" | {fmt(cells.get((arm, 'parse_failure_rate'), []))}"
                  + f" | {fmt(cells.get((arm, 'wall_seconds'), []), 1.0, 0)} |")
    md += ["", "Published on IM2GPS3k (images, GPT-4V, MP16-Pro database; not comparable, see docs/geo.md):", "",
           "| method | " + " | ".join(f"{k[3:]} km" for k in KM) + " |", "|---|" + "---|" * len(KM)]
    md += [f"| {m} | " + " | ".join(f"{v:.1f}" for v in vals) + " |" for m, vals in PUBLISHED_IM2GPS3K.items()]
    return "\n".join(md) + "\n"


class GeoTask(Task):
    name = "geo"
    help = "worldwide geolocalization with retrieval, LLM candidates and verification (G3)"
    bench_help = "G3 geolocalization: arms x seeds, resumable"
    unit = "arm"
    default_unit = "g3"
    default_units = "g3,nn"
    units_help = f"comma-separated arms: {', '.join(ARM_NAMES)}, or 'all'"
    dataset_help = ("geonames (offline: held-out GeoNames places queried by name); im2gps3k or yfcc4k (images: "
                    "--data-dir with the CSV and images/, --set image_tower=CLIP_DIR --set database=MP16_Pro.csv)")
    default_dataset = "geonames"
    scopes = ("geo", "align", "llm")
    bare_scope = "geo"
    set_help = ("override an option: geo.samples=3, geo.rag_ks=5,10, geo.query=alias, geo.temperature=0.7, "
                "align.lr=1e-3, align.epochs=5, llm.model=gemma3 (repeatable)")
    out_prefix = "geo"
    summary_metrics = ("accuracy",)

    def units(self) -> list[str]:
        return list(ARM_NAMES)

    def add_arguments(self, parser: argparse.ArgumentParser, *, bench: bool) -> None:
        parser.add_argument("--limit", type=int, default=None, help="evaluate the first N test queries (0: all)")
        parser.add_argument("--llm-model", default=None, help="the generator: smollm2, gemma3, a .gguf file or a "
                            "served model name (default smollm2)")
        parser.add_argument("--backend", default=None, help="LLM backend: local, llamacpp, transformers or http")
        parser.add_argument("--base-url", default=None, help="OpenAI-compatible server (with /v1) for --backend http")

    def options(self, args: argparse.Namespace, units: Any) -> dict[str, Any]:
        from recwise.tasks.geo.protocol import check_options

        scopes: dict[str, dict[str, str]] = super().options(args, units)
        if "epochs" in scopes.get("train", {}):
            scopes["align"]["epochs"] = scopes["train"]["epochs"]
        scopes.pop("train", None)
        if args.limit is not None:
            if args.limit < 0:
                raise ConfigError(f"option --limit must be >= 0 (0: all queries); got {args.limit}")
            scopes["geo"]["limit"] = str(args.limit)
        for flag, key in (("llm_model", "model"), ("backend", "backend"), ("base_url", "base_url")):
            if getattr(args, flag) is not None:
                scopes["llm"][key] = getattr(args, flag)
        check_options(scopes)
        return {"scopes": scopes}

    def load(self, args: argparse.Namespace, out: Path | None) -> tuple[Any, dict[str, Any]]:
        from recwise.config import config_from_dict
        from recwise.data.geo import geonames_split, image_split
        from recwise.retrieval import DenseConfig, load_dense_encoder
        from recwise.tasks.geo.protocol import GeoConfig, prepare

        if args.dataset not in DATASETS:
            from recwise.registry import did_you_mean

            raise ConfigError(f"unknown dataset '{args.dataset}' for task 'geo'" + did_you_mean(args.dataset, DATASETS)
                              + f" (datasets: {', '.join(DATASETS)})")
        scopes = self.options(args, [])["scopes"]
        cfg = config_from_dict(GeoConfig, scopes["geo"], where="geo")
        images = args.dataset != "geonames"
        if not images:
            given = [k for k in IMAGE_OPTIONS if getattr(cfg, k) is not None]
            if given:
                raise ConfigError(f"option 'geo.{given[0]}' is for the image datasets (im2gps3k, yfcc4k), "
                                  "not geonames")
        else:
            for key, what in (("image_tower", "a local transformers CLIP folder (CLIP ViT-L/14 as released)"),
                              ("database", "the MP16-Pro database CSV (IMG_ID, LAT, LON, city, state, country)")):
                if getattr(cfg, key) is None:
                    raise ConfigError(f"dataset '{args.dataset}' needs --set geo.{key}=PATH: {what}")
            if args.data_dir is None:
                raise ConfigError(f"dataset '{args.dataset}' needs --data-dir: the folder with its CSV "
                                  "(IMG_ID, LAT, LON) and images/")
        encoder = load_dense_encoder(DenseConfig(model=cfg.encoder), show_progress=not getattr(args, "quiet", False))
        if images:
            from recwise.models.geo.image import ImageTower

            split = image_split(args.dataset, args.data_dir, cfg.database, cfg.database_images)  # type: ignore[arg-type]
            tower = ImageTower.from_pretrained(cfg.image_tower)  # type: ignore[arg-type]
            prepared = prepare(split, encoder, query_encoder=tower, weights=cfg.weights)
        else:
            split = geonames_split(min_population=cfg.min_population, test_fraction=cfg.test_fraction,
                                   split_seed=cfg.split_seed, query=cfg.query)
            prepared = prepare(split, encoder, weights=cfg.weights)
        ident: list[Any] = [split.label, split.queries.ids, split.queries.texts, cfg.encoder, len(split.gallery)]
        if images:
            ident += [cfg.image_tower, cfg.database, split.gallery.ids]
        key = hashlib.sha256(json.dumps(ident).encode()).hexdigest()[:12]
        return prepared, {"data_key": key}

    def cells(self, args: argparse.Namespace, units: Any, seeds: Any, options: dict[str, Any]) -> list[Cell]:
        from recwise.bench import Cell

        return [Cell(self.name, args.dataset, u, s, options) for u in units for s in seeds]

    def run_cell(self, cell: Cell, out_dir: Path, shared: Any, *, resume: bool, progress: bool) -> list[ResultRow]:
        from recwise.tasks.geo import protocol

        scopes = cell.options["scopes"]
        cfg, align = protocol.check_options(scopes)
        return protocol.run(shared, cfg, align, arm=cell.model, seed=cell.seed, options=scopes, out_dir=out_dir,
                            progress=progress, data_key=cell.options.get("data_key"))

    def run_report(self, cell: Cell, rows: list[ResultRow], out_dir: Path, seconds: float) -> str:
        acc = {r.segment: r.value for r in rows if r.metric == "accuracy"}
        v = {r.metric: r.value for r in rows if r.segment == "all"}
        head = "  ".join(f"{k}: {100 * acc[k]:.1f}%" for k in KM if k in acc)
        return (f"{cell.model} on {rows[0].dataset if rows else cell.dataset}, seed {cell.seed}: {seconds:.1f} s, "
                f"{int(v.get('queries', 0))} queries\n{head}\nmedian {v.get('median_km', float('nan')):.0f} km, "
                f"LLM calls {int(v.get('llm_calls', 0))} ({int(v.get('llm_cache_hits', 0))} from cache), "
                f"parse failures {int(v.get('parse_failed', 0))}/"
                f"{int(v.get('llm_answers', 0))}, align {v.get('align_seconds', 0):.1f} s, "
                f"{v.get('queries_per_second', 0):.0f} queries/s (retrieval + verification)\n"
                f"results in {out_dir / 'results.csv'}, per query in {out_dir / 'predictions.csv'}")

    def bench_report(self, res: GridResult, out: Path, dataset: str) -> str:
        """The accuracy table; writes ``error_map.html`` (a world map of errors) beside ``results.md``."""
        from recwise.results import atomic_write_text
        from recwise.tasks.geo.report import error_map_html, read_predictions

        label = res.rows[0].dataset if res.rows else dataset
        preds = read_predictions(out)
        if preds:
            atomic_write_text(out / "error_map.html", error_map_html(preds, label))
        return bench_markdown(res.rows, label)


TASK = GeoTask()
