"""The EventStore contract, writing: append, deletion, and racing writers."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import cast

import pytest

import eventactors as ea

from ._envelopes import _none, event_ids, positions, sequences, strictly_increasing
from .base import OpenStore, StoreContractBase
from .kit import Kit


class EventWriteContract(StoreContractBase):
    """Needs `EventStore`."""

    # -- append ---------------------------------------------------------------------------------

    async def test_append_returns_envelopes_with_increasing_positions(
        self, store: ea.Store, kit: Kit
    ) -> None:
        records = kit.records(kit.pid("a"), 1, 5)

        first = await store.append(kit.pid("a"), records, 0)
        other = await store.append(kit.pid("b"), kit.records(kit.pid("b"), 1, 2), 0)
        second = await store.append(kit.pid("a"), kit.records(kit.pid("a"), 6, 3), 5)

        assert event_ids(first) == event_ids(records)
        assert sequences(first) == [1, 2, 3, 4, 5]
        assert sequences(second) == [6, 7, 8]
        assert all(isinstance(position, int) for position in positions(first + other + second))
        assert strictly_increasing(positions(first + other + second))
        assert positions(first)[0] >= 1

    async def test_highest_sequence_number_follows_appends(self, store: ea.Store, kit: Kit) -> None:
        stream = kit.pid("a")
        assert await store.highest_sequence_number(stream) == 0
        await kit.append(stream, 1)
        assert await store.highest_sequence_number(stream) == 1
        await kit.append(stream, 4)
        assert await store.highest_sequence_number(stream) == 5
        await kit.append(kit.pid("b"), 9)
        assert await store.highest_sequence_number(stream) == 5
        assert await store.highest_sequence_number(kit.pid("b")) == 9

    async def test_every_field_round_trips(self, store: ea.Store, kit: Kit) -> None:
        # An entity id may contain the separator; the entity type never does.
        stream = kit.pid("acc|7 ü", entity_type="account")
        moment = datetime.now(UTC)
        deposited = kit.Deposited(account="acc|7 ü", amount=125)
        withdrawn = kit.Withdrawn(account="acc|7 ü", amount=25, note="rent 🏠")
        records = [
            kit.record(
                stream,
                1,
                deposited,
                tags=("vip", "eu-west", "ü"),
                metadata={"ip": "10.0.0.1", "user": "ünïcode 🙂"},
                command_id="cmd-1",
                correlation_id="corr-1",
                timestamp=moment,
            ),
            kit.record(
                stream,
                2,
                withdrawn,
                tags=(),
                metadata={},
                command_id="cmd-2",
                correlation_id="",
                timestamp=moment + timedelta(microseconds=1),
            ),
        ]

        appended = await store.append(stream, records, 0)
        from_stream = await store.read_stream(stream)
        from_log = await store.read_all()

        assert len(appended) == len(from_stream) == len(from_log) == 2
        for envelopes in (appended, from_stream, from_log):
            for envelope, record, event in zip(
                envelopes, records, (deposited, withdrawn), strict=True
            ):
                assert isinstance(envelope, ea.EventEnvelope)
                assert envelope.event_id == record.event_id
                assert envelope.persistence_id == stream
                assert envelope.entity_type == "account"
                assert envelope.entity_id == "acc|7 ü"
                assert envelope.sequence_number == record.sequence_number
                assert envelope.event_type == record.event_type
                assert envelope.timestamp == record.timestamp
                assert envelope.timestamp.utcoffset() == timedelta(0)
                assert isinstance(envelope.tags, tuple)
                assert envelope.tags == record.tags
                assert dict(envelope.metadata) == dict(record.metadata)
                assert envelope.command_id == record.command_id
                assert envelope.correlation_id == record.correlation_id
                assert kit.same_payload(envelope.payload, record.payload)
                assert isinstance(envelope.payload, bytes)
                assert type(envelope.event) is type(event)
                assert envelope.event == event
        assert positions(from_stream) == positions(appended)
        assert positions(from_log) == positions(appended)
        assert from_stream == appended
        assert from_log == appended

    async def test_event_versions_round_trip(self, store: ea.Store, kit: Kit) -> None:
        """The version of the definition that wrote an event is stored with it: reading an
        older one runs the upcasters from that version."""
        stream = kit.pid("a")
        records = [kit.record(stream, n, event_version=v) for n, v in [(1, 1), (2, 3), (3, 2)]]

        appended = await store.append(stream, records, 0)

        for envelopes in (appended, await store.read_stream(stream), await store.read_all()):
            assert [envelope.event_version for envelope in envelopes] == [1, 3, 2]
        payloads = await store.read_stream_payloads(stream)
        assert [(row[0], row[3]) for row in payloads] == [(1, 1), (2, 3), (3, 2)]

    @pytest.mark.parametrize("expected", [0, 1, 2, 4, 5, 100])
    async def test_wrong_expected_sequence_number_raises_and_writes_nothing(
        self, store: ea.Store, kit: Kit, expected: int
    ) -> None:
        stream = kit.pid("a")
        before = await kit.append(stream, 3)

        batch = kit.records(stream, expected + 1, 2)
        with pytest.raises(ea.ConcurrencyError):
            await store.append(stream, batch, expected)

        assert await store.highest_sequence_number(stream) == 3
        assert event_ids(await store.read_stream(stream)) == event_ids(before)
        assert event_ids(await kit.read_everything()) == event_ids(before)

    @pytest.mark.parametrize("expected", [1, 3])
    async def test_new_stream_expects_zero(self, store: ea.Store, kit: Kit, expected: int) -> None:
        stream = kit.pid("new")
        with pytest.raises(ea.ConcurrencyError):
            await store.append(stream, kit.records(stream, expected + 1, 1), expected)

        assert await store.highest_sequence_number(stream) == 0
        assert await store.read_stream(stream) == []
        assert await store.read_all() == []

    async def test_losing_writer_writes_none_of_its_batch(self, store: ea.Store, kit: Kit) -> None:
        stream = kit.pid("a")
        await kit.append(stream, 3)
        # Both writers saw sequence 3; the second one to append loses its whole batch.
        winner = kit.records(stream, 4, 2)
        loser = kit.records(stream, 4, 3)
        await store.append(stream, winner, 3)

        with pytest.raises(ea.ConcurrencyError):
            await store.append(stream, loser, 3)

        read = await store.read_stream(stream)
        assert sequences(read) == [1, 2, 3, 4, 5]
        assert event_ids(read)[3:] == event_ids(winner)
        assert not set(event_ids(loser)) & set(event_ids(await kit.read_everything()))
        assert await store.highest_sequence_number(stream) == 5

    @pytest.mark.parametrize(
        "case",
        ["gap", "repeat", "starts_too_late", "starts_too_early", "backwards", "other_stream"],
    )
    async def test_bad_batch_raises_value_error_and_writes_nothing(
        self, store: ea.Store, kit: Kit, case: str
    ) -> None:
        stream, other = kit.pid("a"), kit.pid("b")
        before = await kit.append(stream, 2)
        batches = {
            "gap": [kit.record(stream, 3), kit.record(stream, 5)],
            "repeat": [kit.record(stream, 3), kit.record(stream, 3)],
            "starts_too_late": [kit.record(stream, 4), kit.record(stream, 5)],
            "starts_too_early": [kit.record(stream, 2), kit.record(stream, 3)],
            "backwards": [kit.record(stream, 4), kit.record(stream, 3)],
            "other_stream": [kit.record(stream, 3), kit.record(other, 4), kit.record(stream, 5)],
        }

        with pytest.raises(ValueError):
            await store.append(stream, batches[case], 2)

        assert await store.highest_sequence_number(stream) == 2
        assert await store.highest_sequence_number(other) == 0
        assert event_ids(await store.read_stream(stream)) == event_ids(before)
        assert await store.read_stream(other) == []
        assert event_ids(await kit.read_everything()) == event_ids(before)
        # The stream is still usable where it was.
        assert sequences(await store.append(stream, kit.records(stream, 3, 1), 2)) == [3]

    async def test_batch_for_another_stream_raises_value_error(
        self, store: ea.Store, kit: Kit
    ) -> None:
        records = kit.records(kit.pid("b"), 1, 2)

        with pytest.raises(ValueError):
            await store.append(kit.pid("a"), records, 0)

        assert await store.highest_sequence_number(kit.pid("a")) == 0
        assert await store.highest_sequence_number(kit.pid("b")) == 0
        assert await store.read_all() == []

    # -- deletion -------------------------------------------------------------------------------

    async def test_delete_events_to_is_inclusive(self, store: ea.Store, kit: Kit) -> None:
        stream = kit.pid("a")
        appended = await kit.append(stream, 6)

        await store.delete_events_to(stream, 3)

        read = await store.read_stream(stream)
        assert sequences(read) == [4, 5, 6]
        assert event_ids(read) == event_ids(appended[3:])
        assert await store.read_stream(stream, 1, 3) == []
        assert sequences(await store.read_stream(stream, 1, 4)) == [4]

    async def test_deletion_keeps_the_highest_sequence_number(
        self, store: ea.Store, kit: Kit
    ) -> None:
        stream = kit.pid("a")
        await kit.append(stream, 5)

        await store.delete_events_to(stream, 5)

        assert await store.read_stream(stream) == []
        assert await store.highest_sequence_number(stream) == 5
        with pytest.raises(ea.ConcurrencyError):
            await store.append(stream, kit.records(stream, 1, 1), 0)
        with pytest.raises(ea.ConcurrencyError):
            await store.append(stream, kit.records(stream, 4, 1), 3)

        appended = await store.append(stream, kit.records(stream, 6, 2), 5)

        assert sequences(appended) == [6, 7]
        assert sequences(await store.read_stream(stream)) == [6, 7]
        assert await store.highest_sequence_number(stream) == 7

    async def test_deleting_past_the_end_empties_the_stream_but_keeps_highest(
        self, store: ea.Store, kit: Kit
    ) -> None:
        stream = kit.pid("a")
        await kit.append(stream, 3)

        await store.delete_events_to(stream, 100)

        assert await store.read_stream(stream) == []
        assert await store.highest_sequence_number(stream) == 3
        assert sequences(await store.append(stream, kit.records(stream, 4, 1), 3)) == [4]

    async def test_read_all_no_longer_returns_deleted_events(
        self, store: ea.Store, kit: Kit
    ) -> None:
        a, b = kit.pid("a"), kit.pid("b")
        a1 = await kit.append(a, 2)
        b1 = await kit.append(b, 2)
        a2 = await kit.append(a, 2)

        await store.delete_events_to(a, 3)

        survivors = b1 + a2[1:]
        everything = await kit.read_everything()
        assert event_ids(everything) == event_ids(survivors)
        assert positions(everything) == positions(survivors)
        assert not set(event_ids(a1 + a2[:1])) & set(event_ids(everything))
        assert event_ids(await store.read_stream(b)) == event_ids(b1)

    async def test_deleting_an_unknown_stream_changes_nothing(
        self, store: ea.Store, kit: Kit
    ) -> None:
        kept = await kit.append(kit.pid("a"), 2)

        await store.delete_events_to(kit.pid("nobody"), 10)

        assert await store.highest_sequence_number(kit.pid("nobody")) == 0
        assert event_ids(await store.read_all()) == event_ids(kept)

    # -- concurrency ----------------------------------------------------------------------------

    async def test_concurrent_appends_to_one_stream_have_exactly_one_winner(
        self, store: ea.Store, kit: Kit
    ) -> None:
        stream = kit.pid("hot")
        await kit.append(stream, 2)
        batches = [kit.records(stream, 3, 3) for _ in range(20)]

        results = await asyncio.gather(
            *(store.append(stream, batch, 2) for batch in batches), return_exceptions=True
        )

        winners = [index for index, result in enumerate(results) if isinstance(result, list)]
        assert len(winners) == 1
        losers = [result for index, result in enumerate(results) if index not in winners]
        assert all(isinstance(result, ea.ConcurrencyError) for result in losers)
        (winner,) = winners
        assert event_ids(cast(list[ea.EventEnvelope], results[winner])) == event_ids(
            batches[winner]
        )

        read = await store.read_stream(stream)
        assert sequences(read) == [1, 2, 3, 4, 5]
        assert event_ids(read)[2:] == event_ids(batches[winner])
        assert await store.highest_sequence_number(stream) == 5
        everything = await kit.read_everything()
        assert len(everything) == 5
        assert len(set(event_ids(everything))) == 5

    async def test_concurrent_appends_to_many_streams_all_succeed(
        self, store: ea.Store, kit: Kit
    ) -> None:
        streams, per_stream = 50, 20

        async def write(name: str) -> list[ea.EventEnvelope]:
            stream = kit.pid(name)
            written: list[ea.EventEnvelope] = []
            for sequence in range(1, per_stream + 1):
                written += await store.append(stream, [kit.record(stream, sequence)], sequence - 1)
            return written

        written = await asyncio.gather(*(write(f"s{index}") for index in range(streams)))

        appended = [envelope for batch in written for envelope in batch]
        assert len(appended) == streams * per_stream
        assert len(set(positions(appended))) == len(appended)
        everything = await kit.read_everything(page=333)
        assert len(everything) == len(appended)
        assert strictly_increasing(positions(everything))
        assert sorted(event_ids(everything)) == sorted(event_ids(appended))
        by_id = {envelope.event_id: envelope.global_position for envelope in appended}
        assert all(by_id[envelope.event_id] == envelope.global_position for envelope in everything)
        for index in range(streams):
            stream = kit.pid(f"s{index}")
            read = await store.read_stream(stream)
            assert sequences(read) == list(range(1, per_stream + 1))
            assert strictly_increasing(positions(read))
            assert await store.highest_sequence_number(stream) == per_stream

    @pytest.mark.parametrize("deleted_first", [False, True], ids=["new", "fully-deleted"])
    async def test_racing_stores_on_a_new_or_emptied_stream_have_one_winner(
        self, reopen: OpenStore, kit: Kit, deleted_first: bool
    ) -> None:
        """Separate store objects (connections, processes) racing on a stream with no rows: a
        new stream, or one whose events were all deleted. Exactly one wins; the stream never
        regresses."""
        stores = [reopen() for _ in range(4)]
        for round_ in range(8):
            stream = kit.pid(f"fresh-{round_}")
            expected = 0
            if deleted_first:
                await kit.append(stream, 3)
                await stores[0].delete_events_to(stream, 3)
                expected = 3
            batches = [kit.records(stream, expected + 1, 2) for _ in stores]
            results = await asyncio.gather(
                *(s.append(stream, b, expected) for s, b in zip(stores, batches, strict=True)),
                # A stale writer that believes the stream is new must lose too.
                stores[1].append(stream, kit.records(stream, 1, 1), 0)
                if deleted_first
                else _none(),
                return_exceptions=True,
            )
            winners = [r for r in results[: len(stores)] if isinstance(r, list)]
            assert len(winners) == 1, results
            if deleted_first:
                assert isinstance(results[-1], ea.ConcurrencyError)
            assert await stores[2].highest_sequence_number(stream) == expected + 2
            assert sequences(await stores[3].read_stream(stream)) == [expected + 1, expected + 2]

    async def test_a_refused_append_to_a_new_stream_leaves_no_stream_behind(
        self, store: ea.Store, kit: Kit
    ) -> None:
        new = kit.pid("never-written")
        with pytest.raises(ea.ConcurrencyError, match="never-written"):
            await store.append(new, kit.records(new, 4, 1), 3)

        assert new not in await store.persistence_ids()
        assert await store.highest_sequence_number(new) == 0
        # ...and the stream can still be started properly.
        await store.append(new, kit.records(new, 1, 2), 0)
        assert new in await store.persistence_ids()
        assert await store.highest_sequence_number(new) == 2

    async def test_a_naive_timestamp_is_refused_and_fails_only_its_own_append(
        self, store: ea.Store, kit: Kit
    ) -> None:
        good, bad = kit.pid("good"), kit.pid("naive")
        naive = kit.records(bad, 1, 1)[0]
        naive = ea.EventRecord(
            naive.event_id, bad, naive.entity_type, naive.entity_id, 1, naive.event_type,
            naive.payload, datetime(2026, 1, 1),
        )  # fmt: skip
        results = await asyncio.gather(
            store.append(good, kit.records(good, 1, 1), 0),
            store.append(bad, [naive], 0),
            return_exceptions=True,
        )
        assert isinstance(results[0], list), results[0]
        assert sequences(results[0]) == [1]
        assert isinstance(results[1], ValueError), results[1]
        assert "timezone" in str(results[1])
        assert await store.highest_sequence_number(bad) == 0
