"""The inspector's subcommands (`streams`, `events`, `state`, `projections`, `rebuild`,
`stats`, `serve`) on real SQLite files and a real PostgreSQL schema: in-process through
`main`, and as real processes where it matters (`--follow` until Ctrl-C)."""

from __future__ import annotations

import asyncio
import json
import shutil
import sqlite3
import sys
import textwrap
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio
from postgres_support import DSN
from test_inspection import bank

import eventactors as ea
from eventactors.cli import build_parser, main

BANK_APP = "eventactors_examples.bank.app:build_engine"
EVENTACTORS = shutil.which("eventactors") or f"{sys.executable} -m eventactors.cli"


@pytest_asyncio.fixture
async def db(tmp_path) -> AsyncIterator[str]:
    """An SQLite store with the bank of `test_inspection.bank`: account|ann (3 events),
    account|bob (2), loan|L-1 (1)."""
    path = tmp_path / "bank.db"
    store = ea.SQLiteStore(path)
    await bank(store)
    await store.close()
    yield str(path)


def cli(capsys, *args: str) -> tuple[int, str, str]:
    """Runs the command in this process (from a worker thread: it runs its own event loop)."""
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


async def acli(capsys, *args: str) -> tuple[int, str, str]:
    code = await asyncio.to_thread(main, list(args))
    out, err = capsys.readouterr()
    return code, out, err


async def ok(capsys, *args: str) -> str:
    """The output of a command that must succeed."""
    code, out, err = await acli(capsys, *args)
    assert code == 0, err
    return out


# -- streams ------------------------------------------------------------------------------


async def test_streams_lists_counts_and_last_writes(db, capsys):
    code, out, err = await acli(capsys, "streams", "--store", db)
    assert (code, err) == (0, "")
    assert "account|ann" in out and "2024-05-01 09:00:03.000" in out
    assert "loan|L-1" in out
    out = await ok(capsys, "streams", "--store", db, "--type", "account", "--json")
    assert [(s["persistence_id"], s["events"]) for s in json.loads(out)] == [
        ("account|ann", 3),
        ("account|bob", 2),
    ]
    out = await ok(capsys, "streams", "--store", db, "--search", "BOB", "--json")
    assert [s["entity_id"] for s in json.loads(out)] == ["bob"]
    code, out, err = await acli(capsys, "streams", "--store", db, "--limit", "1", "--json")
    assert len(json.loads(out)) == 1 and "showing the first 1 streams" in err


async def test_tables_fall_back_to_plain_text_without_rich(db, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "rich", None)  # `import rich.console` now fails
    monkeypatch.setitem(sys.modules, "rich.console", None)
    out = await ok(capsys, "streams", "--store", db)
    assert out.splitlines() == [
        "stream       last seq  events  last event (UTC)",
        "account|ann         3       3  2024-05-01 09:00:03.000",
        "account|bob         2       2  2024-05-02 09:00:01.000",
        "loan|L-1            1       1  2024-05-03 09:00:01.000",
    ]


# -- events -------------------------------------------------------------------------------


async def test_events_of_a_stream_as_a_table_and_as_json_lines(db, capsys):
    code, out, err = await acli(capsys, "events", "account|ann", "--store", db)
    assert (code, err) == (0, "")
    assert '{"owner": "ann"}' in out and '{"amount": 100}' in out and "Deposited" in out
    out = await ok(
        capsys, "events", "account|ann", "--store", db, "--from", "2", "--to", "3", "--json"
    )
    lines = [json.loads(line) for line in out.splitlines()]
    assert [(e["sequence_number"], e["payload"]) for e in lines] == [
        (2, {"amount": 100}),
        (3, {"amount": 5}),
    ]
    assert lines[0]["persistence_id"] == "account|ann" and "event_id" in lines[0]
    out = await ok(capsys, "events", "account|ann", "--store", db, "--limit", "1", "--json")
    assert len(out.splitlines()) == 1


async def test_events_of_the_whole_log_by_position(db, capsys):
    out = await ok(capsys, "events", "--all", "--store", db, "--from", "5", "--json")
    assert [json.loads(line)["global_position"] for line in out.splitlines()] == [5, 6]
    out = await ok(capsys, "events", "--all", "--store", db, "--to", "2")
    assert "account|ann" in out and "loan|L-1" not in out


async def test_an_unknown_stream_prints_nothing_and_notes_it_with_exit_0(db, capsys):
    code, out, err = await acli(capsys, "events", "account|nobody", "--store", db, "--json")
    assert (code, out) == (0, "")
    assert err == (
        "eventactors events: no stream 'account|nobody' in this store (see `eventactors streams`)\n"
    )
    code, out, err = await acli(capsys, "events", "account|ann", "--store", db, "--from", "9")
    assert (code, out) == (0, "") and "no events of 'account|ann' in that range" in err


HUGE = "99999999999999999999"  # past a 64-bit integer


@pytest.mark.parametrize(
    "args",
    [["events"], ["events", "account|ann", "--all"], ["events", "--all", "--follow", "--to", "3"],
     ["events", "x", "--from", "0"], ["stats", "--since", "May 1st"], ["streams", "--limit", "-1"],
     ["events", "x", "--from", HUGE], ["events", "x", "--to", HUGE],
     ["events", "--all", "--from", HUGE], ["events", "x", "--limit", HUGE],
     ["streams", "--limit", HUGE], ["state", "a", "b", "--app", "m:e", "--at-revision", HUGE],
     ["serve", "--port", "65536"], ["events", "x", "--serializer", "pickle"]],
)  # fmt: skip
def test_bad_arguments_are_usage_errors(capsys, args):
    with pytest.raises(SystemExit) as exit_:
        main(args)
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert err.strip() and "Traceback" not in err


async def test_the_largest_numbers_are_taken(db, capsys):
    largest = str(2**63 - 1)
    code, out, err = await acli(capsys, "events", "--all", "--store", db, "--from", largest)
    assert (code, out) == (0, "") and "no events in that range" in err
    code, out, err = await acli(capsys, "events", "account|ann", "--store", db, "--to", largest)
    assert code == 0 and '{"amount": 5}' in out


# -- state --------------------------------------------------------------------------------

ENGINE_MODULE = """
import eventactors as ea
from eventactors_examples.bank.domain import register

engine = ea.Engine()
register(engine)
"""


async def test_state_is_rebuilt_by_the_app_without_moving_anything(db, capsys):
    code, out, err = await acli(capsys, "state", "account", "ann", "--store", db, "--app", BANK_APP)
    assert (code, err) == (0, "")
    assert out.splitlines()[0] == "account|ann  revision 3  Account"
    assert '"balance": 105' in out
    out = await ok(
        capsys, "state", "account", "ann", "--at-revision", "2", "--store", db,
        "--app", BANK_APP, "--json",
    )  # fmt: skip
    data = json.loads(out)
    assert (data["revision"], data["state"]["balance"]) == (2, 100)
    store = ea.SQLiteStore(db)
    assert (await store.head_position(), await store.list_offsets()) == (6, {})  # nothing ran
    await store.close()


async def test_state_of_an_entity_without_history_is_its_initial_state(db, capsys):
    code, out, err = await acli(
        capsys, "state", "account", "zed", "--store", db, "--app", BANK_APP, "--json"
    )
    assert code == 0 and json.loads(out)["revision"] == 0
    assert "no history for 'account|zed': this is the initial state" in err


async def test_state_with_an_engine_from_a_module_in_the_current_directory(db, tmp_path):
    (tmp_path / "myapp.py").write_text(textwrap.dedent(ENGINE_MODULE))
    result = await run_process(
        "state", "account", "bob", "--app", "myapp:engine", "--store", db, "--json", cwd=tmp_path
    )
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["state"]["balance"] == 7


@pytest.mark.parametrize(
    ("app", "message"),
    [
        ("nonsense", "an app is given as module:engine or module:factory, got 'nonsense'"),
        (
            "no.such.module:x",
            "cannot load app 'no.such.module:x': ModuleNotFoundError: No module named 'no'",
        ),
        ("eventactors_examples.bank.app:missing", "cannot load app"),
    ],
)
async def test_a_bad_app_is_one_line_and_exit_1(db, capsys, app, message):
    code, out, err = await acli(capsys, "state", "account", "ann", "--store", db, "--app", app)
    assert (code, out) == (1, "")
    assert err.startswith("eventactors state: ") and message in err
    assert len(err.splitlines()) == 1


BROKEN_MODULES = {
    "raises": ("raise RuntimeError('boom at import')\n", "RuntimeError: boom at import"),
    "undefined": ("undefined_name\n", "NameError: name 'undefined_name' is not defined"),
    "environ": ("import os\nos.environ['EA_NO_SUCH_VARIABLE']\n", "KeyError: 'EA_NO_SUCH_"),
    "exits": ("import sys\nsys.exit(3)\n", "SystemExit: 3"),
    "factory": ("def build(store):\n    raise SystemExit(4)\n", "SystemExit: 4"),
}


@pytest.mark.parametrize("kind", sorted(BROKEN_MODULES))
async def test_an_app_module_that_fails_is_named_in_one_line(
    db, capsys, tmp_path, monkeypatch, kind
):
    body, message = BROKEN_MODULES[kind]
    name = f"broken_{kind}_{tmp_path.name}".replace("-", "_")
    (tmp_path / f"{name}.py").write_text(body)
    monkeypatch.syspath_prepend(str(tmp_path))
    spec = f"{name}:build"
    code, out, err = await acli(capsys, "state", "account", "ann", "--store", db, "--app", spec)
    assert (code, out) == (1, "")
    assert err.startswith("eventactors state: ") and f"app '{spec}'" in err and message in err
    assert len(err.splitlines()) == 1


async def test_an_unknown_entity_type_is_one_line_and_exit_1(db, capsys):
    code, _, err = await acli(capsys, "state", "loan", "L-1", "--store", db, "--app", BANK_APP)
    assert code == 1
    assert err == "eventactors state: unknown entity type 'loan'; registered: 'account'\n"


# -- projections, rebuild, stats ----------------------------------------------------------


async def test_projections_from_offsets_and_from_the_app(db, capsys):
    code, out, err = await acli(capsys, "projections", "--store", db)
    assert (code, out) == (0, "") and "no projection has saved an offset" in err
    store = ea.SQLiteStore(db)
    await store.save_offset("audit", 4)
    await store.close()
    out = await ok(capsys, "projections", "--store", db, "--json")
    assert json.loads(out) == [
        {"name": "audit", "position": 4, "head": 6, "lag": 2, "state": "not running here"}
    ]
    out = await ok(capsys, "projections", "--store", db, "--app", BANK_APP)
    assert out.splitlines()[0].split() == [
        "projection", "┃", "position", "┃", "head", "┃", "lag", "┃", "state", "┃", "in", "app",
    ]  # fmt: skip
    rows = [line.split() for line in out.splitlines()[2:]]
    assert rows == [
        ["audit", "│", "4", "│", "6", "│", "2", "│", "not", "running", "here", "│", "no"],
        ["balances", "│", "0", "│", "6", "│", "6", "│", "not", "running", "here", "│", "yes"],
    ]


async def test_rebuild_prints_its_status_as_json(db, capsys):
    out = await ok(capsys, "rebuild", "balances", "--store", db, "--app", BANK_APP, "--json")
    status = json.loads(out)
    assert (status["name"], status["position"], status["lag"]) == ("balances", 6, 0)
    out = await ok(capsys, "projections", "--store", db, "--json")
    assert json.loads(out) == [
        {"name": "balances", "position": 6, "head": 6, "lag": 0, "state": "not running here"}
    ]


async def test_stats_per_type_entity_type_and_day(db, capsys):
    out = await ok(capsys, "stats", "--store", db)
    assert out.startswith("6 events\n")
    assert "by event type" in out and "2024-05-03" in out
    out = await ok(capsys, "stats", "--store", db, "--since", "2024-05-02", "--json")
    assert json.loads(out) == {
        "total": 2,
        "by_type": {"Deposited": 1, "Opened": 1},
        "by_day": {"2024-05-02": 1, "2024-05-03": 1},
        "by_entity_type": {"account": 1, "loan": 1},
    }


# -- bad stores ---------------------------------------------------------------------------

SUBCOMMANDS = [
    ["streams"], ["events", "account|ann"], ["events", "--all"], ["stats"], ["projections"],
    ["state", "account", "ann", "--app", BANK_APP], ["rebuild", "balances", "--app", BANK_APP],
]  # fmt: skip


@pytest.mark.parametrize("args", SUBCOMMANDS)
async def test_a_missing_sqlite_file_is_one_line_exit_1_and_never_created(tmp_path, capsys, args):
    missing = tmp_path / "missing.db"
    code, out, err = await acli(capsys, *args, "--store", str(missing))
    assert (code, out) == (1, "")
    assert err == f"eventactors {args[0]}: no such store: {missing}\n"
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    ("location", "message"),
    [
        ("postgresql://postgres:pw@127.0.0.1:99999/db", "Port out of range 0-65535"),
        ("postgresql://postgres@127.0.0.1:notaport/db", "could not be cast to integer"),
    ],
)
async def test_a_malformed_store_url_is_one_line_naming_it(capsys, location, message):
    code, out, err = await acli(capsys, "streams", "--store", location)
    assert (code, out) == (1, "")
    assert err.startswith("eventactors streams: bad store location postgresql://postgres")
    assert "@127.0.0.1:" in err and message in err and "pw" not in err
    assert len(err.splitlines()) == 1


@pytest.mark.parametrize("args", SUBCOMMANDS[:2])
async def test_an_unreachable_server_is_one_line_and_exit_1(capsys, args):
    dsn = "postgresql://postgres@127.0.0.1:1/x"
    code, out, err = await acli(capsys, *args, "--store", dsn)
    assert (code, out) == (1, "")
    assert err.startswith(f"eventactors {args[0]}: PostgreSQL 127.0.0.1:1/x")
    assert "is unavailable: ConnectionRefusedError" in err
    assert len(err.splitlines()) == 1


async def test_a_schema_without_an_event_log_is_not_created(pg_schema, capsys):
    code, _, err = await acli(capsys, "streams", "--store", DSN, "--schema", pg_schema)
    assert code == 1 and "no such store: PostgreSQL" in err and pg_schema in err
    code, _, err = await acli(capsys, "streams", "--store", DSN, "--schema", "Bad-Name")
    assert code == 1 and "schema must be a lower-case identifier" in err


async def test_streams_events_and_stats_on_postgres(pg_schema, capsys):
    store = ea.PostgresStore(DSN, schema=pg_schema)
    await bank(store)
    await store.close()
    on_pg = ("--store", DSN, "--schema", pg_schema)
    out = await ok(capsys, "streams", *on_pg, "--json")
    assert [s["events"] for s in json.loads(out)] == [3, 2, 1]
    out = await ok(capsys, "events", "loan|L-1", *on_pg, "--json")
    assert json.loads(out)["payload"] == {"owner": "ann"}
    out = await ok(capsys, "stats", *on_pg, "--json")
    assert json.loads(out)["total"] == 6


# -- serve --------------------------------------------------------------------------------


def test_serve_parses_its_options():
    args = build_parser().parse_args(["serve"])
    assert (args.store, args.schema, args.app, args.host, args.port, args.allow_commands) == (
        "bank.db", "eventactors", None, "127.0.0.1", 8765, False,
    )  # fmt: skip
    args = build_parser().parse_args(
        ["serve", "--store", DSN, "--schema", "s", "--app", "m:e", "--host", "0.0.0.0",
         "--port", "9000", "--allow-commands"],
    )  # fmt: skip
    assert (args.store, args.schema, args.app, args.host, args.port, args.allow_commands) == (
        DSN, "s", "m:e", "0.0.0.0", 9000, True,
    )  # fmt: skip


def test_serve_on_a_missing_store_is_one_line_and_exit_1(tmp_path, capsys):
    code, out, err = cli(capsys, "serve", "--store", str(tmp_path / "none.db"))
    assert (code, out) == (1, "")
    assert err == f"eventactors serve: no such store: {tmp_path / 'none.db'}\n"


# -- real processes -----------------------------------------------------------------------


class Finished:
    def __init__(self, returncode: int, stdout: str, stderr: str) -> None:
        self.returncode, self.stdout, self.stderr = returncode, stdout, stderr


async def run_process(*args: str, cwd: Path) -> Finished:
    process = await asyncio.create_subprocess_exec(
        *EVENTACTORS.split(), *args, cwd=cwd,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode is not None
    return Finished(process.returncode, out.decode(), err.decode())


async def test_the_installed_command_reports_a_missing_store(tmp_path):
    result = await run_process("streams", "--store", "nothing.db", cwd=tmp_path)
    assert (result.returncode, result.stdout) == (1, "")
    assert result.stderr == "eventactors streams: no such store: nothing.db\n"
    assert not (tmp_path / "nothing.db").exists()


# -- read-only, serializers, deleted events -----------------------------------------------


def file_state(path: Path) -> tuple[bytes, str, list[str]]:
    """The database's bytes, journal mode and tables."""
    connection = sqlite3.connect(path)
    try:
        mode = connection.execute("PRAGMA journal_mode").fetchone()[0]
        tables = [r[0] for r in connection.execute("SELECT name FROM sqlite_master ORDER BY 1")]
    finally:
        connection.close()
    return path.read_bytes(), mode, tables


READERS = [
    ["streams"], ["events", "account|ann"], ["events", "--all"], ["stats"],
    ["projections", "--app", BANK_APP], ["events", "--all", "--app", BANK_APP],
    ["state", "account", "ann", "--app", BANK_APP],
]  # fmt: skip


@pytest.mark.parametrize("args", READERS)
async def test_reading_subcommands_change_nothing_in_the_store(db, capsys, args):
    """A store of an older release (no command log) in rollback-journal mode: any write
    (a WAL switch, a created table, a version row, a projection's offset) would show."""
    connection = sqlite3.connect(db)
    connection.execute("PRAGMA journal_mode = DELETE")
    connection.execute("DROP TABLE ea_commands")
    connection.close()
    before = file_state(Path(db))
    await ok(capsys, *args, "--store", db)
    assert file_state(Path(db)) == before


async def test_streams_tell_the_last_sequence_from_the_events_held(db, capsys):
    store = ea.SQLiteStore(db)
    await store.delete_events_to("account|ann", 2)
    await store.close()
    [ann] = json.loads(await ok(capsys, "streams", "--store", db, "--search", "ann", "--json"))
    assert (ann["highest_sequence"], ann["events"]) == (3, 1)
    out = await ok(capsys, "streams", "--store", db, "--search", "ann")
    assert out.splitlines()[0].split() == ["stream", "┃", "last", "seq", "┃", "events", "┃",
                                           "last", "event", "(UTC)"]  # fmt: skip
    assert out.splitlines()[2].split()[:5] == ["account|ann", "│", "3", "│", "1"]


PROTOBUF_APP = """
import eventactors as ea
from test_serialization import ProtoAccountBehavior


def build(store):
    engine = ea.Engine(store=store)
    engine.register("account", ProtoAccountBehavior, snapshot_every=3)
    return engine
"""


async def test_a_protobuf_app_loads_through_its_factory_with_serializer_protobuf(
    tmp_path, capsys, monkeypatch
):
    from test_serialization import DepositMoney, OpenAccount, ProtoAccountBehavior

    path = str(tmp_path / "pb.db")
    engine = ea.Engine(store=ea.SQLiteStore(path, serializer=ea.ProtobufSerializer()))
    engine.register("account", ProtoAccountBehavior, snapshot_every=3)
    async with engine:
        await engine.send("account", "p1", OpenAccount("ann"))
        await engine.send("account", "p1", DepositMoney(100))  # two events: 100 and 1
    name = f"pbapp_{tmp_path.name}".replace("-", "_")
    (tmp_path / f"{name}.py").write_text(textwrap.dedent(PROTOBUF_APP))
    monkeypatch.syspath_prepend(str(tmp_path))
    app = ("--app", f"{name}:build")
    out = await ok(capsys, "state", "account", "p1", "--store", path, *app, "--serializer",
                   "protobuf", "--json")  # fmt: skip
    state = json.loads(out)
    assert (state["revision"], state["state"]) == (3, {"owner": "ann", "balance": "101"})
    out = await ok(capsys, "events", "account|p1", "--store", path, *app, "--serializer",
                   "protobuf", "--json")  # fmt: skip
    assert [json.loads(line)["payload"] for line in out.splitlines()] == [
        {"owner": "ann"}, {"amount": "100"}, {"amount": "1"},
    ]  # fmt: skip
    code, _, err = await acli(capsys, "state", "account", "p1", "--store", path, *app)
    assert code == 1 and "cannot be serialized by JsonSerializer" in err
    assert err.rstrip().endswith("(written by another serializer? see --serializer)")
    out = await ok(capsys, "events", "account|p1", "--store", path, "--serializer", "protobuf",
                   "--json")  # fmt: skip
    payload = json.loads(out.splitlines()[0])["payload"]  # no app: bytes, never a JSON guess
    assert payload == {"undecodable": b"\n\x03ann".hex(), "bytes": 5}
