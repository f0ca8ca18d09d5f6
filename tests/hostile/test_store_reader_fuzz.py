"""Rows corrupted behind the store's back, in a real SQLite file and a real PostgreSQL schema.

For each corruption, every reader of the store and of the engine either works or raises
`SerializationError` naming the corrupt row's stream; the readers that touch the row must
refuse it. The engine stays up, the corrupt row is left exactly as it was (nothing "repairs"
or loses it), and the intact entities read and write as before.
"""

from __future__ import annotations

import asyncio
import sqlite3
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from corrupt_stores import (
    INTACT,
    INTACT_STATE,
    PAGE_VICTIM,
    READERS,
    VICTIM,
    assert_intact_still_work,
    bank_engine,
    read_everything,
    seed,
)
from eventactors_examples.bank.domain import Deposit
from fuzz_support import SPECIAL_JSON, bad_timestamps
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from postgres_support import DSN, drop_schema, new_schema_name

import eventactors as ea

pytestmark = pytest.mark.timeout(300)


@dataclass(frozen=True)
class Corruption:
    name: str
    table: str  # the table the statement changes, to check the row is left as it was
    statement: str  # SQL; {s} is the PostgreSQL schema
    refused_by: frozenset[str]  # readers that must refuse it
    stream: str = VICTIM  # what their errors must name

    def __str__(self) -> str:
        return self.name


def readers(*names: str) -> frozenset[str]:
    unknown = set(names) - set(READERS)
    assert not unknown, unknown
    return frozenset(names)


#: An event's payload that will not decode: every reader that decodes it refuses it.
PAYLOAD = readers(
    "read_stream.event", "read_all.event", "engine.events", "engine.get_state",
    "engine.get_state(at_revision)", "projection", "engine.send",
)  # fmt: skip
#: An event row that cannot become an envelope: every reader of envelopes refuses it.
ROW = readers(
    "read_stream", "read_stream.event", "read_all", "read_all.event", "engine.events",
    "projection",
)  # fmt: skip
#: Tags that SQLite's JSON functions cannot read: a tag filter meets them too.
TAGS = ROW | readers("read_all(tags)", "projection(tags)")
#: A row that cannot even be fetched, or one whose replay columns are wrong: refused by all.
FETCH = ROW | readers("read_stream_payloads") | PAYLOAD
#: The engine recovers past a snapshot that no longer decodes by replaying the events it
#: covers (they are intact here): only the store's own reader refuses it.
SNAPSHOT = readers("load_snapshot")
STATE = readers("get_state", "engine.page_state", "engine.send_page")
COMMANDS = readers("read_commands", "engine.command_log")

EVENT = "UPDATE {t}ea_events SET {change} WHERE persistence_id = 'account|victim' AND sequence_number = 3"  # noqa: E501
SNAP = "UPDATE {t}ea_snapshots SET {change} WHERE persistence_id = 'account|victim'"
PAGE = "UPDATE {t}ea_durable_state SET {change} WHERE persistence_id = 'page|victim'"
LOG = "UPDATE {t}ea_commands SET {change} WHERE persistence_id = '{pid}' AND revision = 1"
NOT_UTF8 = "CAST(x'7b22ff227d' AS TEXT)"  # {"<0xff>"}: text that is not UTF-8
DEEP = "[" * 1500 + "]" * 1500


def sqlite(name: str, template: str, change: str, refused_by: frozenset[str], **more: Any):
    table = template.split()[1].format(t="")
    statement = template.format(t="", change=change, pid=more.pop("pid", VICTIM))
    return Corruption(name, table, statement, refused_by, **more)


SQLITE_CORRUPTIONS = [
    sqlite("payload not JSON", EVENT, "payload = '{\"amount\": tru'", PAYLOAD),
    sqlite("payload an integer", EVENT, "payload = 5", PAYLOAD),
    sqlite("payload a blob", EVENT, "payload = x'ff00ff'", PAYLOAD),
    sqlite("payload of the wrong shape", EVENT, 'payload = \'{"amount": "five"}\'', PAYLOAD),
    sqlite("payload nested deep", EVENT, f"payload = '{{\"amount\": {DEEP}}}'", PAYLOAD),
    # Python's ints have no bound: a 401-digit amount is a valid Deposited.
    sqlite("payload a huge number", EVENT, f"payload = '{{\"amount\": 1{'0' * 400}}}'", readers()),
    sqlite("payload not UTF-8", EVENT, f"payload = {NOT_UTF8}", FETCH),
    sqlite("event type unknown", EVENT, "event_type = 'Nope'", PAYLOAD),
    sqlite("event type a blob", EVENT, "event_type = x'4465706f7369746564'", FETCH),
    sqlite("sequence number text", EVENT, "sequence_number = 'three'", FETCH),
    sqlite("tags not JSON", EVENT, "tags = '[nope'", TAGS),
    sqlite("tags a blob", EVENT, "tags = x'5b6e6f'", TAGS),
    sqlite("tags a blob of JSON", EVENT, "tags = x'5b5d'", readers()),
    sqlite("tags not text", EVENT, "tags = '[1, 2]'", ROW),
    sqlite("tags not UTF-8", EVENT, f"tags = {NOT_UTF8}", TAGS),
    sqlite("metadata a list", EVENT, "metadata = '[]'", ROW),
    sqlite("metadata not text", EVENT, "metadata = '{\"k\": 1}'", ROW),
    sqlite("timestamp unparsable", EVENT, "timestamp = 'yesterday'", ROW),
    sqlite("timestamp a blob", EVENT, "timestamp = x'00'", ROW),
    sqlite("timestamp not UTF-8", EVENT, f"timestamp = {NOT_UTF8}", ROW),
    sqlite("event id a blob", EVENT, "event_id = x'01'", ROW),
    sqlite("snapshot payload not JSON", SNAP, "payload = '{\"owner\": '", SNAPSHOT),
    sqlite("snapshot payload not UTF-8", SNAP, f"payload = {NOT_UTF8}", SNAPSHOT),
    sqlite("snapshot timestamp unparsable", SNAP, "timestamp = 'never'", SNAPSHOT),
    sqlite("snapshot state type unknown", SNAP, "state_type = 'Nope'", SNAPSHOT),
    sqlite("state payload not JSON", PAGE, "payload = 'x'", STATE, stream=PAGE_VICTIM),
    sqlite("state payload not UTF-8", PAGE, f"payload = {NOT_UTF8}", STATE, stream=PAGE_VICTIM),
    sqlite("state revision text", PAGE, "revision = 'one'", STATE, stream=PAGE_VICTIM),
    sqlite("state timestamp unparsable", PAGE, "timestamp = 'x'", STATE, stream=PAGE_VICTIM),
    sqlite("state type a blob", PAGE, "state_type = x'50616765'", STATE, stream=PAGE_VICTIM),
    sqlite("command metadata a list", LOG, "metadata = '[]'", COMMANDS),
    sqlite("command event ids an object", LOG, "event_ids = '{\"a\": 1}'", COMMANDS),
    sqlite("command timestamp unparsable", LOG, "timestamp = 'x'", COMMANDS),
    sqlite("command payload an integer", LOG, "payload = 5", COMMANDS),
    sqlite("command revision text", LOG, "revision = 'r'", COMMANDS),
    sqlite("command outcome not UTF-8", LOG, f"outcome = {NOT_UTF8}", COMMANDS),
    sqlite(
        "page command metadata",
        LOG,
        "metadata = 'null'",
        readers("read_page_commands"),
        pid=PAGE_VICTIM,
        stream=PAGE_VICTIM,
    ),
    Corruption(
        "stream head text",
        "ea_streams",
        "UPDATE ea_streams SET highest_sequence = 'many' WHERE persistence_id = 'account|victim'",
        readers("highest_sequence_number", "engine.send"),
    ),
]


def postgres(name: str, template: str, change: str, refused_by: frozenset[str], **more: Any):
    table = template.split()[1].format(t="")
    pid = more.pop("pid", VICTIM)
    return Corruption(
        name, table, template.format(t="{s}.", change=change, pid=pid), refused_by, **more
    )


POSTGRES_CORRUPTIONS = [
    postgres("payload of the wrong shape", EVENT, 'payload_json = \'{"amount": "5"}\'', PAYLOAD),
    postgres("payload a number", EVENT, "payload_json = '5'", PAYLOAD),
    postgres("payload bytes", EVENT, "payload_json = NULL, payload_bytes = '\\xff00'", PAYLOAD),
    postgres("payload nested deep", EVENT, f"payload_json = '{{\"amount\": {DEEP}}}'", PAYLOAD),
    postgres("payload a huge number", EVENT, "payload_json = '{\"amount\": 1e400}'", readers()),
    postgres("event type unknown", EVENT, "event_type = 'Nope'", PAYLOAD),
    postgres("metadata a list", EVENT, "metadata = '[]'", ROW),
    postgres("metadata null", EVENT, "metadata = 'null'", ROW),
    postgres("metadata not text", EVENT, "metadata = '{\"k\": 1}'", ROW),
    postgres("tags with a NULL", EVENT, "tags = ARRAY[NULL]::text[]", ROW),
    postgres("tags in two dimensions", EVENT, "tags = '{{a,b},{c,d}}'", ROW),
    postgres("timestamp infinity", EVENT, "timestamp = 'infinity'", ROW),
    postgres("timestamp past 9999", EVENT, "timestamp = '20000-01-01'", ROW),
    postgres("timestamp BC", EVENT, "timestamp = '4713-01-01 BC'", ROW),
    postgres("snapshot payload wrong shape", SNAP, "payload_json = '{\"owner\": 5}'", SNAPSHOT),
    postgres("snapshot without payload", SNAP, "payload_json = NULL", SNAPSHOT),
    postgres("snapshot timestamp infinity", SNAP, "timestamp = '-infinity'", SNAPSHOT),
    postgres("snapshot timestamp past 9999", SNAP, "timestamp = '20000-01-01'", SNAPSHOT),
    postgres("snapshot state type unknown", SNAP, "state_type = 'Nope'", SNAPSHOT),
    postgres("state without payload", PAGE, "payload_json = NULL", STATE, stream=PAGE_VICTIM),
    postgres("state wrong shape", PAGE, "payload_json = '[]'", STATE, stream=PAGE_VICTIM),
    postgres("state timestamp infinity", PAGE, "timestamp = 'infinity'", STATE, stream=PAGE_VICTIM),
    postgres("state timestamp BC", PAGE, "timestamp = '4713-01-01 BC'", STATE, stream=PAGE_VICTIM),
    postgres("command metadata a list", LOG, "metadata = '[]'", COMMANDS),
    postgres("command event ids with a NULL", LOG, "event_ids = ARRAY[NULL]::text[]", COMMANDS),
    postgres("command timestamp infinity", LOG, "timestamp = 'infinity'", COMMANDS),
    postgres("command timestamp past 9999", LOG, "timestamp = '20000-01-01'", COMMANDS),
]


def check_outcomes(corruption: Corruption, outcomes: dict[str, BaseException | None]) -> None:
    for name, error in outcomes.items():
        if error is None:
            assert name not in corruption.refused_by, f"{name} took the corrupt row ({corruption})"
            continue
        assert isinstance(error, ea.SerializationError), (
            f"{name} raised {type(error).__name__}: {error} ({corruption})"
        )
        assert repr(corruption.stream) in str(error), f"{name}: {error} names no stream"


# -- SQLite ------------------------------------------------------------------------------------


def sqlite_rows(path: Path, table: str) -> list[tuple[Any, ...]]:
    connection = sqlite3.connect(path)
    connection.text_factory = bytes  # so that text which is not UTF-8 can be compared too
    try:
        return connection.execute(f"SELECT * FROM {table} ORDER BY 1, 2").fetchall()
    finally:
        connection.close()


def sqlite_execute(path: Path, statement: str, parameters: tuple[Any, ...] = ()) -> None:
    connection = sqlite3.connect(path)
    try:
        changed = connection.execute(statement, parameters).rowcount
        connection.commit()
    finally:
        connection.close()
    assert changed >= 1, f"the corruption changed nothing: {statement}"


@pytest.mark.parametrize("corruption", SQLITE_CORRUPTIONS, ids=str)
async def test_a_corrupt_sqlite_row_is_refused_by_its_readers_only(tmp_path, corruption):
    path = tmp_path / "corrupt.db"
    await seed(ea.SQLiteStore(path))
    before = sqlite_rows(path, corruption.table)
    sqlite_execute(path, corruption.statement)
    corrupt = [row for row in sqlite_rows(path, corruption.table) if row not in before]
    async with bank_engine(ea.SQLiteStore(path)) as engine:
        check_outcomes(corruption, await read_everything(engine, engine.store))
        await assert_intact_still_work(engine, engine.store)
    after = sqlite_rows(path, corruption.table)
    assert all(row in after for row in corrupt), "a corrupt row was changed or lost"


async def test_after_refusing_a_corrupt_row_an_sqlite_store_still_sees_new_writes(tmp_path):
    """A read that fails half-way through its rows must not leave its cursor open: while the
    error (and its traceback) lives, SQLite would keep serving that reader the file as it
    was, hiding every later write, the store's own included."""
    path = tmp_path / "stale.db"
    await seed(ea.SQLiteStore(path))
    sqlite_execute(path, EVENT.format(t="", change="tags = '[nope'"))
    store = ea.SQLiteStore(path)
    with pytest.raises(ea.SerializationError, match=r"stream 'account\|victim', sequence 3"):
        await store.read_all(0, 1000)
    with pytest.raises(ea.SerializationError) as refused:
        await store.read_stream(VICTIM)  # its error is kept, as a log record or future would
    async with bank_engine(ea.SQLiteStore(path)) as engine:
        await engine.send("account", "intact", Deposit(1))
    assert refused.value.__traceback__ is not None
    assert await store.highest_sequence_number(INTACT) == 3
    assert len(await store.read_stream(INTACT)) == 3
    await store.close()


# -- PostgreSQL --------------------------------------------------------------------------------


async def postgres_rows(schema: str, table: str) -> list[tuple[Any, ...]]:
    connection = await asyncpg.connect(DSN)
    try:  # as text, so that values Python cannot hold (year 20000) compare too
        rows = await connection.fetch(f'SELECT t::text FROM "{schema}".{table} AS t ORDER BY 1')
        return [tuple(row) for row in rows]
    finally:
        await connection.close()


@pytest.mark.parametrize("corruption", POSTGRES_CORRUPTIONS, ids=str)
async def test_a_corrupt_postgres_row_is_refused_by_its_readers_only(corruption):
    schema = new_schema_name()
    try:
        await seed(ea.PostgresStore(DSN, schema=schema))
        before = await postgres_rows(schema, corruption.table)
        connection = await asyncpg.connect(DSN)
        try:
            status = await connection.execute(corruption.statement.replace("{s}", f'"{schema}"'))
        finally:
            await connection.close()
        assert not status.endswith(" 0"), f"the corruption changed nothing: {corruption}"
        corrupt = [r for r in await postgres_rows(schema, corruption.table) if r not in before]
        async with bank_engine(ea.PostgresStore(DSN, schema=schema)) as engine:
            check_outcomes(corruption, await read_everything(engine, engine.store))
            await assert_intact_still_work(engine, engine.store)
        after = await postgres_rows(schema, corruption.table)
        assert all(row in after for row in corrupt), "a corrupt row was changed or lost"
    finally:
        await drop_schema(schema)


# -- random values in SQLite's columns ---------------------------------------------------------

RANDOM_VALUES = st.one_of(
    st.binary(max_size=40),
    st.text(max_size=40),
    st.integers(min_value=-(2**63), max_value=2**63 - 1),
    st.floats(allow_nan=False),
    st.sampled_from(SPECIAL_JSON[:18]),
    bad_timestamps,
)
EVENT_COLUMNS = ["payload", "tags", "metadata", "timestamp", "event_type", "event_id"]
RANDOM_READERS = (
    "read_stream.event", "read_stream_payloads", "read_all.event", "read_all(tags)",
    "engine.events", "engine.get_state", "projection(tags)",
)  # fmt: skip


def test_random_values_in_an_sqlite_event_row_are_refused_or_read():
    """Hypothesis writes random values into one column of an event row (bytes also as text,
    which need not be UTF-8); the readers take them or refuse them with SerializationError."""
    with tempfile.TemporaryDirectory() as directory:
        path = Path(directory) / "random.db"
        asyncio.run(seed(ea.SQLiteStore(path)))
        row = f"WHERE persistence_id = '{VICTIM}' AND sequence_number = 3"
        examples = []

        @settings(
            max_examples=40, deadline=None, database=None,
            suppress_health_check=[HealthCheck.too_slow],
        )  # fmt: skip
        @given(column=st.sampled_from(EVENT_COLUMNS), value=RANDOM_VALUES, as_text=st.booleans())
        def corrupt_and_read(column: str, value: Any, as_text: bool) -> None:
            examples.append(column)
            with sqlite3.connect(path) as connection:
                [original] = connection.execute(f"SELECT {column} FROM ea_events {row}").fetchone()
            written = "CAST(? AS TEXT)" if as_text and isinstance(value, bytes) else "?"
            sqlite_execute(path, f"UPDATE ea_events SET {column} = {written} {row}", (value,))
            try:
                asyncio.run(read_random(path))
            finally:
                sqlite_execute(path, f"UPDATE ea_events SET {column} = ? {row}", (original,))

        corrupt_and_read()
        assert len(examples) >= 40


async def read_random(path: Path) -> None:
    store = ea.SQLiteStore(path)
    async with bank_engine(store) as engine:
        for name in RANDOM_READERS:
            try:
                await asyncio.wait_for(READERS[name](engine, store), 15)
            except ea.SerializationError as error:
                assert repr(VICTIM) in str(error), f"{name}: {error} names no stream"
        assert await engine.get_state("account", "intact") == INTACT_STATE
