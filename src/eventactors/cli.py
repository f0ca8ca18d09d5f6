"""The `eventactors` command."""

from __future__ import annotations

import argparse
import asyncio
import importlib
import sys
from collections.abc import Sequence
from pathlib import Path

#: The demos `eventactors demo --example` runs: the module holding each one's `run_demo`.
EXAMPLES = {
    "bank": "eventactors_examples.bank.demo",
    "library": "eventactors_examples.library.demo",
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="eventactors", description="Event-sourced actors and CQRS for Python."
    )
    commands = parser.add_subparsers(dest="command", required=True)
    demo = commands.add_parser(
        "demo", help="run a demo application: the bank (with a restart and its recovery) or "
        "the library (natural keys, validation across entities, the command log)",
    )  # fmt: skip
    demo.add_argument(
        "--example", choices=sorted(EXAMPLES), default="bank", help="which demo (default: bank)"
    )
    demo.add_argument(
        "--store",
        default=None,
        help="an SQLite file (default: <example>.db) or a postgresql:// URL",
    )
    demo.add_argument(
        "--schema", default="eventactors", help="the PostgreSQL schema (default: eventactors)"
    )
    demo.add_argument(
        "--fresh",
        action="store_true",
        help="start from no history: delete the SQLite file, or drop the PostgreSQL schema",
    )
    rebuild = commands.add_parser(
        "rebuild", help="reset a projection's offset and read model, and replay the whole log"
    )
    rebuild.add_argument("name", help="the projection's name")
    rebuild.add_argument(
        "--app", required=True,
        help="module:factory; the factory takes a store and returns an engine with its projections",
    )  # fmt: skip
    _store_arguments(rebuild)
    return parser


def _store_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--store", default="bank.db", help="an SQLite file or a postgresql:// URL")
    parser.add_argument("--schema", default="eventactors", help="the PostgreSQL schema")


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "demo":
        store = args.store or f"{args.example}.db"
        return _demo(args.example, store, args.schema, fresh=args.fresh)
    if args.command == "rebuild":
        from ._cli_rebuild import rebuild

        return rebuild(args.name, args.app, args.store, args.schema)
    return 2  # pragma: no cover - argparse rejects unknown commands


def _demo(example: str, store: str, schema: str, *, fresh: bool) -> int:
    from .errors import EventActorsError

    run_demo = importlib.import_module(EXAMPLES[example]).run_demo

    is_postgres = store.startswith(("postgres://", "postgresql://"))
    if "://" in store and not is_postgres:
        print(f"eventactors demo: --store takes a file path or a postgresql:// URL, got {store!r}",
              file=sys.stderr)  # fmt: skip
        return 2
    try:
        if fresh and is_postgres:
            asyncio.run(_drop_schema(store, schema))
        elif fresh:
            _delete_file(store)
        asyncio.run(run_demo(store, schema=schema))
    except (EventActorsError, ValueError) as exc:
        print(f"eventactors demo: {exc}", file=sys.stderr)
        return 1
    return 0


def _delete_file(path: str) -> None:
    for suffix in ("", "-wal", "-shm"):
        Path(path + suffix).unlink(missing_ok=True)


async def _drop_schema(dsn: str, schema: str) -> None:
    from .stores._postgres_schema import check_schema_name
    from .stores.postgres import PostgresStore

    store = PostgresStore(dsn, schema=check_schema_name(schema))
    await store.drop_schema()


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
