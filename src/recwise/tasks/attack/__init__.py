"""Chain-of-thought evaluation and reasoning attacks (SEED, ACL 2025): the task and its protocol.

``recwise run attack --dataset gsm8k --data-dir test.jsonl --attack seed-p --sigma 0.6 --shots 0
--model smollm2 --limit 200 --seed 0 --out DIR`` writes ``DIR/results.csv`` (model = the target,
segment ``attack=seed-p,sigma=0.6,shots=0``), ``DIR/attacks.jsonl`` and ``DIR/run.json``.
``recwise bench attack --models smollm2,gemma3 --attacks seed-p,seed-s --sigmas 0.2,0.6 --shots 0,3``
sweeps attacks x sigma x shots x models x seeds through the grid runner.

The target is ``--model`` on ``--backend`` (local, or http for any OpenAI-compatible server with
``--base-url``); the SEED-P assistant and the detector default to the target
(``--assistant-model``, ``--detector-model``, or ``--set assistant.KEY=VALUE`` / ``detector.KEY=...``).
Protocol: :mod:`.protocol`; injections: :mod:`.attacks`; prompts: :mod:`.prompts`.
"""

from __future__ import annotations

import argparse
import hashlib
import itertools
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from recwise.errors import ConfigError
from recwise.tasks.base import Task, protocol_attribute

if TYPE_CHECKING:
    from recwise.bench import Cell, GridResult
    from recwise.results import ResultRow

__all__ = ["AttackTask", "TASK", "bench_markdown"]

ATTACK_NAMES = ("seed-p", "seed-s", "preemptive", "mistake", "none")
DATASETS = ("arith", "gsm8k", "math", "csqa", "mathqa")
SCOPES = ("attack", "llm", "assistant", "detector", "arith")
COLUMNS = (("clean_accuracy", "clean acc"), ("attacked_accuracy", "attacked acc"), ("asr", "ASR"),
           ("relative_drop", "rel. drop"), ("detection_rate", "detected"), ("detection_rate_clean", "det. clean"),
           ("consistent_rate", "consistent"), ("defended_asr", "ASR self-review"),
           ("fallback_rate", "fallback"), ("llm_calls", "LLM calls"), ("wall_seconds", "wall s"))


def __getattr__(name: str) -> Any:  # the protocol loads on first use, not with the CLI
    return protocol_attribute(__name__, name)


def _floats(text: str, flag: str) -> list[float]:
    try:
        return [float(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise ConfigError(f"option {flag} must be comma-separated numbers; got {text!r}") from None


def _ints(text: str, flag: str) -> list[int]:
    vals = _floats(text, flag)
    if any(v != int(v) for v in vals):
        raise ConfigError(f"option {flag} must be comma-separated integers; got {text!r}")
    return [int(v) for v in vals]


def _fmt(metric: str, v: float) -> str:
    if v != v:  # nan
        return "-"
    return f"{v:.0f}" if metric in ("llm_calls", "wall_seconds") else f"{v:.3f}"


def bench_markdown(rows: list[ResultRow], dataset: str) -> str:
    """One line per (model, segment): mean over seeds of the main metrics."""
    cells: dict[tuple[str, str, str], list[float]] = {}
    seeds: dict[tuple[str, str], set[int]] = {}
    for r in rows:
        cells.setdefault((r.model, r.segment, r.metric), []).append(r.value)
        seeds.setdefault((r.model, r.segment), set()).add(r.seed)
    md = [f"# attack on {dataset}: mean over seeds\n",
          "| model | segment | seeds | " + " | ".join(c for _, c in COLUMNS) + " |",
          "|---|---|---|" + "---|" * len(COLUMNS)]
    for model, seg in sorted(seeds):
        vals = []
        for metric, _ in COLUMNS:
            v = [x for x in cells.get((model, seg, metric), []) if x == x]
            vals.append(_fmt(metric, sum(v) / len(v)) if v else "-")
        md.append(f"| {model} | {seg} | {len(seeds[(model, seg)])} | " + " | ".join(vals) + " |")
    return "\n".join(md) + "\n"


class AttackTask(Task):
    name = "attack"
    help = "chain-of-thought accuracy under a reasoning attack (SEED-P, SEED-S, baselines)"
    bench_help = "reasoning attacks: attacks x sigma x shots x models x seeds, resumable"
    default_unit = "smollm2"
    default_units = "smollm2"
    units_help = "target models: local names (smollm2, gemma3), .gguf paths, or served model names"
    dataset_help = "arith (generated), gsm8k, math, csqa or mathqa (the file, or MATH's folder, via --data-dir)"
    default_dataset = "arith"
    scopes = SCOPES
    bare_scope = "attack"
    set_help = ("override an option: attack.max_tokens=128, attack.extraction=lenient, arith.steps=2, "
                "arith.difficulty=hard, llm.batch_size=8, assistant.model=gemma3, detector.backend=http (repeatable)")
    out_prefix = "attack"
    summary_metrics = ("clean_accuracy", "attacked_accuracy", "asr")

    def units(self) -> list[str]:
        return ["smollm2", "gemma3"]

    def check_unit(self, name: str) -> None:
        if not name.strip():  # any served model name or local path is a target; the backend checks it
            raise ConfigError(f"option --model needs a model name; local ones: {', '.join(self.units())}")

    def add_arguments(self, parser: argparse.ArgumentParser, *, bench: bool) -> None:
        if bench:
            parser.add_argument("--attacks", default="seed-p", help=f"comma-separated: {', '.join(ATTACK_NAMES)}")
            parser.add_argument("--sigmas", default="0.6", help="comma-separated injected step shares")
            parser.add_argument("--shots", default="0", help="comma-separated few-shot counts (0-3)")
        else:
            parser.add_argument("--attack", default="seed-p", help=f"one of {', '.join(ATTACK_NAMES)}")
            parser.add_argument("--sigma", type=float, default=0.6, help="share of the solution's steps injected")
            parser.add_argument("--shots", type=int, default=0, help="few-shot exemplars (0-3)")
        parser.add_argument("--limit", type=int, default=None, help="first N questions (default 200; 0: all)")
        parser.add_argument("--defence", default=None, help="none or self-review")
        parser.add_argument("--no-detect", action="store_true", help="skip the detector LLM")
        parser.add_argument("--backend", default=None, help="LLM backend of every role: local or http")
        parser.add_argument("--base-url", default=None, help="OpenAI-compatible server (with /v1) for --backend http")
        parser.add_argument("--assistant-model", default=None, help="SEED-P's assistant (default: the target)")
        parser.add_argument("--detector-model", default=None, help="the tamper detector (default: the target)")
        parser.add_argument("--max-tokens", type=int, default=None, help="new tokens per solution (default 256)")

    def options(self, args: argparse.Namespace, units: Any) -> dict[str, Any]:
        from recwise.tasks.attack.protocol import check_options

        scopes: dict[str, dict[str, str]] = super().options(args, units)
        if "epochs" in scopes.get("train", {}):
            raise ConfigError("option --epochs does not apply to task 'attack' (nothing is trained)")
        scopes.pop("train", None)
        att = scopes["attack"]
        for flag, key in (("limit", "limit"), ("defence", "defence"), ("max_tokens", "max_tokens")):
            if getattr(args, flag) is not None:
                att[key] = str(getattr(args, flag))
        if args.no_detect:
            att["detect"] = "false"
        for flag, key in (("backend", "backend"), ("base_url", "base_url")):
            if getattr(args, flag) is not None:
                scopes["llm"][key] = getattr(args, flag)
        if args.assistant_model:
            scopes["assistant"]["model"] = args.assistant_model
        if args.detector_model:
            scopes["detector"]["model"] = args.detector_model
        if hasattr(args, "attacks"):
            attacks = [a.strip() for a in args.attacks.split(",") if a.strip()]
            sigmas, shots = _floats(args.sigmas, "--sigmas"), _ints(args.shots, "--shots")
        else:
            attacks, sigmas, shots = [args.attack], [args.sigma], [args.shots]
        if not (attacks and sigmas and shots):
            raise ConfigError("options --attacks, --sigmas and --shots must each name at least one value")
        grid = [{"attack": a, "sigma": f"{s:g}", "shots": str(k)}
                for a, s, k in itertools.product(attacks, sigmas, shots)]
        for g in grid:  # every cell's options checked before any data is read
            check_options({**scopes, "attack": {**att, **g}})
        return {"scopes": scopes, "grid": grid}

    def load(self, args: argparse.Namespace, out: Path | None) -> tuple[Any, dict[str, Any]]:
        from recwise.config import config_from_dict
        from recwise.data.reasoning import ArithConfig, load_problems
        from recwise.tasks.attack.protocol import dataset_label

        if args.dataset not in DATASETS:
            from recwise.registry import did_you_mean

            raise ConfigError(f"unknown dataset '{args.dataset}' for task 'attack'"
                              + did_you_mean(args.dataset, DATASETS))
        scopes = self.options(args, [])["scopes"]
        arith = config_from_dict(ArithConfig, scopes["arith"], where="arith") if args.dataset == "arith" else None
        problems = load_problems(args.dataset, args.data_dir, arith=arith)
        digest = hashlib.sha256(json.dumps([(p.id, p.question, p.answer) for p in problems]).encode()).hexdigest()[:12]
        return {"problems": problems, "label": dataset_label(args.dataset, arith)}, {"data_key": digest}

    def cells(self, args: argparse.Namespace, units: Any, seeds: Any, options: dict[str, Any]) -> list[Cell]:
        from recwise.bench import Cell

        out = []
        for g in options["grid"]:
            scopes = {**options["scopes"], "attack": {**options["scopes"]["attack"], **g}}
            tag = f"attack={g['attack']},sigma={g['sigma']},shots={g['shots']}"
            opts = {"scopes": scopes, "data_key": options.get("data_key")}
            out += [Cell(self.name, args.dataset, u, s, opts, tag=tag) for u in units for s in seeds]
        return out

    def run_cell(self, cell: Cell, out_dir: Path, shared: Any, *, resume: bool, progress: bool) -> list[ResultRow]:
        from recwise.tasks.attack import protocol

        scopes = cell.options["scopes"]
        cfg = protocol.check_options(scopes)
        return protocol.run(shared["problems"], cfg, model=cell.model, dataset=shared["label"], seed=cell.seed,
                            options=scopes, out_dir=out_dir, progress=progress, data_key=cell.options.get("data_key"))

    def run_report(self, cell: Cell, rows: list[ResultRow], out_dir: Path, seconds: float) -> str:
        v = {r.metric: r.value for r in rows}
        seg = rows[0].segment if rows else cell.tag
        parts = [f"{metric} {_fmt(metric, v[metric])}" for metric, _ in COLUMNS if metric in v]
        return (f"{cell.model} on {rows[0].dataset if rows else cell.dataset} ({seg}), seed {cell.seed}: "
                f"{seconds:.1f} s, {int(v.get('questions', 0))} questions\n" + "  ".join(parts)
                + f"\nresults in {out_dir / 'results.csv'}, per question in {out_dir / 'attacks.jsonl'}")

    def bench_report(self, res: GridResult, out: Path, dataset: str) -> str:
        label = res.rows[0].dataset if res.rows else dataset
        return bench_markdown(res.rows, label)


TASK = AttackTask()
