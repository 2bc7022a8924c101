"""Regenerate or check the tables in docs/ that are marked with the command that makes them.

A generated table sits between two HTML comments that markdown does not show::

    <!-- table: recwise compare results/msr-ml-100k --baseline lr | quick -->
    | model | ... |
    |---|...|
    <!-- /table -->

The command runs from the repository root (a leading ``recwise`` means ``.venv/bin/recwise``), and
the table is the markdown table lines (lines starting with ``|``) of what it prints, in order.
``quick`` marks a command that takes seconds; the others (full benchmark grids) are re-run only
with ``--all``.

    python scripts/check_docs_tables.py            # re-run the quick commands; exit 1 on a difference
    python scripts/check_docs_tables.py --all      # every command (the msr grid takes ~10-15 min)
    python scripts/check_docs_tables.py --update   # write the fresh tables into the docs
    python scripts/check_docs_tables.py --list     # the marked tables and their commands
"""

from __future__ import annotations

import argparse
import difflib
import os
import re
import shlex
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BLOCK = re.compile(r"^<!-- table: (?P<cmd>.+?)(?P<quick> \| quick)? -->\n(?P<body>.*?)^<!-- /table -->$",
                   re.M | re.S)


@dataclass
class Block:
    doc: Path
    command: str
    quick: bool
    body: str
    start: int
    end: int


def blocks(doc: Path) -> list[Block]:
    text = doc.read_text()
    return [Block(doc, m["cmd"].strip(), bool(m["quick"]), m["body"], m.start("body"), m.end("body"))
            for m in BLOCK.finditer(text)]


def table_lines(text: str) -> list[str]:
    return [line.rstrip() for line in text.splitlines() if line.startswith("|")]


def run(command: str) -> str:
    argv = shlex.split(command)
    if argv and argv[0] == "recwise":
        argv[0] = str(ROOT / ".venv" / "bin" / "recwise")
    proc = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True,
                          env={**os.environ, "TQDM_DISABLE": "1"})
    if proc.returncode != 0:
        raise SystemExit(f"check_docs_tables: `{command}` failed ({proc.returncode}): "
                         f"{(proc.stderr.strip().splitlines() or [''])[-1]}")
    return proc.stdout


def write_atomic(path: Path, text: str) -> None:
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(text)
    os.replace(tmp, path)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--all", action="store_true", help="also re-run the slow commands")
    ap.add_argument("--update", action="store_true", help="write the regenerated tables into the docs")
    ap.add_argument("--list", action="store_true", help="list the marked tables")
    ap.add_argument("docs", nargs="*", type=Path, help="docs to check (default: docs/*.md and README.md)")
    args = ap.parse_args()
    docs = [d.resolve() for d in args.docs] or sorted((ROOT / "docs").glob("*.md")) + [ROOT / "README.md"]
    failed = checked = skipped = 0
    for doc in docs:
        found = blocks(doc)
        new_text = doc.read_text()
        for b in reversed(found):  # from the end, so earlier offsets stay valid
            where = f"{doc.relative_to(ROOT)}: `{b.command}`"
            if args.list:
                print(f"{'quick' if b.quick else 'slow '}  {where}")
                continue
            if not (b.quick or args.all):
                skipped += 1
                continue
            fresh = table_lines(run(b.command))
            if not fresh:
                print(f"{where}: the command printed no markdown table", file=sys.stderr)
                failed += 1
                continue
            checked += 1
            old = table_lines(b.body)
            if fresh == old:
                print(f"ok    {where}")
                continue
            if args.update:
                body = b.body
                first = body.index(old[0]) if old else 0
                last = body.index(old[-1]) + len(old[-1]) if old else 0
                body = body[:first] + "\n".join(fresh) + body[last:] if old else "\n".join(fresh) + "\n" + body
                new_text = new_text[:b.start] + body + new_text[b.end:]
                print(f"wrote {where}")
            else:
                failed += 1
                print(f"DIFF  {where}", file=sys.stderr)
                sys.stderr.writelines(line + "\n" for line in difflib.unified_diff(old, fresh, "doc", "fresh",
                                                                                    lineterm=""))
        if args.update and new_text != doc.read_text():
            write_atomic(doc, new_text)
    if not args.list:
        print(f"{checked} tables checked, {failed} differ or failed, {skipped} slow ones not re-run (--all)")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
