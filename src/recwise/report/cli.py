"""``recwise results`` (query and import the results store) and ``recwise report`` (the HTML page)."""

from __future__ import annotations

import argparse
import math
import tempfile
from collections.abc import Callable
from pathlib import Path

from recwise.errors import ConfigError

__all__ = ["provenance_lines", "register"]

_GROUPABLE = ("task", "dataset", "model", "seed", "split", "segment", "metric", "config_hash")
# provenance columns --by also takes (recwise.store.PROVENANCE_COLUMNS; not imported here so that
# building the parser does not import the store)
_PROVENANCE = ("git_commit", "git_dirty", "version", "threads", "executor", "deterministic")


def register(sub: argparse._SubParsersAction, add_common: Callable[[argparse.ArgumentParser], None]) -> None:
    p = sub.add_parser("results", help="query the results store: mean, std and count per group",
                       description="Mean, sample std and count of each group of stored result rows (the latest "
                                   "run of each cell), then the provenance behind them: each distinct (git commit, "
                                   "threads, executor, deterministic) with its row count. "
                                   "`recwise results import PATH...` adds results.csv files.")
    _store_arg(p)
    p.add_argument("--task", default=None, help="comma-separated task names")
    p.add_argument("--dataset", default=None, help="comma-separated dataset names")
    p.add_argument("--model", default=None, help="comma-separated model names")
    p.add_argument("--metric", default=None, help="comma-separated metrics, e.g. auc or ndcg@10,hit@10")
    p.add_argument("--split", default="test", help="val, test or 'any' (default test)")
    p.add_argument("--segment", default=None, help="comma-separated segments, e.g. all or scenario=0")
    p.add_argument("--by", default="task,dataset,model,split,segment,metric",
                   help="grouping columns (default task,dataset,model,split,segment,metric); also seed, "
                        "config_hash and the provenance columns " + ", ".join(_PROVENANCE))
    p.add_argument("--no-provenance", dest="provenance", action="store_false",
                   help="leave out the provenance lines under the table")
    p.add_argument("--all-runs", action="store_true", help="count every stored run, not only each cell's latest")
    add_common(p)
    p.set_defaults(func=cmd_results)
    rs = p.add_subparsers(dest="action")
    q = rs.add_parser("import", help="append results.csv files (and their failures) to the store")
    q.add_argument("paths", nargs="+", type=Path, metavar="PATH", help="results.csv files or folders holding one")
    q.add_argument("--force", action="store_true", help="import a file even if it was imported before")
    _store_arg(q, sub=True)
    add_common(q)
    q.set_defaults(func=cmd_import)

    p = sub.add_parser("report", help="write the results as one static HTML page",
                       description="A self-contained HTML page (no network needed): leaderboards per task and "
                                   "dataset, per-scenario bars, AUC vs k and metric vs sequence-length curves, "
                                   "failed cells and provenance.")
    src = p.add_mutually_exclusive_group()
    src.add_argument("--store", type=Path, default=None, metavar="FILE",
                     help="results store (default $RECWISE_STORE or $RECWISE_HOME/results.duckdb)")
    src.add_argument("--results", type=Path, nargs="+", default=None, metavar="CSV",
                     help="read these results.csv files (or their folders) instead of a store")
    p.add_argument("--out", type=Path, default=Path("report"), help="output folder (default ./report)")
    p.add_argument("--split", default="test", help="split shown (default test)")
    p.add_argument("--title", default="recwise results", help="page title")
    add_common(p)
    p.set_defaults(func=cmd_report)


def _store_arg(p: argparse.ArgumentParser, *, sub: bool = False) -> None:
    # on `results import` the default is SUPPRESS, so `results --store F import ...` keeps F
    p.add_argument("--store", type=Path, default=argparse.SUPPRESS if sub else None,
                   metavar="FILE", help="results store (default $RECWISE_STORE or $RECWISE_HOME/results.duckdb)")


def _split_list(value: str | None) -> list[str] | None:
    if value is None:
        return None
    items = [v.strip() for v in value.split(",") if v.strip()]
    return items or None


def _store(args: argparse.Namespace):  # noqa: ANN202
    from recwise.store import ResultStore

    return ResultStore(getattr(args, "store", None))


def cmd_results(args: argparse.Namespace) -> int:
    store = _store(args)
    by = _split_list(args.by) or []
    bad = [c for c in by if c not in _GROUPABLE + _PROVENANCE]
    if bad:
        raise ConfigError(f"option --by: cannot group by {bad[0]!r}; choose from "
                          f"{', '.join(_GROUPABLE + _PROVENANCE)}")
    filters = {"task": _split_list(args.task), "dataset": _split_list(args.dataset), "model": _split_list(args.model),
               "metric": _split_list(args.metric), "segment": _split_list(args.segment),
               "split": None if args.split == "any" else _split_list(args.split)}
    df = store.summary(by=by, latest=not args.all_runs, **filters)
    if df.height == 0:
        print(f"no rows match in {store.path}")
    else:
        print(_text_table(df.to_dicts(), by))
        if getattr(args, "provenance", True):
            print()
            print(provenance_lines(store.provenance(latest=not args.all_runs, **filters).to_dicts()))
    fails = store.failures(**{k: v for k, v in filters.items() if k in ("task", "dataset", "model")})
    if fails.height:
        print(f"\n{fails.height} failed cell(s):")
        for f in fails.iter_rows(named=True):
            print(f"  {f['task']} {f['dataset']} {f['model']} seed {f['seed']}: {f['error']}")
    return 0


def provenance_lines(recs: list[dict]) -> str:
    """The provenance under a results table: one line per distinct (commit, threads, executor,
    deterministic), with the rows and runs behind it; '?' where rows do not say."""
    combos: dict[tuple, list[int]] = {}
    for r in recs:  # store.provenance() also splits by version and packages: merged here
        commit = r["git_commit"][:10] + ("+dirty" if r["git_dirty"] else "") if r["git_commit"] else "?"
        det = "?" if r["deterministic"] is None else ("yes" if r["deterministic"] else "no")
        key = (commit, "?" if r["threads"] is None else str(r["threads"]), r["executor"] or "?", det)
        counts = combos.setdefault(key, [0, 0])
        counts[0] += r["rows"]
        counts[1] += r["runs"]
    cols = ["git commit", "threads", "executor", "deterministic", "rows", "runs"]
    cells = [[*key, str(n), str(runs)] for key, (n, runs) in sorted(combos.items(), key=lambda kv: -kv[1][0])]
    head = f"provenance of these rows ({len(cells)} distinct):"
    return head + "\n" + _format(cols, cells, right={1, 4, 5}, indent="  ")


def _format(cols: list[str], cells: list[list[str]], *, right: set[int], indent: str = "") -> str:
    widths = [max(len(c), *(len(row[i]) for row in cells)) for i, c in enumerate(cols)]

    def line(vals: list[str]) -> str:
        padded = (v.rjust(w) if i in right else v.ljust(w) for i, (v, w) in enumerate(zip(vals, widths)))
        return indent + "  ".join(padded).rstrip()
    return "\n".join([line(cols), line(["-" * w for w in widths]), *(line(row) for row in cells)])


def _text_table(recs: list[dict], by: list[str]) -> str:
    cols = [*by, "mean", "std", "n"]
    cells = [["?" if r[c] is None else str(r[c]) for c in by] + [_num(r["mean"]), _num(r["std"]), str(r["count"])]
             for r in recs]
    return _format(cols, cells, right={len(by), len(by) + 1, len(by) + 2})


def _num(x: float | None) -> str:
    return "nan" if x is None or math.isnan(x) else f"{x:.4f}"


def cmd_import(args: argparse.Namespace) -> int:
    from recwise.report._import import import_results

    store = _store(args)
    added = 0
    for path in args.paths:
        res = import_results(store, path, force=args.force)
        if res.skipped:
            print(f"{res.path}: imported before; skipped (--force to import again)")
        else:
            added += res.rows
            print(f"{res.path}: {res.rows} rows from {res.cells} cells, {res.failures} failed cells")
    print(f"{added} rows added to {store.path}")
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    from recwise.report._import import import_results
    from recwise.report._page import build_report
    from recwise.store import ResultStore

    if args.results:
        with tempfile.TemporaryDirectory(prefix="recwise-report-") as tmp:
            store = ResultStore(Path(tmp) / "results.duckdb")
            for path in args.results:
                import_results(store, path)
            label = ", ".join(str(p) for p in args.results)
            page = build_report(store, args.out, split=args.split, title=args.title, source_label=label)
    else:
        store = ResultStore(args.store)
        page = build_report(store, args.out, split=args.split, title=args.title)
    print(f"report written to {page} ({page.stat().st_size / 1e6:.1f} MB, opens offline)")
    return 0
