"""The `eventactors` command."""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Sequence
from pathlib import Path


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="eventactors", description="Event-sourced actors and CQRS for Python."
    )
    commands = parser.add_subparsers(dest="command", required=True)
    demo = commands.add_parser(
        "demo", help="run the bank-account demo, restart the engine, and show the recovery"
    )
    demo.add_argument(
        "--store",
        default="bank.db",
        help="an SQLite file (default: bank.db) or a postgresql:// URL",
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
        return _demo(args.store, args.schema, fresh=args.fresh)
    if args.command == "rebuild":
        from ._cli_rebuild import rebuild

        return rebuild(args.name, args.app, args.store, args.schema)
    return 2  # pragma: no cover - argparse rejects unknown commands


def _demo(store: str, schema: str, *, fresh: bool) -> int:
    from eventactors_examples.bank.demo import run_demo

    from .errors import EventActorsError

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
