"""``recwise retrieval negatives show FILE``: read a cell's ``negatives.jsonl`` (what the LLM wrote, and why kept)."""

from __future__ import annotations

import argparse
import json
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

from recwise.errors import DataError

__all__ = ["register", "show_negatives"]


def show_negatives(path: Path, *, verdict: str = "all", limit: int = 10, width: int = 200) -> str:
    """A readable listing of the records of ``path`` whose verdict starts with ``verdict`` (``all``: every one),
    then the counts of every verdict."""
    if not path.is_file():
        raise DataError(f"{path} does not exist; a synthetic or hybrid cell writes <cell>/negatives.jsonl")
    records = []
    with open(path, encoding="utf-8") as fh:
        for lineno, line in enumerate(fh, 1):
            try:
                records.append(json.loads(line))
            except json.JSONDecodeError as exc:
                raise DataError(f"{path}:{lineno}: malformed JSON ({exc.msg})") from None
    chosen = [r for r in records if verdict == "all" or str(r.get("verdict", "")).startswith(verdict)]

    def cut(text: Any) -> str:
        s = " ".join(str(text).split())
        return s if len(s) <= width else s[: width - 3] + "..."

    out = []
    for r in chosen[:limit]:
        cos = (f"  cos(query) {r['cos_query']:.3f}  cos(positive) {r['cos_positive']:.3f}"
               if "cos_query" in r else "")
        out += [f"[{r.get('verdict')}] query row {r.get('query_row')}{cos}", f"  query:      {cut(r.get('query'))}",
                f"  positive:   {cut(r.get('positive'))}", f"  draft:      {cut(r.get('draft'))}",
                f"  reflection: {cut(r.get('reflection'))}", ""]
    counts = Counter(str(r.get("verdict")) for r in records)
    out.append(f"{len(chosen)} of {len(records)} records shown up to {limit}; "
               + ", ".join(f"{k}: {v}" for k, v in sorted(counts.items())))
    return "\n".join(out)


def register(sub: argparse._SubParsersAction, add_common: Callable[[argparse.ArgumentParser], None]) -> None:
    p = sub.add_parser("retrieval", help="retrieval tools (inspect synthesised negatives)")
    rs = p.add_subparsers(dest="action", required=True)
    q = rs.add_parser("negatives", help="synthesised hard negatives")
    ns = q.add_subparsers(dest="what", required=True)
    s = ns.add_parser("show", help="print a negatives.jsonl: query, positive, draft, reflection, verdict")
    s.add_argument("file", type=Path, help="a cell's negatives.jsonl (cells/<arm>/seed<k>/negatives.jsonl)")
    s.add_argument("--verdict", default="all",
                   help="all, kept, rejected, rejected-by-reflection, rejected-by-guard (prefix match)")
    s.add_argument("--limit", type=int, default=10)
    add_common(s)
    s.set_defaults(func=lambda a: print(show_negatives(a.file, verdict=a.verdict, limit=a.limit)) or 0)
    w = ns.add_parser("synthesise", help="the synthesis stage alone for every judged query: fills the LLM cache "
                                         "the synthetic and hybrid cells read; prints the counts")
    w.add_argument("--dataset", default="cranfield", help="cranfield, cisi, a BEIR name or any name with --data-dir")
    w.add_argument("--data-dir", default=None, help="read the raw files from this folder")
    w.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="synth.*, neg.*, dense.*, folds.*, data.split (as for `recwise run retrieval`)")
    w.add_argument("--out", type=Path, required=True, help="JSONL of every prompt's draft, reflection and verdict")
    add_common(w)
    w.set_defaults(func=cmd_synthesise)


def cmd_synthesise(args: argparse.Namespace) -> int:
    """``recwise retrieval negatives synthesise``: run :func:`~.protocol.synthesise_all`, print its counts."""
    from recwise.config import parse_overrides
    from recwise.data.retrieval import load_collection
    from recwise.tasks.base import split_scopes
    from recwise.tasks.retrieval.protocol import SCOPES, check_options, synthesise_all

    opts = split_scopes(parse_overrides(args.set), SCOPES, bare="synth")
    check_options(opts)
    split = str(opts.get("data", {}).get("split", "test"))
    col = load_collection(args.dataset, args.data_dir, split=split)
    counts = synthesise_all(col, opts, log_path=args.out, progress=not getattr(args, "quiet", False))
    print(json.dumps(counts))
    return 0
