"""The ``recwise`` command line.

Each command group lives in its own module and exposes ``register(subparsers)``, which adds its
parser and sets ``func(args) -> int``. Errors derived from RecwiseError print as one line on
stderr with exit status 2; ``--debug`` shows the traceback.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from recwise.errors import RecwiseError

__all__ = ["main"]


def _add_common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--debug", action="store_true", default=argparse.SUPPRESS, help="show tracebacks")
    p.add_argument("--quiet", action="store_true", default=argparse.SUPPRESS, help="no progress bars")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="recwise", description="recommender and LLM-retrieval research toolkit")
    parser.add_argument("--debug", action="store_true", help="show tracebacks")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    parser.add_argument("--threads", type=int, default=None, help="torch intra-op threads (default: torch's)")
    sub = parser.add_subparsers(dest="command", required=True)
    from recwise import _cli_core

    _cli_core.register(sub, _add_common)
    try:
        from recwise.llm import _cli as llm_cli
    except ImportError:  # the LLM layer's CLI is optional
        llm_cli = None  # type: ignore[assignment]
    if llm_cli is not None:
        llm_cli.register(sub, _add_common)
    from recwise.report import _cli as report_cli  # `results` and `report`; duckdb/plotly load on use

    report_cli.register(sub, _add_common)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    debug = getattr(args, "debug", False)
    if args.threads is not None:
        if args.threads < 1:
            print(f"recwise: error: option --threads must be >= 1; got {args.threads}", file=sys.stderr)
            return 2
        import torch

        torch.set_num_threads(args.threads)
    try:
        return int(args.func(args) or 0)
    except RecwiseError as exc:
        if debug:
            raise
        print(f"recwise: error: {exc}".splitlines()[0], file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("recwise: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
