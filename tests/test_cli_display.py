"""What the inspector prints, whatever a store holds: ids and payloads are data (never rich
markup, never terminal control), JSON is always valid JSON, times are UTC in any local zone,
and a long listing is printed a page at a time."""

from __future__ import annotations

import json
import sqlite3
import sys
import time
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime

import msgspec
import pytest
import pytest_asyncio
from eventactors_examples.bank.domain import Deposited
from test_cli_inspect import ok
from test_inspection import DAY, bank, write

import eventactors as ea
from eventactors import _cli_output
from eventactors._ids import uuid7
from eventactors.records import EventRecord, persistence_id_of

WEIRD = {  # entity id -> payload
    "[/]": b'{"x": "[/]"}',
    "[bold]x": b'{"x": "[red]y"}',
    "esc\x1b[31mred": b'{"x": 2}',
    "tab\tnl\nid": b'{"x": "line1\\nline2"}',
    "nan": b'{"x": NaN}',
    "big": b'{"x": 1e400}',
}


async def append_raw(store: ea.Store, entity_type: str, entity_id: str, payload: bytes) -> None:
    persistence_id = persistence_id_of(entity_type, entity_id)
    record = EventRecord(
        event_id=uuid7(), persistence_id=persistence_id, entity_type=entity_type,
        entity_id=entity_id, sequence_number=1, event_type="Note", payload=payload,
        timestamp=DAY,
    )  # fmt: skip
    await store.append(persistence_id, [record], 0)


@pytest_asyncio.fixture
async def weird_db(tmp_path) -> AsyncIterator[str]:
    path = tmp_path / "weird.db"
    store = ea.SQLiteStore(path)
    for entity_id, payload in WEIRD.items():
        await append_raw(store, "acct", entity_id, payload)
    await store.close()
    yield str(path)


def strict_json(text: str) -> object:
    """JSON as the standard has it: no NaN or Infinity, which Python's json would accept."""

    def refuse(constant: str) -> object:
        raise ValueError(f"not JSON: {constant}")

    return json.loads(text, parse_constant=refuse)


@pytest.mark.parametrize("rich", [True, False])
async def test_markup_and_control_characters_in_ids_and_payloads_are_shown_as_data(
    weird_db, capsys, monkeypatch, rich
):
    if not rich:
        monkeypatch.setitem(sys.modules, "rich", None)
        monkeypatch.setitem(sys.modules, "rich.console", None)
    out = await ok(capsys, "streams", "--store", weird_db)
    assert "acct|[/]" in out and "acct|[bold]x" in out
    assert "acct|esc\\x1b[31mred" in out and "acct|tab\\tnl\\nid" in out
    out = await ok(capsys, "events", "--all", "--store", weird_db)
    assert '{"x": "[red]y"}' in out and '{"x": "[/]"}' in out and "acct|[bold]x" in out
    out += await ok(capsys, "events", "acct|esc\x1b[31mred", "--store", weird_db)
    assert "acct|esc\\x1b[31mred" in out  # the title
    assert "\x1b" not in out and "\t" not in out


def test_a_followed_line_is_one_line_of_plain_text(capsys):
    envelope = ea.EventEnvelope(
        event_id="e", persistence_id="acct|a\x1b[2Jb\nc", entity_type="acct",
        entity_id="a\x1b[2Jb\nc", sequence_number=1, global_position=1,
        event_type="Note\u202e", timestamp=DAY, tags=(), metadata={}, command_id="",
        correlation_id="", payload=b'{"x": "\\u001b[31m"}', _decode=lambda e: None,
    )  # fmt: skip
    _cli_output.print_event(ea.JsonSerializer(), envelope, json_lines=False)
    out = capsys.readouterr().out
    assert out.count("\n") == 1 and "\x1b" not in out and "\u202e" not in out
    assert "acct|a\\x1b[2Jb\\nc" in out and "Note\\u202e" in out


async def test_json_is_always_valid_json(weird_db, capsys):
    out = await ok(capsys, "events", "--all", "--store", weird_db, "--json")
    lines = [strict_json(line) for line in out.splitlines()]
    payloads = {line["entity_id"]: line["payload"] for line in lines}  # type: ignore[index]
    assert payloads["nan"] == {"x": None} and payloads["big"] == {"x": None}
    assert payloads["tab\tnl\nid"] == {"x": "line1\nline2"}
    out = await ok(capsys, "events", "--all", "--store", weird_db)
    assert '{"x": null}' in out and "NaN" not in out and "Infinity" not in out
    for command in ("streams", "stats", "projections"):
        strict_json(await ok(capsys, command, "--store", weird_db, "--json") or "null")


# -- time ---------------------------------------------------------------------------------


@pytest.fixture
def new_york(monkeypatch) -> Iterator[None]:
    """This process's local time is New York's, 4 hours behind UTC in May."""
    monkeypatch.setenv("TZ", "America/New_York")
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


@pytest_asyncio.fixture
async def foreign_db(tmp_path) -> AsyncIterator[str]:
    """The bank, where another writer stored one timestamp naive and one with an offset."""
    path = tmp_path / "foreign.db"
    await bank(ea.SQLiteStore(path))
    connection = sqlite3.connect(path)
    connection.execute(
        "UPDATE ea_events SET timestamp = '2024-05-01T10:00:00' WHERE global_position = 1"
    )
    connection.execute(
        "UPDATE ea_events SET timestamp = '2024-05-03T04:30:00-05:00' WHERE global_position = 6"
    )
    connection.commit()
    connection.close()
    yield str(path)


async def test_times_are_shown_in_utc_whatever_the_local_zone(foreign_db, capsys, new_york):
    out = await ok(capsys, "events", "--all", "--store", foreign_db)
    assert "2024-05-01 10:00:00.000" in out  # naive: UTC, not New York's 10:00
    assert "2024-05-03 09:30:00.000" in out  # 04:30 at -05:00
    out = await ok(capsys, "streams", "--store", foreign_db)
    assert "2024-05-03 09:30:00.000" in out


async def test_json_timestamps_have_one_utc_form(foreign_db, capsys, new_york):
    out = await ok(capsys, "events", "--all", "--store", foreign_db, "--json")
    stamps = [json.loads(line)["timestamp"] for line in out.splitlines()]
    assert stamps[0] == "2024-05-01T10:00:00Z" and stamps[-1] == "2024-05-03T09:30:00Z"
    assert all(stamp.endswith("Z") for stamp in stamps)
    streams = json.loads(await ok(capsys, "streams", "--store", foreign_db, "--json"))
    assert streams[-1]["last_timestamp"] == stamps[-1]


async def test_stats_since_counts_naive_timestamps_as_utc(foreign_db, capsys):
    out = await ok(capsys, "stats", "--store", foreign_db, "--since", "2024-05-03", "--json")
    assert json.loads(out)["by_day"] == {"2024-05-03": 1}


def test_moment_takes_a_naive_time_as_utc(new_york):
    assert _cli_output.moment(datetime(2024, 5, 1, 10)) == "2024-05-01 10:00:00.000"
    assert _cli_output.moment(datetime(2024, 5, 1, 10, tzinfo=UTC)) == "2024-05-01 10:00:00.000"


# -- long listings ------------------------------------------------------------------------


async def test_a_long_listing_is_printed_a_page_at_a_time(tmp_path, capsys, monkeypatch):
    path = tmp_path / "long.db"
    store = ea.SQLiteStore(path)
    await write(store, "account", "ann", *[Deposited(n) for n in range(1, 1101)])
    await store.close()
    tables: list[int] = []
    print_table = _cli_output.print_table

    def counting(columns: object, rows: list[object], **options: object) -> None:
        tables.append(len(rows))
        print_table(columns, rows, **options)  # type: ignore[arg-type]

    monkeypatch.setattr(_cli_output, "print_table", counting)
    out = await ok(capsys, "events", "account|ann", "--store", str(path))
    assert tables == [500, 500, 100]
    assert out.count("account|ann") == 1  # the title, over the first page only
    assert out.count('{"amount": 1100}') == 1
    tables.clear()
    await ok(capsys, "events", "--all", "--store", str(path), "--from", "2")
    assert tables == [500, 500, 99]
    assert msgspec.json.decode(_cli_output.json_text({"a": [1]}, indent=0)) == {"a": [1]}
