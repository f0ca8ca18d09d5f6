"""The `eventactors` command."""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Sequence


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="eventactors", description="Event-sourced actors and CQRS for Python."
    )
    commands = parser.add_subparsers(dest="command", required=True)
    demo = commands.add_parser(
        "demo", help="run the bank-account demo on an SQLite file, restart, and show recovery"
    )
    demo.add_argument(
        "--store",
        default="bank.db",
        help="the SQLite file to use (default: bank.db in the current directory)",
    )
    demo.add_argument(
        "--fresh", action="store_true", help="delete the file first, to start from no history"
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "demo":
        return _demo(args.store, fresh=args.fresh)
    return 2  # pragma: no cover - argparse rejects unknown commands


def _demo(store: str, *, fresh: bool) -> int:
    from pathlib import Path

    from eventactors_examples.bank.demo import run_demo

    if "://" in store:
        print(f"eventactors demo: only SQLite file paths are supported so far, got {store!r}",
              file=sys.stderr)  # fmt: skip
        return 2
    if fresh:
        for suffix in ("", "-wal", "-shm"):
            Path(store + suffix).unlink(missing_ok=True)
    asyncio.run(run_demo(store))
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
