"""The `eventactors` command: the demos, and the inspector's subcommands (each in its own
`_cli_*` module, imported only when run)."""

from __future__ import annotations

import argparse
import asyncio
import importlib
import sys
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from ._inspection_stores import SERIALIZERS

#: The demos `eventactors demo --example` runs: the module holding each one's `run_demo`.
EXAMPLES = {
    "bank": "eventactors_examples.bank.demo",
    "library": "eventactors_examples.library.demo",
}


#: The largest integer an argument takes: a 64-bit signed position or sequence number.
MAX_INT = 2**63 - 1


def build_parser() -> argparse.ArgumentParser:
    """Every subcommand with its options; bad arguments exit with status 2 and usage."""
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
    _inspector_commands(commands)
    return parser


if TYPE_CHECKING:
    Commands = argparse._SubParsersAction[argparse.ArgumentParser]


def _inspector_commands(commands: Commands) -> None:
    """The subcommands that inspect a store; each one's work is in its own `_cli_*` module."""
    store = argparse.ArgumentParser(add_help=False)
    store.add_argument(
        "--store",
        default="bank.db",
        help="an SQLite file or a postgresql:// URL (default: bank.db)",
    )
    store.add_argument("--schema", default="eventactors", help="the PostgreSQL schema")
    options = argparse.ArgumentParser(add_help=False, parents=[store])
    options.add_argument("--json", action="store_true", help="print JSON for scripts")
    options.add_argument(
        "--serializer",
        choices=SERIALIZERS,
        default="json",
        help="how the payloads were written (default: json); an --app Engine brings its own",
    )

    def command(
        name: str, text: str, *, parents: list[argparse.ArgumentParser] | None = None
    ) -> argparse.ArgumentParser:
        return commands.add_parser(name, help=text, description=text, parents=parents or [options])

    streams = command(
        "streams", "list the streams: last sequence number, events held and last write"
    )
    streams.add_argument("--type", help="only streams of this entity type")
    streams.add_argument("--search", help="only ids containing this text (any case)")
    streams.add_argument(
        "--limit", type=_count(0), default=100, help="at most N (default 100, 0: all)"
    )

    events = command(
        "events", "show a stream's events (or the whole log's, with --all); --follow tails it"
    )
    events.add_argument("persistence_id", nargs="?", help="the stream, as entity_type|entity_id")
    events.add_argument("--all", action="store_true", help="the whole log instead of one stream")
    events.add_argument(
        "--from",
        dest="from_",
        type=_count(1),
        default=1,
        metavar="N",
        help="from sequence number N (with --all: global position N)",
    )
    events.add_argument("--to", type=_count(1), metavar="N", help="up to N, inclusive")
    events.add_argument("--limit", type=_count(0), metavar="N", help="at most N events")
    events.add_argument(
        "--follow",
        action="store_true",
        help="then print new events live, one line each, until Ctrl-C",
    )
    events.add_argument("--app", help="module:engine, to decode payloads with its own types")

    state = command("state", "an entity's state, rebuilt by the application's behavior")
    state.add_argument("entity_type")
    state.add_argument("entity_id")
    state.add_argument("--at-revision", type=_count(1), metavar="N", help="as it was at revision N")
    state.add_argument("--app", required=True, help=APP_HELP)

    projections = command(
        "projections",
        "projection offsets: position, head and lag (a projection's state and last error live "
        "in the process that runs it)",
    )
    projections.add_argument("--app", help=f"{APP_HELP}, to list its projections too")

    rebuild = command(
        "rebuild",
        "reset a projection's offset and read model, and replay the log. STOP THE APPLICATION "
        "FIRST: a projection running elsewhere meanwhile would corrupt the read model (a rebuild "
        "that sees the offset move under it stops with an error, but cannot see every case)",
    )
    rebuild.add_argument("name", help="the projection's name")
    rebuild.add_argument("--app", required=True, help=APP_HELP)

    stats = command("stats", "events per type, per entity type and per day")
    stats.add_argument("--since", type=_day, metavar="YYYY-MM-DD", help="from this UTC day on")

    serve = command("serve", "the web console (the console extra)", parents=[store])
    serve.add_argument("--app", help=APP_HELP)
    serve.add_argument("--host", default="127.0.0.1", help="default: 127.0.0.1")
    serve.add_argument("--port", type=_count(0, 65535), default=8765, help="default: 8765")
    serve.add_argument(
        "--allow-commands", action="store_true", help="let the console send commands"
    )


APP_HELP = "module:engine, an Engine or a factory taking a store (found from the current directory)"


def _count(least: int, most: int = MAX_INT) -> Callable[[str], int]:
    """An integer argument from `least` to `most`, refused as a usage error otherwise."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            value = least - 1
        if not least <= value <= most:
            raise argparse.ArgumentTypeError(
                f"expected an integer from {least} to {most}, got {text!r}"
            )
        return value

    return parse


def _day(text: str) -> datetime:
    """`--since`: a UTC day, as YYYY-MM-DD."""
    try:
        return datetime.strptime(text, "%Y-%m-%d").replace(tzinfo=UTC)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a day as YYYY-MM-DD, got {text!r}") from None


def main(argv: Sequence[str] | None = None) -> int:
    """Runs the command line `argv` (default: the process's); returns the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command == "demo":
        store = args.store or f"{args.example}.db"
        return _demo(args.example, store, args.schema, fresh=args.fresh)
    if args.command == "events":
        _check_events(parser, args)
    module = importlib.import_module(f"eventactors._cli_{args.command}")
    status: int = module.run(args)
    return status


def _check_events(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    if (args.persistence_id is None) != args.all:
        parser.error("events: give a persistence id, or --all for the whole log")
    if args.follow and (args.to is not None or args.limit is not None):
        parser.error("events: --follow runs until Ctrl-C; it takes no --to or --limit")


def _demo(example: str, store: str, schema: str, *, fresh: bool) -> int:
    from .errors import EventActorsError
    from .stores.locate import is_dsn

    run_demo = importlib.import_module(EXAMPLES[example]).run_demo

    is_postgres = is_dsn(store)
    if "://" in store and not is_postgres:
        print(
            f"eventactors demo: --store takes a file path or a postgresql:// URL, got {store!r}",
            file=sys.stderr,
        )
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
