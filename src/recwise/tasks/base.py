"""What a task is: the one shape every task family takes.

A task owns a protocol (what is trained on what, what is measured) and exposes it through
:class:`Task`: its name, its ``--set`` scopes, its own CLI arguments, how to load the data every
cell shares, how to run one cell and how to summarise a grid. The CLI builds ``recwise run
<task>`` and ``recwise bench <task>`` for every registered task from these pieces, with one set
of shared options (``--dataset``, ``--data-dir``, ``--epochs``, ``--set``, ``--seed(s)``,
``--out``, ``--resume``, the grid options, ``--threads``, ``--deterministic``), and runs both
through the same cell function, so ``run`` is a grid of one cell.

A task family is one folder, ``recwise/tasks/<name>/``, whose ``__init__`` defines ``TASK``, an
instance of a :class:`Task` subclass; :data:`TASKS` finds the folders itself. Tasks never import
each other: what two share lives in the layers below (``data``, ``metrics``, ``nn``, ``train``).

Adding a family::

    # recwise/tasks/myfamily/__init__.py
    class MyTask(Task):
        name = "myfamily"; help = "..."; scopes = ("train", "model")
        def units(self): ...                       # the names --model/--models choose from
        def load(self, args, out): ...             # shared data, read once per command
        def run_cell(self, cell, out_dir, shared, *, resume, progress): ...   # -> list[ResultRow]
    TASK = MyTask()
"""

from __future__ import annotations

import argparse
import pkgutil
import shutil
from abc import ABC, abstractmethod
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from recwise.config import parse_overrides
from recwise.errors import CheckpointError, ConfigError
from recwise.registry import Registry
from recwise.results import ResultRow, summary_markdown

if TYPE_CHECKING:
    from recwise.bench import Cell, GridResult

__all__ = ["TASKS", "Task", "get_task", "list_tasks", "protocol_attribute", "run_task_cell", "split_scopes"]


def split_scopes(overrides: dict[str, str], scopes: Sequence[str], *,
                 bare: str | None = None) -> dict[str, dict[str, str]]:
    """``scope.key=value`` overrides grouped by scope (split on the first dot; ``key`` may hold dots).

    A key without a scope goes to ``bare`` when given, else it is an error, as is an unknown scope.
    """
    out: dict[str, dict[str, str]] = {s: {} for s in scopes}
    for key, value in overrides.items():
        scope, dot, rest = key.partition(".")
        if not dot and bare is not None:
            out[bare][key] = value
        elif dot and rest and scope in out:
            out[scope][rest] = value
        else:
            allowed = ", ".join(f"'{s}.'" for s in scopes)
            raise ConfigError(f"--set key {key!r} must start with one of {allowed}")
    return out


class Task(ABC):
    """One task family. Subclasses set the class attributes and implement the three abstract hooks
    (``units``, ``load``, ``run_cell``); the rest have defaults that suit a models x seeds grid."""

    name: ClassVar[str]
    help: ClassVar[str]  # `recwise run <name>`'s one-line help
    bench_help: ClassVar[str] = ""
    unit: ClassVar[str] = "model"  # what a cell varies besides the seed: --model/--models or --method/--methods
    default_unit: ClassVar[str] = ""  # `run`'s default --model
    default_units: ClassVar[str] = "all"  # `bench`'s default --models ("all": every unit)
    units_help: ClassVar[str] = "comma-separated names or 'all'"  # help of --models
    dataset_help: ClassVar[str] = ""
    default_dataset: ClassVar[str] = "ml-100k"
    scopes: ClassVar[tuple[str, ...]] = ("train", "model")
    bare_scope: ClassVar[str | None] = None  # where a --set key without a scope goes (None: an error)
    set_help: ClassVar[str] = "override an option: train.lr=1e-3 (repeatable)"
    out_prefix: ClassVar[str] = ""  # runs/<prefix>-<dataset>/..., results/<prefix>-<dataset>
    summary_metrics: ClassVar[tuple[str, ...]] = ("auc", "logloss")  # the metrics of the default tables
    tune_metric: ClassVar[str] = "auc"  # `recwise tune` selects on this validation row (split val, segment all)
    tune_direction: ClassVar[str] = "maximize"  # or "minimize"

    # -- what a cell varies -----------------------------------------------------------------

    @abstractmethod
    def units(self) -> list[str]:
        """Every name ``--model`` / ``--models`` accepts."""

    def check_unit(self, name: str) -> None:
        """Raise a ConfigError naming the close match when ``name`` is not a unit."""
        known = self.units()
        if name not in known:
            from recwise.registry import did_you_mean

            raise ConfigError(f"unknown {self.unit} '{name}' for task '{self.name}'{did_you_mean(name, known)}")

    def expand_units(self, spec: str) -> list[str]:
        """``--models`` value -> names (``all`` is every unit); each name is checked."""
        names = self.units() if spec == "all" else [m.strip() for m in spec.split(",") if m.strip()]
        if not names:
            raise ConfigError(f"option --{self.unit}s names no {self.unit}")
        for n in names:
            self.check_unit(n)
        return names

    # -- the command line --------------------------------------------------------------------

    def add_arguments(self, parser: argparse.ArgumentParser, *, bench: bool) -> None:  # noqa: B027 (optional hook)
        """Add the task's own flags (the shared ones are added by the CLI)."""

    def options(self, args: argparse.Namespace, units: Sequence[str]) -> dict[str, Any]:
        """Every cell's options from the parsed flags, checked before any data is read.

        The default groups ``--set`` by :attr:`scopes` and puts ``--epochs`` into ``train``.
        The result must be JSON-serialisable: it is part of each cell's key.
        """
        opts: dict[str, Any] = split_scopes(parse_overrides(args.set), self.scopes, bare=self.bare_scope)
        if getattr(args, "epochs", None) is not None:
            opts.setdefault("train", {})["epochs"] = str(args.epochs)
        return opts

    @abstractmethod
    def load(self, args: argparse.Namespace, out: Path | None) -> tuple[Any, dict[str, Any]]:
        """Read the data every cell shares: ``(shared, extra options)``.

        ``extra options`` (the data's key, a dataset default) are merged into every cell's
        options, so a change of the data re-runs the cells. ``out``: the bench folder (None for
        ``run``), for tasks that keep caches beside the cells.
        """

    def cells(self, args: argparse.Namespace, units: Sequence[str], seeds: Sequence[int],
              options: dict[str, Any]) -> list[Cell]:
        """The grid: one cell per unit and seed."""
        from recwise.bench import Cell

        return [Cell(self.name, args.dataset, u, s, options) for u in units for s in seeds]

    @abstractmethod
    def run_cell(self, cell: Cell, out_dir: Path, shared: Any, *, resume: bool, progress: bool) -> list[ResultRow]:
        """Run one cell into ``out_dir`` and return its rows."""

    def search_space(self, unit: str) -> dict[str, Any]:
        """What ``recwise tune`` searches for ``unit``: ``--set`` keys (``train.lr``, ``model.dropout``)
        to :mod:`recwise.train.space` ranges.

        The default is the training space every model shares (:data:`~recwise.train.space.TRAIN_SPACE`:
        learning rate, weight decay, batch size) plus the ``search_space`` the unit's model class
        declares beside its config (its widths and dropout), when the task registers models.
        """
        from recwise.registry import MODEL_PACKAGES, MODELS, get_model
        from recwise.train.space import TRAIN_SPACE

        space: dict[str, Any] = dict(TRAIN_SPACE) if "train" in self.scopes else {}
        if "model" in self.scopes and (self.name in MODEL_PACKAGES or self.name in MODELS):
            own = getattr(get_model(self.name, unit), "search_space", {})
            space.update({f"model.{k}": v for k, v in own.items()})
        return space

    # -- reporting ---------------------------------------------------------------------------

    def run_report(self, cell: Cell, rows: list[ResultRow], out_dir: Path, seconds: float) -> str:
        """What ``recwise run`` prints after a cell."""
        md = summary_markdown(rows, metrics=self.summary_metrics).replace("**", "")
        return (f"{cell.model} on {cell.dataset}, seed {cell.seed}: {seconds:.1f} s\n\n{md}\n"
                f"results in {out_dir / 'results.csv'}")

    def bench_report(self, res: GridResult, out: Path, dataset: str) -> str:
        """The markdown ``recwise bench`` writes to ``results.md`` and prints."""
        return (f"# {self.name} on {dataset}: test metrics, mean ± std over seeds\n\n"
                + summary_markdown(res.rows, metrics=self.summary_metrics))

    def default_out(self, dataset: str, *, bench: bool, cell: Cell | None = None) -> Path:
        folder = f"{self.out_prefix}-{dataset}" if self.out_prefix else dataset
        if bench:
            return Path("results") / f"{self.out_prefix or self.name}-{dataset}"
        assert cell is not None
        return Path("runs") / folder / cell.path


# ---------------------------------------------------------------------------------------------
# the registry of tasks: every sub-package of recwise.tasks that defines TASK


def _check_task(name: str, task: Any) -> None:
    if not isinstance(task, Task):
        raise RuntimeError(f"recwise.tasks.{name}.TASK is not a Task instance")
    if task.name != name:
        raise RuntimeError(f"recwise.tasks.{name}.TASK is named {task.name!r}; a task's name is its folder's")


TASKS: Registry[Task] = Registry("task", check=_check_task)


def _discover() -> None:
    import recwise.tasks as pkg

    for info in pkgutil.iter_modules(pkg.__path__):
        if info.ispkg and info.name not in TASKS:
            TASKS.add_lazy(info.name, f"recwise.tasks.{info.name}:TASK")


_discover()


def protocol_attribute(package: str, name: str) -> Any:
    """``recwise.tasks.<family>.X`` for a name of the family's ``protocol`` module, imported on first
    use (a task package's ``__getattr__``), so that building the CLI does not import torch."""
    if name.startswith("__"):
        raise AttributeError(name)
    import importlib

    module = importlib.import_module(f"{package}.protocol")
    try:
        return getattr(module, name)
    except AttributeError:
        raise AttributeError(f"module {package!r} has no attribute {name!r}") from None


def get_task(name: str) -> Task:
    return TASKS.get(name)


def list_tasks() -> list[str]:
    return TASKS.names()


def run_task_cell(cell: Cell, out_dir: Path, shared: Any) -> list[ResultRow]:
    """The grid runner's cell function for every task: continue from a checkpoint when there is one,
    start over when the checkpoint belongs to other options."""
    task = get_task(cell.task)
    try:
        return task.run_cell(cell, out_dir, shared, resume=True, progress=False)
    except CheckpointError:
        shutil.rmtree(out_dir / "checkpoint", ignore_errors=True)
        return task.run_cell(cell, out_dir, shared, resume=False, progress=False)
