"""The `eventactors` command, run as a user runs it: a real process on a real file."""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import sys

import pytest
from postgres_support import DSN, drop_schema, new_schema_name

EVENTACTORS = shutil.which("eventactors") or sys.executable + " -m eventactors.cli"


def run(*args: str, cwd) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*EVENTACTORS.split(), *args], cwd=cwd, capture_output=True, text=True, timeout=60
    )


def test_demo_runs_restarts_and_shows_the_recovered_state(tmp_path):
    first = run("demo", "--store", "bank.db", cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    assert "100 concurrent deposits to acc-ann: revisions 2..101" in first.stdout
    assert "insufficient funds" in first.stdout
    assert "acc-ann  owner=ann   balance=  1000  open       revision 101" in first.stdout
    assert "recovered state matches" in first.stdout
    assert (tmp_path / "bank.db").exists()

    again = run("demo", "--store", "bank.db", cwd=tmp_path)  # on the history of the first run
    assert again.returncode == 0, again.stderr
    assert "balance=  2000  open       revision 201" in again.stdout

    fresh = run("demo", "--store", "bank.db", "--fresh", cwd=tmp_path)
    assert "balance=  1000  open       revision 101" in fresh.stdout


def test_demo_of_the_library_example_defaults_to_its_own_file(tmp_path):
    first = run("demo", "--example", "library", cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    assert "REFUSED, loan limit of 3 reached" in first.stdout
    assert "read model matches the member entities" in first.stdout
    assert (tmp_path / "library.db").exists() and not (tmp_path / "bank.db").exists()
    again = run("demo", "--example", "library", cwd=tmp_path)
    assert again.returncode == 0, again.stderr
    assert "the store holds the library of an earlier run" in again.stdout


@pytest.mark.parametrize(
    "args",
    [[], ["nonsense"], ["demo", "--store", "mysql://x/y"], ["demo", "--example", "zoo"]],
)
def test_bad_invocations_exit_non_zero_with_a_message(tmp_path, args):
    result = run(*args, cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr.strip()


def test_demo_on_postgres_in_its_own_schema(tmp_path):
    schema = new_schema_name()
    try:
        first = run("demo", "--store", DSN, "--schema", schema, cwd=tmp_path)
        assert first.returncode == 0, first.stderr
        assert f"schema '{schema}'" in first.stdout
        assert "acc-ann  owner=ann   balance=  1000  open       revision 101" in first.stdout
        assert "recovered state matches" in first.stdout
        again = run("demo", "--store", DSN, "--schema", schema, "--fresh", cwd=tmp_path)
        assert "balance=  1000  open       revision 101" in again.stdout  # dropped, started over
    finally:
        asyncio.run(drop_schema(schema))


def test_demo_on_an_unreachable_postgres_says_so_and_exits_1(tmp_path):
    result = run("demo", "--store", "postgresql://postgres@127.0.0.1:1/test", cwd=tmp_path)
    assert result.returncode == 1
    assert "127.0.0.1:1/test" in result.stderr and "unavailable" in result.stderr


def test_rebuild_replays_a_projection_with_progress_and_an_equal_read_model(tmp_path):
    from eventactors_examples.bank.balances import read_balances

    import eventactors as ea

    assert run("demo", "--store", "bank.db", cwd=tmp_path).returncode == 0
    before = asyncio.run(read_balances(ea.open_store(tmp_path / "bank.db")))
    result = run(
        "rebuild", "balances", "--app", "eventactors_examples.bank.app:build_engine",
        "--store", "bank.db", cwd=tmp_path,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "rebuilding balances" in result.stdout
    assert "rebuilt 'balances': 106 events handled, now at position 106, lag 0" in result.stdout
    assert asyncio.run(read_balances(ea.open_store(tmp_path / "bank.db"))) == before


@pytest.mark.parametrize(
    ("app", "message"),
    [
        ("nonsense", "module:engine or module:factory"),
        ("no.such.module:f", "cannot load"),
        ("eventactors_examples.bank.app:build_engine", "no projection named 'nope'"),
    ],
)
def test_rebuild_reports_bad_apps_and_unknown_projections(tmp_path, app, message):
    asyncio.run(empty_store(tmp_path / "x.db"))
    result = run("rebuild", "nope", "--app", app, "--store", "x.db", cwd=tmp_path)
    assert result.returncode == 1
    assert message in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_rebuild_never_creates_a_missing_store(tmp_path):
    app = "eventactors_examples.bank.app:build_engine"
    result = run("rebuild", "balances", "--app", app, "--store", "x.db", cwd=tmp_path)
    assert result.returncode == 1
    assert result.stderr == "eventactors rebuild: no such store: x.db\n"
    assert not (tmp_path / "x.db").exists()


async def empty_store(path) -> None:
    import eventactors as ea

    store = ea.SQLiteStore(path)
    await store.head_position()  # creates the schema
    await store.close()


def test_an_app_module_with_a_syntax_error_is_one_line_and_exit_1(tmp_path):
    """In its own process: a SyntaxError compiled in-process unsettles CPython 3.11's parser
    state for later `ast.parse` calls (pytest's assertion rewriting among them)."""
    asyncio.run(empty_store(tmp_path / "x.db"))
    (tmp_path / "synerr.py").write_text("def x(:\n")
    result = run("state", "a", "b", "--app", "synerr:build", "--store", "x.db", cwd=tmp_path)
    assert (result.returncode, result.stdout) == (1, "")
    assert result.stderr.startswith("eventactors state: cannot load app 'synerr:build': ")
    assert "SyntaxError: " in result.stderr and "synerr.py, line 1" in result.stderr
    assert len(result.stderr.splitlines()) == 1
