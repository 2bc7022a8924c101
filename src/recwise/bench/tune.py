"""``recwise tune <task>``: the same Optuna budget for every model of a benchmark.

One Optuna study per (task, dataset, model), named ``<task>/<dataset>/<model>``, kept in Optuna's
own storage (``OUT/study.db``, SQLite, by default; any database URL with ``--storage``). Every
model gets the same number of trials, a TPE sampler with a fixed seed, the same family of search
space (:meth:`Task.search_space <recwise.tasks.base.Task.search_space>`: learning rate, weight
decay, batch size, then the model's own widths and dropout declared beside its config), and a
median pruner fed after every epoch with the validation score the task's trainer monitors
(:func:`recwise.train.trainer.observe_epochs`). Trials are selected on the task's validation
metric only; test rows are never read.

A trial is a grid cell (``cells/<model>/trial<N>/seed<k>``) run by the grid runner's executors:
in this process (``--executor local``) or as Ray tasks (``--executor ray``: ``workers / cell
threads`` trials at once, the sampler told the others are running through TPE's constant liar).
The driver asks Optuna for a trial, builds its cell from the sampled ``--set`` keys, and tells
the study the validation value the cell returns; the worker reports the epochs to the study
itself, so its storage must be reachable from every worker (SQLite: one machine; a database URL
such as ``postgresql://...`` for a cluster). An interrupted tune continues: trials left RUNNING
by the killed driver run again from their cell's last checkpoint, and only the missing trials
are asked for.

``OUT/presets.yaml`` holds each model's best configuration in the format of
``configs/msr/<dataset>.yaml`` (``recwise bench msr --preset OUT/presets.yaml``), with a
``tuned:`` block naming the study, its trial counts, the best trial's validation score and
Optuna's hyperparameter importances.
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import math
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from recwise.bench.grid import Cell, CellFn, LocalExecutor, RayExecutor, _Job, grid_options
from recwise.errors import ConfigError, DependencyError
from recwise.results import ResultRow, atomic_write_text

__all__ = ["StudyReport", "TuneConfig", "add_tune_arguments", "preset_entry", "report_markdown", "run_trial_cell",
           "study_name", "tune", "tune_config", "tune_grid_options"]


@dataclass(frozen=True)
class TuneConfig:
    """How ``recwise tune`` searches (every option checked here)."""

    trials: int = 20  # per model: COMPLETE + PRUNED + FAIL trials the study ends with
    timeout: float | None = None  # seconds per model: no new trial is asked for after it
    storage: str = ""  # Optuna storage URL; "" -> sqlite:///OUT/study.db
    sampler_seed: int = 0  # the TPE sampler's seed
    seed: int = 0  # the training seed of every trial
    pruner: str = "median"  # median | none
    startup_trials: int = 5  # the median pruner prunes nothing before this many trials finished
    warmup_epochs: int = 2  # nor before a trial's epoch warmup_epochs + 1

    def __post_init__(self) -> None:
        if self.trials < 1:
            raise ConfigError(f"option --trials must be >= 1; got {self.trials}")
        if self.timeout is not None and not self.timeout > 0:
            raise ConfigError(f"option --timeout must be > 0 seconds; got {self.timeout}")
        if self.pruner not in ("median", "none"):
            raise ConfigError(f"option --pruner must be 'median' or 'none'; got {self.pruner!r}")
        if self.startup_trials < 0 or self.warmup_epochs < 0:
            raise ConfigError("options --startup-trials and --warmup-epochs must be >= 0")


@dataclass
class StudyReport:
    """What one study ended with (also the ``tuned:`` block of presets.yaml)."""

    unit: str
    study: str
    trials: int
    complete: int
    pruned: int
    failed: int
    best_trial: int | None
    best_value: float | None
    best_params: dict[str, Any]
    importance: dict[str, float]
    seconds: float  # wall time of this command's trials for the study
    trial_seconds: list[float]  # wall time of each trial run here (pruned ones included)


def _optuna() -> Any:
    try:
        import optuna
    except ImportError:
        raise DependencyError("recwise tune needs Optuna: pip install 'recwise[grid]'") from None
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    return optuna


def study_name(task: str, dataset: str, unit: str) -> str:
    return f"{task}/{dataset}/{unit}"


def _distribution(optuna: Any, p: Any) -> Any:
    from recwise.train.space import Choice, Float, Int  # recwise.train loads torch: not when the CLI is built

    d = optuna.distributions
    if isinstance(p, Float):
        return d.FloatDistribution(p.low, p.high, log=p.log)
    if isinstance(p, Int):
        return d.IntDistribution(p.low, p.high, log=p.log)
    if isinstance(p, Choice):
        return d.CategoricalDistribution(list(p.values))
    raise TypeError(f"not a search-space range: {p!r}")


def _pruner(optuna: Any, info: dict[str, Any]) -> Any:
    if info["pruner"] == "none":
        return optuna.pruners.NopPruner()
    return optuna.pruners.MedianPruner(n_startup_trials=info["startup_trials"], n_warmup_steps=info["warmup_epochs"])


# ---------------------------------------------------------------------------------------------
# the cell function of a trial (runs in the driver or in a Ray worker)


def run_trial_cell(cell: Cell, out_dir: Path, shared: Any, *, cell_fn: CellFn) -> list[ResultRow]:
    """Run a trial's cell with ``cell_fn`` and report every epoch's validation score to its study;
    a pruned trial returns no rows."""
    from recwise.train.trainer import observe_epochs

    optuna = _optuna()
    info = cell.options["tune"]
    inner = dataclasses.replace(cell, options={k: v for k, v in cell.options.items() if k != "tune"})
    if info["pruner"] == "none":
        return cell_fn(inner, out_dir, shared)
    study = optuna.load_study(study_name=info["study"], storage=info["storage"], pruner=_pruner(optuna, info))
    trial = optuna.trial.Trial(study, info["trial_id"])
    next_step = [0]

    def report(epoch: int, score: float) -> None:
        step = max(epoch, next_step[0])  # the epoch after a resume; a running count across fits
        next_step[0] = step + 1
        if math.isfinite(score):
            trial.report(score, step)
        if trial.should_prune():
            raise optuna.TrialPruned(f"pruned after epoch {step + 1}")

    try:
        with observe_epochs(report):
            return cell_fn(inner, out_dir, shared)
    except optuna.TrialPruned:
        return []


# ---------------------------------------------------------------------------------------------
# the driver


def _trial_cell(task: Any, args: argparse.Namespace, extra: dict[str, Any], unit: str, cfg: TuneConfig,
                params: dict[str, Any], tune_info: dict[str, Any] | None) -> Cell:
    """The cell of one trial: the user's ``--set`` plus the sampled keys, resolved by the task."""
    sets = [*args.set, *(f"{k}={v}" for k, v in params.items())]
    ns = argparse.Namespace(**{**vars(args), "set": sets})
    options = task.options(ns, [unit])
    cell: Cell = task.cells(ns, [unit], [cfg.seed], {**options, **extra})[0]
    if tune_info is None:
        return cell
    return dataclasses.replace(cell, tag=f"trial{tune_info['number']}", options={**cell.options, "tune": tune_info})


def _value(task: Any, rows: list[ResultRow]) -> float:
    for r in rows:
        if r.split == "val" and r.segment == "all" and r.metric == task.tune_metric:
            return float(r.value)
    raise ConfigError(f"task '{task.name}' returned no validation '{task.tune_metric}' row (split val, "
                      f"segment all); recwise tune selects on it")


def _executor(fn: CellFn, shared: Any, grid: dict[str, Any]) -> LocalExecutor | RayExecutor:
    if grid["executor"] == "ray":
        return RayExecutor(fn, shared, grid["threads"], address=grid["address"], workers=grid["workers"],
                           gpus=grid["gpus"], deterministic=grid["deterministic"])
    return LocalExecutor(fn, shared, grid["threads"], grid["deterministic"])


def _tune_unit(optuna: Any, task: Any, args: argparse.Namespace, extra: dict[str, Any], unit: str,
               cfg: TuneConfig, storage: str, out: Path, ex: LocalExecutor | RayExecutor,
               quiet: bool) -> StudyReport:
    from tqdm.auto import tqdm

    TS = optuna.trial.TrialState
    space = task.search_space(unit)
    searched = {k.partition("=")[0].strip() for k in args.set} & set(space)
    if searched:
        raise ConfigError(f"option --set {sorted(searched)[0]}: tune searches it; drop it or remove it from "
                          f"the search space")
    dists = {k: _distribution(optuna, p) for k, p in space.items()}
    name = study_name(task.name, args.dataset, unit)
    parallel = ex.slots > 1
    study = optuna.create_study(
        study_name=name, storage=storage, load_if_exists=True, direction=task.tune_direction,
        sampler=optuna.samplers.TPESampler(seed=cfg.sampler_seed, constant_liar=parallel),
        pruner=_pruner(optuna, dataclasses.asdict(cfg)))
    study.set_user_attr("task", task.name)
    study.set_user_attr("dataset", args.dataset)
    study.set_user_attr("model", unit)
    finished_states = (TS.COMPLETE, TS.PRUNED, TS.FAIL)
    old = study.get_trials(deepcopy=False)
    n_finished = sum(t.state in finished_states for t in old)
    leftover = [t for t in old if t.state == TS.RUNNING]  # a killed driver's trials: run them again
    info_base = {"study": name, "storage": storage, "pruner": cfg.pruner, "startup_trials": cfg.startup_trials,
                 "warmup_epochs": cfg.warmup_epochs}
    in_flight: dict[int, tuple[int, int, float]] = {}  # job index -> (trial number, trial id, start time)
    trial_seconds: list[float] = []
    t0 = time.perf_counter()
    n_jobs = 0
    bar = tqdm(total=cfg.trials, initial=min(n_finished, cfg.trials), desc=unit, unit="trial", disable=quiet,
               dynamic_ncols=True)

    def submit(number: int, trial_id: int, params: dict[str, Any]) -> None:
        nonlocal n_jobs
        cell = _trial_cell(task, args, extra, unit, cfg, params,
                           {**info_base, "number": number, "trial_id": trial_id})
        ex.submit(_Job(n_jobs, cell, out / "cells" / cell.path))
        in_flight[n_jobs] = (number, trial_id, time.perf_counter())
        n_jobs += 1

    def can_ask() -> bool:
        running = len(in_flight) + len(leftover)
        timed_out = cfg.timeout is not None and time.perf_counter() - t0 >= cfg.timeout
        return not timed_out and n_finished + running < cfg.trials

    try:
        while True:
            while len(in_flight) < ex.slots and (leftover or can_ask()):
                if leftover:
                    t = leftover.pop(0)
                    submit(t.number, t._trial_id, t.params)  # optuna keeps the id private; Trial() needs it
                else:
                    trial = study.ask(dists)
                    submit(trial.number, trial._trial_id, trial.params)
            if not in_flight:
                break
            job, outcome = ex.next_done(lambda _j: bar.refresh())
            number, trial_id, started = in_flight.pop(job.index)
            trial_seconds.append(time.perf_counter() - started)
            if outcome.status == "done" and outcome.rows:
                study.tell(number, _value(task, outcome.rows))
            elif outcome.status == "done":
                study.tell(number, state=TS.PRUNED)
            else:
                study.tell(number, state=TS.FAIL)
                # the reason, readable with optuna's own tools (a told trial takes no set_user_attr)
                study._storage.set_trial_system_attr(trial_id, "fail_reason", outcome.reason)
                bar.clear()
                print(f"recwise: {unit} trial {number} failed: {outcome.reason}", file=sys.stderr)
            n_finished += 1
            bar.update(1)
            done = [t for t in study.get_trials(deepcopy=False) if t.state == TS.COMPLETE]
            if done:
                bar.set_postfix_str(f"best={study.best_value:.4f}", refresh=True)
    finally:
        bar.close()
    return _report(optuna, study, unit, time.perf_counter() - t0, trial_seconds)


def _report(optuna: Any, study: Any, unit: str, seconds: float, trial_seconds: list[float]) -> StudyReport:
    TS = optuna.trial.TrialState
    trials = study.get_trials(deepcopy=False)
    complete = [t for t in trials if t.state == TS.COMPLETE]
    importance: dict[str, float] = {}
    if len(complete) >= 2:
        try:
            importance = {k: round(float(v), 4) for k, v in optuna.importance.get_param_importances(study).items()}
        except (RuntimeError, ValueError):  # e.g. every complete trial has the same value
            importance = {}
    best = study.best_trial if complete else None
    return StudyReport(unit, study.study_name, len(trials), len(complete),
                       sum(t.state == TS.PRUNED for t in trials), sum(t.state == TS.FAIL for t in trials),
                       best.number if best else None, float(best.value) if best else None,
                       dict(best.params) if best else {}, importance, seconds, trial_seconds)


def _plain(value: Any) -> Any:
    """YAML-safe values: tuples become lists."""
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return value


def preset_entry(cell: Cell, params: dict[str, Any]) -> dict[str, Any]:
    """A model's block of presets.yaml: the best trial's resolved ``train``/``model`` options when the
    task's cells carry them (msr), else the sampled keys by scope."""
    o = cell.options
    if isinstance(o.get("train"), dict) and isinstance(o.get("model"), dict):
        train = {k: v for k, v in o["train"].items() if k != "seed"}
        return {"train": _plain(train), **_plain(o["model"])}
    entry: dict[str, Any] = {}
    for key, value in params.items():
        scope, _, rest = key.partition(".")
        if scope == "model":
            entry[rest] = value
        else:
            entry.setdefault(scope, {})[rest] = value
    return entry


def tune(task: Any, args: argparse.Namespace, units: Sequence[str], cfg: TuneConfig, out: Path, *,
         cell_fn: CellFn, grid: dict[str, Any]) -> list[StudyReport]:
    """Tune every unit; write ``out/presets.yaml`` and ``out/tune.md``; return the studies' reports."""
    import yaml

    optuna = _optuna()
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    storage = cfg.storage or f"sqlite:///{(out / 'study.db').resolve()}"
    for unit in units:  # every search space checked before any data is read
        for p in task.search_space(unit).values():
            _distribution(optuna, p)
    shared, extra = task.load(args, out)
    ex = _executor(functools.partial(run_trial_cell, cell_fn=cell_fn), shared, grid)
    reports = []
    try:
        for unit in units:
            reports.append(_tune_unit(optuna, task, args, extra, unit, cfg, storage, out, ex, grid["quiet"]))
    finally:
        ex.close()
    presets: dict[str, Any] = {}
    for r in reports:
        if r.best_trial is None:
            continue
        entry = preset_entry(_trial_cell(task, args, extra, r.unit, cfg, r.best_params, None), r.best_params)
        entry["tuned"] = {"study": r.study, "storage": storage, "trials": r.trials, "complete": r.complete,
                          "pruned": r.pruned, "failed": r.failed, "best_trial": r.best_trial,
                          f"val_{task.tune_metric}": round(float(r.best_value or 0.0), 6),
                          "importance": r.importance}
        presets[r.unit] = entry
    head = (f"# written by `recwise tune {task.name}` on {args.dataset}: each model's best trial (validation "
            f"{task.tune_metric} only),\n# TPE seed {cfg.sampler_seed}, {cfg.trials} trials per model; "
            f"`tuned:` says which study it came from.\n")
    atomic_write_text(out / "presets.yaml", head + yaml.safe_dump({"models": presets}, sort_keys=False))
    atomic_write_text(out / "tune.md", report_markdown(task, args.dataset, reports))
    return reports


def report_markdown(task: Any, dataset: str, reports: Sequence[StudyReport]) -> str:
    metric = task.tune_metric
    lines = [f"# recwise tune {task.name} on {dataset}\n",
             f"| model | trials | complete | pruned | failed | best trial | val {metric} | s/trial | importance |",
             "|---|---|---|---|---|---|---|---|---|"]
    for r in reports:
        per = sum(r.trial_seconds) / len(r.trial_seconds) if r.trial_seconds else float("nan")
        imp = ", ".join(f"{k} {v:.2f}" for k, v in list(r.importance.items())[:3])
        val = f"{r.best_value:.4f}" if r.best_value is not None else "-"
        lines.append(f"| {r.unit} | {r.trials} | {r.complete} | {r.pruned} | {r.failed} | "
                     f"{r.best_trial if r.best_trial is not None else '-'} | {val} | {per:.1f} | {imp} |")
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------------------------------------
# CLI glue (recwise/cli.py builds `recwise tune <task>` for every task)


def add_tune_arguments(q: argparse.ArgumentParser) -> None:
    """``--trials``, ``--timeout``, ``--storage``, the sampler and pruner options."""
    g = q.add_argument_group("tuning")
    g.add_argument("--trials", type=int, default=20, help="trials per model (default 20)")
    g.add_argument("--timeout", type=float, default=None, help="seconds per model after which no trial starts")
    g.add_argument("--storage", default="", metavar="URL",
                   help="Optuna storage (default sqlite:///OUT/study.db; a database URL for many workers)")
    g.add_argument("--sampler-seed", type=int, default=0, help="seed of the TPE sampler (default 0)")
    g.add_argument("--pruner", default="median", help="median (default) or none")
    g.add_argument("--startup-trials", type=int, default=5, help="trials before the pruner prunes (default 5)")
    g.add_argument("--warmup-epochs", type=int, default=2, help="epochs of a trial before it can be pruned")


def tune_config(args: argparse.Namespace) -> TuneConfig:
    return TuneConfig(trials=args.trials, timeout=args.timeout, storage=args.storage,
                      sampler_seed=args.sampler_seed, seed=args.seed, pruner=args.pruner,
                      startup_trials=args.startup_trials, warmup_epochs=args.warmup_epochs)


def tune_grid_options(args: argparse.Namespace, *, deterministic: bool) -> dict[str, Any]:
    """The executor options of ``recwise tune`` (the grid flags; ``--store`` does not apply)."""
    if getattr(args, "store", None) is not None:
        raise ConfigError("option --store: recwise tune writes no result rows; its record is the study (--storage)")
    if getattr(args, "finished_only", False):
        raise ConfigError("option --finished-only is for recwise bench; a study's record is its --storage")
    grid = grid_options(args)
    grid["deterministic"] = deterministic
    return grid

