"""The CommandLogStore contract: entries written alone or with the write they describe, read
back per stream in write order, every field intact."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest

import eventactors as ea
from eventactors.records import (
    ACCEPTED,
    FAILED,
    REJECTED,
    TIMED_OUT,
    CommandRecord,
    split_persistence_id,
)

from .base import OpenStore, StoreContractBase
from .kit import Kit


def entry(
    persistence_id: str,
    command_id: str = "cmd-1",
    *,
    outcome: str = ACCEPTED,
    event_ids: tuple[str, ...] = (),
    revision: int = 0,
    **fields: object,
) -> CommandRecord:
    """A command-log entry for the stream; `fields` override the other attributes."""
    entity_type, entity_id = split_persistence_id(persistence_id)
    values: dict[str, object] = {
        "command_id": command_id,
        "persistence_id": persistence_id,
        "entity_type": entity_type,
        "entity_id": entity_id,
        "command_type": "Deposit",
        "payload": b'{"amount":5}',
        "timestamp": datetime.now(UTC),
        "outcome": outcome,
        "event_ids": event_ids,
        "revision": revision,
    }
    values.update(fields)
    return CommandRecord(**values)  # type: ignore[arg-type]


def ids(entries: list[CommandRecord]) -> list[str]:
    return [e.command_id for e in entries]


async def assert_no_commands(store: ea.Store, *streams: str) -> None:
    for stream in streams:
        assert await store.read_commands(stream) == []


def bad_entries(stream: str, other: str) -> dict[str, tuple[Any, type[Exception]]]:
    return {
        "not_a_command_record": ({"command_id": "x", "persistence_id": stream}, TypeError),
        "naive_timestamp": (entry(stream, timestamp=datetime(2026, 1, 1)), ValueError),
        "unknown_outcome": (entry(stream, outcome="maybe"), ValueError),
        "text_payload": (entry(stream, payload="text"), TypeError),
        "other_stream": (entry(other), ValueError),
    }


BAD_CASES = ["not_a_command_record", "naive_timestamp", "unknown_outcome", "text_payload"]


class CommandLogStoreContract(StoreContractBase):
    """Needs `CommandLogStore`, with `EventStore` and `StateStore`, whose writes carry entries."""

    async def test_an_unknown_stream_has_no_entries(self, store: ea.Store, kit: Kit) -> None:
        await store.record_command(entry(kit.pid("other")))

        assert await store.read_commands(kit.pid("nobody")) == []

    @pytest.mark.parametrize("outcome", [ACCEPTED, REJECTED, TIMED_OUT, FAILED])
    async def test_every_entry_field_round_trips(
        self, store: ea.Store, kit: Kit, outcome: str
    ) -> None:
        # An entity id may contain the separator; payloads are bytes, not necessarily text.
        stream = kit.pid("acc|7 ü")
        written = CommandRecord(
            command_id="cmd-ü-1",
            persistence_id=stream,
            entity_type="account",
            entity_id="acc|7 ü",
            command_type="Withdraw 🏠",
            payload=b"\x00\xff binary \xc3\xbc",
            timestamp=datetime(2026, 3, 4, 5, 6, 7, 890123, tzinfo=timezone(timedelta(hours=2))),
            outcome=outcome,
            reason="insufficient funds: ünïcode 🙂",
            event_ids=("e-1", "e-2"),
            revision=7,
            correlation_id="corr-ü",
            metadata={"user": "ünïcode 🙂", "ip": "10.0.0.1", "": "empty key"},
        )

        await store.record_command(written)
        (read,) = await store.read_commands(stream)

        assert isinstance(read, CommandRecord)
        assert read.command_id == written.command_id
        assert read.persistence_id == stream
        assert read.entity_type == "account"
        assert read.entity_id == "acc|7 ü"
        assert read.command_type == written.command_type
        assert isinstance(read.payload, bytes)
        assert read.payload == written.payload  # exactly, never re-encoded
        assert read.timestamp == written.timestamp  # the same instant; the offset may be UTC's
        assert read.timestamp.utcoffset() is not None
        assert read.outcome == outcome
        assert read.reason == written.reason
        assert isinstance(read.event_ids, tuple)
        assert read.event_ids == ("e-1", "e-2")
        assert read.revision == 7
        assert read.correlation_id == "corr-ü"
        assert dict(read.metadata) == dict(written.metadata)
        assert read.command is None

    async def test_defaults_round_trip(self, store: ea.Store, kit: Kit) -> None:
        stream = kit.pid("a")
        written = entry(stream, payload=b"")

        await store.record_command(written)
        (read,) = await store.read_commands(stream)

        assert read.payload == b""
        assert read.reason == ""
        assert read.event_ids == ()
        assert isinstance(read.event_ids, tuple)
        assert read.revision == 0
        assert read.correlation_id == ""
        assert dict(read.metadata) == {}
        assert read == written

    async def test_entries_come_back_per_stream_in_write_order(
        self, store: ea.Store, kit: Kit
    ) -> None:
        a, b = kit.pid("a"), kit.pid("b")
        start = datetime.now(UTC)
        # Timestamps run backwards: the order is the order of writing, not of timestamps.
        for index in range(6):
            stream = a if index % 2 == 0 else b
            at = start - timedelta(seconds=index)
            await store.record_command(entry(stream, f"c{index}", timestamp=at))

        assert ids(await store.read_commands(a)) == ["c0", "c2", "c4"]
        assert ids(await store.read_commands(b)) == ["c1", "c3", "c5"]

    @pytest.mark.parametrize(("limit", "expected"), [(0, 0), (1, 1), (3, 3), (5, 5), (9, 5)])
    async def test_limit_gives_the_first_entries(
        self, store: ea.Store, kit: Kit, limit: int, expected: int
    ) -> None:
        stream = kit.pid("a")
        for index in range(5):
            await store.record_command(entry(stream, f"c{index}"))

        read = await store.read_commands(stream, limit=limit)

        assert ids(read) == [f"c{index}" for index in range(expected)]

    async def test_a_negative_limit_is_refused(self, store: ea.Store, kit: Kit) -> None:
        with pytest.raises(ValueError):
            await store.read_commands(kit.pid("a"), limit=-1)

    async def test_the_same_command_id_may_be_logged_twice(self, store: ea.Store, kit: Kit) -> None:
        # A retried command is logged each time it is handled.
        stream = kit.pid("a")
        await store.record_command(entry(stream, "again", outcome=TIMED_OUT))
        await store.record_command(entry(stream, "again", outcome=ACCEPTED))

        read = await store.read_commands(stream)
        assert [(e.command_id, e.outcome) for e in read] == [
            ("again", TIMED_OUT),
            ("again", ACCEPTED),
        ]

    # -- with the write they describe -----------------------------------------------------------

    async def test_append_writes_its_entry_with_its_events(self, store: ea.Store, kit: Kit) -> None:
        stream = kit.pid("a")
        records = kit.records(stream, 1, 2)
        command = entry(stream, event_ids=tuple(r.event_id for r in records), revision=2)

        appended = await store.append(stream, records, 0, command=command)

        assert [e.event_id for e in appended] == [r.event_id for r in records]
        assert await store.read_commands(stream) == [command]
        assert await store.highest_sequence_number(stream) == 2

    async def test_an_append_without_events_writes_its_entry(
        self, store: ea.Store, kit: Kit
    ) -> None:
        stream = kit.pid("a")
        await kit.append(stream, 2)

        assert await store.append(stream, [], 2, command=entry(stream, "noop", revision=2)) == []

        assert ids(await store.read_commands(stream)) == ["noop"]
        assert await store.highest_sequence_number(stream) == 2

    async def test_an_append_without_events_still_checks_the_expectation(
        self, store: ea.Store, kit: Kit
    ) -> None:
        stream = kit.pid("a")
        await kit.append(stream, 2)

        with pytest.raises(ea.ConcurrencyError):
            await store.append(stream, [], 1, command=entry(stream))

        await assert_no_commands(store, stream)

    @pytest.mark.parametrize("expected", [0, 1, 3])
    async def test_a_conflicting_append_writes_no_entry(
        self, store: ea.Store, kit: Kit, expected: int
    ) -> None:
        stream = kit.pid("a")
        await kit.append(stream, 2)

        with pytest.raises(ea.ConcurrencyError):
            await store.append(
                stream, kit.records(stream, expected + 1, 1), expected, command=entry(stream)
            )

        await assert_no_commands(store, stream)
        assert await store.highest_sequence_number(stream) == 2

    async def test_upsert_state_writes_its_entry_with_the_state(
        self, store: ea.Store, kit: Kit
    ) -> None:
        stream = kit.pid("d")

        await store.upsert_state(stream, 1, kit.state(stream, 1, 10), command=entry(stream, "s1"))
        await store.upsert_state(stream, 2, kit.state(stream, 2, 20), command=entry(stream, "s2"))

        assert ids(await store.read_commands(stream)) == ["s1", "s2"]
        stored = await store.get_state(stream)
        assert stored is not None and stored.revision == 2

    @pytest.mark.parametrize("revision", [1, 3])
    async def test_a_conflicting_upsert_writes_no_entry(
        self, store: ea.Store, kit: Kit, revision: int
    ) -> None:
        stream = kit.pid("d")
        await store.upsert_state(stream, 1, kit.state(stream, 1, 10))

        with pytest.raises(ea.ConcurrencyError):
            await store.upsert_state(
                stream, revision, kit.state(stream, revision, 99), command=entry(stream)
            )

        await assert_no_commands(store, stream)
        stored = await store.get_state(stream)
        assert stored is not None and stored.state.balance == 10

    async def test_racing_appends_log_only_the_winners_entry(
        self, store: ea.Store, kit: Kit
    ) -> None:
        stream = kit.pid("hot")
        await kit.append(stream, 1)

        results = await asyncio.gather(
            *(
                store.append(stream, kit.records(stream, 2, 1), 1, command=entry(stream, f"c{n}"))
                for n in range(12)
            ),
            return_exceptions=True,
        )

        winners = [n for n, result in enumerate(results) if isinstance(result, list)]
        assert len(winners) == 1, results
        assert all(
            isinstance(result, ea.ConcurrencyError)
            for n, result in enumerate(results)
            if n != winners[0]
        )
        assert ids(await store.read_commands(stream)) == [f"c{winners[0]}"]

    async def test_concurrent_appends_to_many_streams_log_every_entry(
        self, store: ea.Store, kit: Kit
    ) -> None:
        streams = [kit.pid(f"s{n}") for n in range(30)]

        async def write(stream: str) -> None:
            for sequence in (1, 2, 3):
                command = entry(stream, f"{stream}-{sequence}", revision=sequence)
                await store.append(
                    stream, [kit.record(stream, sequence)], sequence - 1, command=command
                )
            await store.record_command(entry(stream, f"{stream}-rejected", outcome=REJECTED))

        await asyncio.gather(*(write(stream) for stream in streams))

        for stream in streams:
            assert ids(await store.read_commands(stream)) == [
                f"{stream}-1",
                f"{stream}-2",
                f"{stream}-3",
                f"{stream}-rejected",
            ]

    async def test_an_append_refused_by_the_store_writes_no_entry(
        self, store: ea.Store, kit: Kit
    ) -> None:
        """Whatever a backend makes of a payload that is not JSON, an entry is logged exactly
        when its append succeeds, also when it shares a group commit with the refused one."""
        good, odd = kit.pid("good"), kit.pid("odd")
        not_json = kit.record(odd, 1)
        not_json = ea.EventRecord(
            not_json.event_id, odd, not_json.entity_type, not_json.entity_id, 1,
            not_json.event_type, b"{not json", not_json.timestamp,
        )  # fmt: skip

        results = await asyncio.gather(
            store.append(good, kit.records(good, 1, 1), 0, command=entry(good, "good")),
            store.append(odd, [not_json], 0, command=entry(odd, "odd")),
            return_exceptions=True,
        )

        assert isinstance(results[0], list), results[0]
        assert ids(await store.read_commands(good)) == ["good"]
        odd_written = isinstance(results[1], list)
        assert ids(await store.read_commands(odd)) == (["odd"] if odd_written else [])
        assert await store.highest_sequence_number(odd) == (1 if odd_written else 0)

    # -- bad input ------------------------------------------------------------------------------

    @pytest.mark.parametrize("case", BAD_CASES)
    async def test_record_command_refuses_a_bad_entry(
        self, store: ea.Store, kit: Kit, case: str
    ) -> None:
        stream = kit.pid("a")
        bad, error = bad_entries(stream, kit.pid("b"))[case]

        with pytest.raises(error):
            await store.record_command(bad)

        await assert_no_commands(store, stream)

    @pytest.mark.parametrize("case", [*BAD_CASES, "other_stream"])
    async def test_append_refuses_a_bad_entry_and_writes_nothing(
        self, store: ea.Store, kit: Kit, case: str
    ) -> None:
        stream = kit.pid("a")
        bad, error = bad_entries(stream, kit.pid("b"))[case]

        with pytest.raises(error):
            await store.append(stream, kit.records(stream, 1, 2), 0, command=bad)

        await assert_no_commands(store, stream, kit.pid("b"))
        assert await store.highest_sequence_number(stream) == 0
        assert await store.read_all() == []
        # The stream is still usable.
        await store.append(stream, kit.records(stream, 1, 1), 0, command=entry(stream))
        assert len(await store.read_commands(stream)) == 1

    @pytest.mark.parametrize("case", [*BAD_CASES, "other_stream"])
    async def test_upsert_state_refuses_a_bad_entry_and_writes_nothing(
        self, store: ea.Store, kit: Kit, case: str
    ) -> None:
        stream = kit.pid("a")
        bad, error = bad_entries(stream, kit.pid("b"))[case]

        with pytest.raises(error):
            await store.upsert_state(stream, 1, kit.state(stream, 1, 10), command=bad)

        await assert_no_commands(store, stream, kit.pid("b"))
        assert await store.get_state(stream) is None

    # -- lifecycle ------------------------------------------------------------------------------

    async def test_entries_survive_close_and_are_seen_by_another_store(
        self, store: ea.Store, reopen: OpenStore, kit: Kit
    ) -> None:
        stream = kit.pid("a")
        await store.append(stream, kit.records(stream, 1, 1), 0, command=entry(stream, "c1"))
        await store.record_command(entry(stream, "c2", outcome=FAILED, reason="boom"))
        await store.close()

        other = reopen()
        read = await other.read_commands(stream)
        assert [(e.command_id, e.outcome, e.reason) for e in read] == [
            ("c1", ACCEPTED, ""),
            ("c2", FAILED, "boom"),
        ]
        await other.record_command(entry(stream, "c3"))
        assert ids(await store.read_commands(stream)) == ["c1", "c2", "c3"]
