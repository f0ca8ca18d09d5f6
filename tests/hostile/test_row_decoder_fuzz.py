"""The stores' row readers, fed rows with hostile values in some columns.

A row reader either builds a record that keeps the records' contract (text where text
belongs, an aware timestamp, tags a tuple of strings, metadata a dict of strings, payload
bytes), or raises `SerializationError` naming the stream; nothing else, and nothing in
between. SQLite rows may hold any value in any column; PostgreSQL rows hold what asyncpg gives
for the column's type. `test_store_reader_fuzz` does the same through real databases.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import msgspec
import pytest
from eventactors_examples.bank.domain import Deposited
from fuzz_support import bad_timestamps, call_within, json_values, only, shorten, sqlite_values
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import eventactors as ea
from eventactors.records import CommandRecord, EventEnvelope
from eventactors.stores._postgres_commands import command_from_row
from eventactors.stores._postgres_rows import row_payload
from eventactors.stores._sqlite_rows import envelope_from_row, payload_row

pytestmark = [
    pytest.mark.timeout(120),
    pytest.mark.filterwarnings("ignore:Generating overly large repr"),
]

FUZZ = settings(
    max_examples=300,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
STREAM = "account|a"
WHEN = "2024-05-01T12:00:00+00:00"


def sqlite_store() -> ea.SQLiteStore:
    """Never opened: only its row readers and decoder are used."""
    store = ea.SQLiteStore("/nonexistent/rows.db")
    store.serializer.register(Deposited)
    return store


def postgres_store() -> Any:
    store = ea.PostgresStore("postgresql://nobody@127.0.0.1:1/none", schema="rows")
    store.serializer.register(Deposited)
    return store


def with_columns(valid: tuple[Any, ...], values: dict[int, st.SearchStrategy[Any]]):
    """`valid` with one to three of its columns replaced by values drawn for that column."""
    changes = st.lists(
        st.sampled_from(sorted(values)).flatmap(lambda c: values[c].map(lambda v: (c, v))),
        min_size=1,
        max_size=3,
    )

    def apply(replacements: list[tuple[int, Any]]) -> tuple[Any, ...]:
        row = list(valid)
        for column, value in replacements:
            row[column] = value
        return tuple(row)

    return changes.map(apply)


def is_text(*values: Any) -> bool:
    return all(type(value) is str for value in values)


def check_envelope(envelope: EventEnvelope) -> None:
    """The contract of a record a reader returns, whatever the row held."""
    assert is_text(
        envelope.event_id, envelope.persistence_id, envelope.entity_type, envelope.entity_id,
        envelope.event_type, envelope.command_id, envelope.correlation_id,
    )  # fmt: skip
    assert type(envelope.sequence_number) is int and envelope.sequence_number >= 1
    assert type(envelope.event_version) is int and envelope.event_version >= 1
    assert type(envelope.global_position) is int
    assert isinstance(envelope.timestamp, datetime) and envelope.timestamp.tzinfo is not None
    assert type(envelope.tags) is tuple and is_text(*envelope.tags)
    assert isinstance(envelope.metadata, dict) and is_text(
        *envelope.metadata, *envelope.metadata.values()
    )
    assert type(envelope.payload) is bytes
    decoded = call_within(lambda: envelope.event)
    only(decoded, ea.SerializationError, given=envelope)


def check_command(record: CommandRecord) -> None:
    assert is_text(
        record.command_id, record.persistence_id, record.entity_type, record.entity_id,
        record.command_type, record.outcome, record.reason, record.correlation_id,
    )  # fmt: skip
    assert type(record.payload) is bytes
    assert isinstance(record.timestamp, datetime) and record.timestamp.tzinfo is not None
    assert type(record.event_ids) is tuple and is_text(*record.event_ids)
    assert type(record.revision) is int
    assert isinstance(record.metadata, dict) and is_text(
        *record.metadata, *record.metadata.values()
    )


def refused_naming(outcome: Any, *parts: str, given: Any) -> None:
    only(outcome, ea.SerializationError, given=given)
    if outcome.error is not None:
        for part in parts:
            assert part in str(outcome.error), (
                f"{outcome.error} does not name {part}: {shorten(given)}"
            )


# -- SQLite ------------------------------------------------------------------------------------

SQLITE_EVENT = (
    7, "0190b2c6-0000-7000-8000-000000000001", STREAM, "account", "a", 3, "Deposited",
    '{"amount":5}', WHEN, '["t"]', '{"k":"v"}', "c", "r", 1,
)  # fmt: skip
JSON_TEXTS = json_values.map(lambda value: msgspec.json.encode(value).decode())
#: For each kind of column, the values it may hold: anything at all, and then the wrong values
#: of its own kind (so that a timestamp column gets many near-timestamps).
ANYTHING = sqlite_values
TIMESTAMPS = sqlite_values | bad_timestamps
JSON_COLUMN = sqlite_values | JSON_TEXTS
SQLITE_EVENT_VALUES = {
    **dict.fromkeys(range(1, 14), ANYTHING),
    7: JSON_COLUMN,
    8: TIMESTAMPS,
    9: JSON_COLUMN,
    10: JSON_COLUMN,
}
SQLITE = sqlite_store()


@FUZZ
@given(row=with_columns(SQLITE_EVENT, SQLITE_EVENT_VALUES))
def test_an_sqlite_event_row_gives_a_sound_envelope_or_names_the_stream(row):
    outcome = call_within(envelope_from_row, row, SQLITE.decode_event, SQLITE.path)
    refused_naming(outcome, "corrupt event row", "global position 7", given=row)
    if outcome.error is None:
        check_envelope(outcome.value)


@FUZZ
@given(
    row=with_columns(
        (3, "Deposited", '{"amount":5}', 1),
        {0: ANYTHING, 1: ANYTHING, 2: JSON_COLUMN, 3: ANYTHING},
    )
)
def test_an_sqlite_replay_row_gives_a_sound_row_or_names_the_stream(row):
    outcome = call_within(payload_row, row, STREAM, SQLITE.path)
    refused_naming(outcome, repr(STREAM), given=row)
    if outcome.error is None:
        number, event_type, payload, version = outcome.value
        assert type(number) is int and number >= 1 and is_text(event_type)
        assert type(payload) is bytes
        assert type(version) is int and version >= 1


SQLITE_COMMAND = (
    "c", STREAM, "account", "a", "Deposit", b'{"amount":5}', WHEN, "accepted", "",
    '["e1","e2"]', 2, "r", '{"k":"v"}',
)  # fmt: skip
SQLITE_COMMAND_VALUES = {
    **dict.fromkeys(range(13), ANYTHING),
    5: JSON_COLUMN,
    6: TIMESTAMPS,
    9: JSON_COLUMN,
    12: JSON_COLUMN,
}


@FUZZ
@given(row=with_columns(SQLITE_COMMAND, SQLITE_COMMAND_VALUES))
def test_an_sqlite_command_row_gives_a_sound_record_or_names_the_stream(row):
    outcome = call_within(SQLITE._command_from_row, row)
    refused_naming(outcome, "corrupt command-log row", given=row)
    if outcome.error is None:
        check_command(outcome.value)


@FUZZ
@given(state_type=ANYTHING, payload=JSON_COLUMN)
def test_an_sqlite_state_row_decodes_or_names_where_it_is(state_type, payload):
    where = f"state of stream {STREAM!r} at revision 1"
    outcome = call_within(SQLITE._decode_state_row, state_type, payload, where)
    refused_naming(outcome, where, given=(state_type, payload))


# -- PostgreSQL: the values asyncpg gives for each column's type --------------------------------

aware_times = st.datetimes(
    min_value=datetime(1, 1, 2), max_value=datetime(9999, 12, 30), timezones=st.just(UTC)
)
# 'infinity' and '-infinity' come back naive, as datetime.max and datetime.min.
pg_times = (
    aware_times
    | st.sampled_from([datetime.max, datetime.min])
    | aware_times.map(lambda moment: moment.astimezone(timezone(timedelta(hours=5))))
)
pg_text = st.text(max_size=20)
pg_json_text = st.one_of(
    JSON_TEXTS,
    st.sampled_from(['"\\ud800"', "[[[[[]]]]]", "1" + "0" * 400, '{"k": {"n": 1}}']),
)
pg_arrays = st.lists(st.none() | pg_text, max_size=4) | st.lists(
    st.lists(pg_text, min_size=2, max_size=2), min_size=1, max_size=2
)  # text[] may hold NULLs, and be two-dimensional
PG_EVENT = (
    7, uuid.UUID(int=1), STREAM, "account", "a", 3, "Deposited", '{"amount": 5}', None,
    datetime(2024, 5, 1, tzinfo=UTC), ["t"], '{"k": "v"}', "c", "r", 1,
)  # fmt: skip
PG_EVENT_VALUES = {
    2: pg_text, 3: pg_text, 4: pg_text, 5: st.integers(-(2**63), 2**63 - 1), 6: pg_text,
    7: st.none() | pg_json_text, 8: st.none() | st.binary(max_size=30), 9: pg_times,
    10: pg_arrays, 11: pg_json_text, 12: pg_text, 13: pg_text,
    14: st.integers(-(2**31), 2**31 - 1),
}  # fmt: skip


POSTGRES = postgres_store()


@FUZZ
@given(row=with_columns(PG_EVENT, PG_EVENT_VALUES))
def test_a_postgres_event_row_gives_a_sound_envelope_or_names_the_stream(row):
    if row[7] is None and row[8] is None:
        row = (*row[:8], b"{}", *row[9:])  # the table's CHECK keeps one payload column set
    outcome = call_within(POSTGRES._envelope, row)
    refused_naming(outcome, "global position 7", given=row)
    if outcome.error is None:
        check_envelope(outcome.value)


PG_COMMAND = (
    "c", STREAM, "account", "a", "Deposit", b'{"amount":5}', datetime(2024, 5, 1, tzinfo=UTC),
    "accepted", "", ["e1"], 2, "r", '{"k": "v"}',
)  # fmt: skip
PG_COMMAND_VALUES = {
    0: pg_text, 4: pg_text, 5: st.binary(max_size=30), 6: pg_times, 7: pg_text, 8: pg_text,
    9: pg_arrays, 10: st.integers(-(2**63), 2**63 - 1), 11: pg_text, 12: pg_json_text,
}  # fmt: skip


@FUZZ
@given(row=with_columns(PG_COMMAND, PG_COMMAND_VALUES))
def test_a_postgres_command_row_gives_a_sound_record_or_names_the_stream(row):
    outcome = call_within(command_from_row, row, "PostgreSQL here")
    refused_naming(outcome, "corrupt command-log row", repr(STREAM), given=row)
    if outcome.error is None:
        check_command(outcome.value)


@FUZZ
@given(
    payload_json=st.none() | pg_json_text,
    payload_bytes=st.none() | st.binary(max_size=30),
)
def test_a_postgres_state_row_payload_is_bytes_or_a_serialization_error(
    payload_json, payload_bytes
):
    row = {"payload_json": payload_json, "payload_bytes": payload_bytes}
    where = f"state of stream {STREAM!r} at revision 1"
    outcome = call_within(row_payload, row, where)
    refused_naming(outcome, where, given=row)
    if outcome.error is None:
        assert type(outcome.value) is bytes


# -- known corruptions, each refused every time ------------------------------------------------

DEEP = "[" * 5_000 + "]" * 5_000
SQLITE_EVENT_CORRUPTIONS = [
    (8, "yesterday"), (8, 5), (8, b"2024"), (9, "[1]"), (9, '{"a": 1}'),
    (9, DEEP), (9, "\xff"), (10, '{"a": 1}'), (10, "null"), (10, "[]"), (5, "three"), (5, 0),
    (5, 2.5), (7, 5), (7, None), (1, None), (6, b"Deposited"), (12, 7),
]  # fmt: skip
PG_EVENT_CORRUPTIONS = [
    (9, datetime.max), (9, datetime.min), (10, [None]), (10, [["a", "b"]]), (11, "null"),
    (11, "[]"), (11, '{"a": 1}'), (11, DEEP), (5, 0), (5, -1),
]  # fmt: skip
SQLITE_COMMAND_CORRUPTIONS = [
    (0, None), (4, 5), (5, 5), (6, "later"), (9, "[1]"), (9, "{}"), (10, "two"),
    (12, "[]"), (12, '{"a": null}'),
]  # fmt: skip
PG_COMMAND_CORRUPTIONS = [(6, datetime.max), (9, [None]), (9, [["a", "b"]]), (12, "null")]


def corrupted(valid: tuple[Any, ...], column: int, value: Any) -> tuple[Any, ...]:
    return (*valid[:column], value, *valid[column + 1 :])


@pytest.mark.parametrize(("column", "value"), SQLITE_EVENT_CORRUPTIONS, ids=repr)
def test_each_known_sqlite_event_corruption_is_refused(column, value):
    row = corrupted(SQLITE_EVENT, column, value)
    outcome = call_within(envelope_from_row, row, SQLITE.decode_event, SQLITE.path)
    assert isinstance(outcome.error, ea.SerializationError), shorten(row)
    assert "global position 7" in str(outcome.error)


@pytest.mark.parametrize(("column", "value"), PG_EVENT_CORRUPTIONS, ids=repr)
def test_each_known_postgres_event_corruption_is_refused(column, value):
    row = corrupted(PG_EVENT, column, value)
    outcome = call_within(POSTGRES._envelope, row)
    assert isinstance(outcome.error, ea.SerializationError), shorten(row)
    assert f"stream {STREAM!r}" in str(outcome.error) and "global position 7" in str(outcome.error)


@pytest.mark.parametrize(("column", "value"), SQLITE_COMMAND_CORRUPTIONS, ids=repr)
def test_each_known_sqlite_command_corruption_is_refused(column, value):
    row = corrupted(SQLITE_COMMAND, column, value)
    outcome = call_within(SQLITE._command_from_row, row)
    assert isinstance(outcome.error, ea.SerializationError), shorten(row)
    assert f"stream {STREAM!r}" in str(outcome.error)


@pytest.mark.parametrize(("column", "value"), PG_COMMAND_CORRUPTIONS, ids=repr)
def test_each_known_postgres_command_corruption_is_refused(column, value):
    row = corrupted(PG_COMMAND, column, value)
    outcome = call_within(command_from_row, row, "PostgreSQL here")
    assert isinstance(outcome.error, ea.SerializationError), shorten(row)
    assert f"stream {STREAM!r}" in str(outcome.error)


def test_an_sqlite_timestamp_without_an_offset_reads_as_utc():
    """Another writer's naive timestamp is UTC, as the inspection tools take it."""
    row = corrupted(SQLITE_EVENT, 8, "2024-05-01T12:00:00")
    envelope = envelope_from_row(row, SQLITE.decode_event, SQLITE.path)
    assert envelope.timestamp == datetime(2024, 5, 1, 12, tzinfo=UTC)
    check_envelope(envelope)
