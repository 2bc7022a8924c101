"""recwise tune: Optuna studies over grid cells, resumable, written back as bench presets."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import optuna
import pytest
import yaml

from recwise.bench.tune import TuneConfig, _trial_cell, preset_entry, study_name, tune
from recwise.cli import main
from recwise.data.cache import Prepared
from recwise.tasks.base import run_task_cell
from recwise.tasks.msr import MSRTask
from recwise.train.space import in_space

GRID = {"executor": "local", "address": None, "workers": None, "threads": 1, "gpus": 0.0, "quiet": True,
        "deterministic": True}


class PlantedMSR(MSRTask):
    """The msr task on the planted-structure table (conftest), so a trial trains in well under a second."""

    def __init__(self, planted: Prepared) -> None:
        self.planted = planted

    def load(self, args: argparse.Namespace, out: Path | None) -> tuple[Any, dict[str, Any]]:
        return self.planted, {"data": "planted"}


def _args(**kw: Any) -> argparse.Namespace:
    base = {"dataset": "planted", "set": ["train.patience=2"], "epochs": 3, "preset": None, "split_seed": 2022}
    return argparse.Namespace(**{**base, **kw})


def _tune(planted: Prepared, out: Path, trials: int, **kw: Any) -> list[Any]:
    cfg = TuneConfig(trials=trials, startup_trials=1, warmup_epochs=0, **kw)
    return tune(PlantedMSR(planted), _args(), ["mmoe"], cfg, out, cell_fn=run_task_cell, grid=GRID)


def _study(out: Path) -> Any:
    return optuna.load_study(study_name=study_name("msr", "planted", "mmoe"), storage=f"sqlite:///{out / 'study.db'}")


def test_tune_writes_a_study_optuna_reads_and_resumes_it(planted: Prepared, tmp_path: Path) -> None:
    (rep,) = _tune(planted, tmp_path, 3)
    study = _study(tmp_path)
    first = [(t.number, t.params, t.value, t.state) for t in study.trials]
    assert len(first) == 3 and rep.trials == 3
    assert all(t.state.is_finished() for t in study.trials)
    # every epoch's validation AUC reached the pruner (3 epochs, patience 2: 3 reports unless pruned)
    assert all(len(t.intermediate_values) >= 1 for t in study.trials)
    complete = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    assert rep.best_value == max(t.value for t in complete)
    space = PlantedMSR(planted).search_space("mmoe")
    assert all(not in_space(space, t.params) for t in study.trials)

    (rep,) = _tune(planted, tmp_path, 5)  # a larger budget adds trials; it does not start over
    study = _study(tmp_path)
    assert len(study.trials) == 5 and rep.trials == 5
    assert [(t.number, t.params, t.value, t.state) for t in study.trials[:3]] == first


def test_a_trial_left_running_by_a_killed_driver_is_run_again(planted: Prepared, tmp_path: Path) -> None:
    _tune(planted, tmp_path, 1)
    study = _study(tmp_path)
    left = study.ask({"train.lr": optuna.distributions.FloatDistribution(1e-3, 1e-2, log=True)})
    assert study.trials[left.number].state == optuna.trial.TrialState.RUNNING
    _tune(planted, tmp_path, 2)
    study = _study(tmp_path)
    assert len(study.trials) == 2  # the leftover counted towards the budget, no third trial
    assert study.trials[left.number].state.is_finished()
    assert study.trials[left.number].state != optuna.trial.TrialState.RUNNING


def test_a_curve_below_the_median_is_pruned_after_its_first_epoch(planted: Prepared, tmp_path: Path) -> None:
    study = optuna.create_study(study_name=study_name("msr", "planted", "mmoe"), direction="maximize",
                                storage=f"sqlite:///{tmp_path / 'study.db'}")
    study.add_trial(optuna.trial.create_trial(value=1.0, intermediate_values={0: 1.0, 1: 1.0, 2: 1.0}))
    (rep,) = _tune(planted, tmp_path, 2)  # a perfect earlier curve: any real one lies below its median
    new = _study(tmp_path).trials[1]
    assert new.state == optuna.trial.TrialState.PRUNED and rep.pruned == 1
    assert list(new.intermediate_values) == [0]  # stopped after one epoch of the 3


def test_presets_yaml_round_trips_into_the_bench_config(planted: Prepared, tmp_path: Path) -> None:
    task = PlantedMSR(planted)
    params = {"train.lr": 0.0042, "train.weight_decay": 3e-6, "train.batch_size": 512, "model.embed_dim": 8,
              "model.expert_dims": "32", "model.tower_dims": "4", "model.dropout": 0.25}
    cell = _trial_cell(task, _args(), {}, "mmoe", TuneConfig(trials=1), params, None)
    entry = preset_entry(cell, params)
    entry["tuned"] = {"study": "msr/planted/mmoe", "trials": 1, "val_auc": 0.7}
    path = tmp_path / "presets.yaml"
    path.write_text(yaml.safe_dump({"models": {"mmoe": entry}}))

    resolved = task.options(_args(set=[], epochs=None, preset=str(path)), ["mmoe"])["resolved"]["mmoe"]
    assert resolved == {"train": cell.options["train"], "model": cell.options["model"]}
    assert resolved["train"]["lr"] == 0.0042 and resolved["train"]["batch_size"] == 512
    assert resolved["model"]["expert_dims"] == (32,) and resolved["model"]["dropout"] == 0.25


@pytest.mark.parametrize(("argv", "pattern"), [
    (["--models", "stra"], "did you mean 'star'"),
    (["--trials", "0"], "option --trials must be >= 1"),
    (["--pruner", "hyperband"], "option --pruner must be 'median' or 'none'"),
    (["--set", "train.lr=0.01"], "option --set train.lr: tune searches it"),
    (["--set", "model.fcn_dimz=64"], "fcn_dimz"),
    (["--store", "x.duckdb"], "option --store"),
    (["--finished-only"], "option --finished-only is for recwise bench"),
    (["--preset", "/nonexistent/presets.yaml"], "option --preset: no file"),
])
def test_bad_tune_options_are_one_line_errors(argv: list[str], pattern: str, tmp_path: Path,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    base = ["tune", "msr", "--dataset", "ml-100k", "--models", "star", "--out", str(tmp_path), "--trials", "1"]
    assert main([*base, *argv]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and pattern in err, err
    assert not (tmp_path / "study.db").exists()
