"""Before/after tables of an equal-budget tuning (issue 17): what each study found, and how the ranking moved.

Reads the Optuna storage written by `recwise tune msr`, its presets.yaml, and two `recwise bench msr`
folders (the table before tuning and the one with the tuned presets), and prints two markdown tables:

1. per model: trials (complete / pruned / failed), the best trial's validation AUC, the seed-0 validation
   AUC of the bench cells before and after (after = the tuned preset, so it repeats the best trial when
   the trial and the cell computed the same thing), the 3-seed test AUC before and after, and the rank
   by mean test AUC before and after;
2. per model: Optuna's importance of each searched key (from presets.yaml's `tuned:` blocks);
3. with `--defaults`, docs/msr.md's "Training defaults" table: what the package's ml-100k preset
   resolves to (4 significant digits; tests/tasks/msr/test_protocol.py checks it against the code).

    python scripts/msr_tuning_table.py --tune results/tune-msr-ml-100k \
        --before results/msr-ml-100k-pretune --after results/msr-ml-100k
"""

from __future__ import annotations

import argparse
import csv
import statistics
from pathlib import Path

import optuna
import yaml

from recwise.registry import get_model, list_models
from recwise.tasks.msr.protocol import MSRRun, resolve_configs


def defaults_table(dataset: str = "ml-100k") -> None:
    print("| model | lr | weight decay | batch | patience | epochs | model options (searched) |")
    print("|---|---|---|---|---|---|---|")
    for m in list_models("msr"):
        t, c = resolve_configs(MSRRun(dataset, m, 0))
        opts = []
        for key in sorted(get_model("msr", m).search_space):
            v = getattr(c, key)
            opts.append(f"{key} {'-'.join(map(str, v)) if isinstance(v, (tuple, list)) else f'{v:.4g}'}")
        print(f"| {m} | {t.lr:.4g} | {t.weight_decay:.4g} | {t.batch_size} | {t.patience} | {t.epochs} | "
              f"{'; '.join(opts) or '-'} |")


def _cells(folder: Path) -> dict[tuple[str, int, str], float]:
    """(model, seed, split) -> AUC of segment `all` from a bench folder's results.csv."""
    out = {}
    with open(folder / "results.csv", newline="") as f:
        for r in csv.DictReader(f):
            if r["segment"] == "all" and r["metric"] == "auc":
                out[(r["model"], int(r["seed"]), r["split"])] = float(r["value"])
    return out


def _test(cells: dict[tuple[str, int, str], float], model: str) -> list[float]:
    return [v for (m, _, split), v in sorted(cells.items()) if m == model and split == "test"]


def _ranks(cells: dict[tuple[str, int, str], float], models: list[str]) -> dict[str, int]:
    means = {m: statistics.mean(_test(cells, m)) for m in models if _test(cells, m)}
    return {m: i + 1 for i, m in enumerate(sorted(means, key=lambda m: -means[m]))}


def _fmt(xs: list[float]) -> str:
    if not xs:
        return "-"
    sd = statistics.stdev(xs) if len(xs) > 1 else 0.0
    return f"{statistics.mean(xs):.4f} ± {sd:.4f}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--defaults", action="store_true", help="print only the training-defaults table")
    ap.add_argument("--tune", type=Path, help="the `recwise tune` --out folder")
    ap.add_argument("--before", type=Path, help="bench folder with the earlier presets")
    ap.add_argument("--after", type=Path, help="bench folder with the tuned presets")
    args = ap.parse_args()
    if args.defaults:
        defaults_table()
        return
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    storage = f"sqlite:///{args.tune / 'study.db'}"
    presets = yaml.safe_load((args.tune / "presets.yaml").read_text())["models"]
    before, after = _cells(args.before), _cells(args.after)
    models = sorted(presets)
    rank_b, rank_a = _ranks(before, models), _ranks(after, models)

    print("| model | trials (complete / pruned / failed) | best trial | val AUC, best trial | val AUC seed 0, before "
          "-> after | test AUC before | test AUC after | rank before -> after |")
    print("|---|---|---|---|---|---|---|---|")
    for m in sorted(models, key=lambda m: rank_a.get(m, 99)):
        study = optuna.load_study(study_name=presets[m]["tuned"]["study"], storage=storage)
        states = [t.state for t in study.get_trials(deepcopy=False)]
        n = {s: sum(x == s for x in states) for s in optuna.trial.TrialState}
        ts = optuna.trial.TrialState
        print(f"| {m} | {len(states)} ({n[ts.COMPLETE]} / {n[ts.PRUNED]} / {n[ts.FAIL]}) | "
              f"{study.best_trial.number} | {study.best_value:.4f} | "
              f"{before.get((m, 0, 'val'), float('nan')):.4f} -> {after.get((m, 0, 'val'), float('nan')):.4f} | "
              f"{_fmt(_test(before, m))} | {_fmt(_test(after, m))} | {rank_b.get(m, '-')} -> {rank_a.get(m, '-')} |")

    print()
    print("| model | importance of each searched key (Optuna, complete trials) |")
    print("|---|---|")
    for m in models:
        imp = presets[m]["tuned"].get("importance") or {}
        print(f"| {m} | " + ", ".join(f"{k} {v:.2f}" for k, v in imp.items()) + " |")


if __name__ == "__main__":
    main()
