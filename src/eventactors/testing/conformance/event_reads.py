"""The EventStore contract, reading: read_stream, read_all, persistence_ids, decoding."""

from __future__ import annotations

import asyncio

import pytest

import eventactors as ea

from ._envelopes import event_ids, positions, sequences, strictly_increasing
from .base import StoreContractBase
from .kit import Kit


class EventReadContract(StoreContractBase):
    """Needs `EventStore`."""

    # -- read_stream ----------------------------------------------------------------------------

    async def test_unknown_stream_is_empty_with_highest_zero(
        self, store: ea.Store, kit: Kit
    ) -> None:
        await kit.append(kit.pid("other"), 3)

        assert await store.read_stream(kit.pid("nobody")) == []
        assert await store.read_stream(kit.pid("nobody"), 1, 10, limit=5) == []
        assert await store.highest_sequence_number(kit.pid("nobody")) == 0

    async def test_read_stream_returns_the_whole_stream_in_order(
        self, store: ea.Store, kit: Kit
    ) -> None:
        first = await kit.append(kit.pid("a"), 4)
        await kit.append(kit.pid("b"), 2)
        second = await kit.append(kit.pid("a"), 3)

        read = await store.read_stream(kit.pid("a"))

        assert sequences(read) == [1, 2, 3, 4, 5, 6, 7]
        assert event_ids(read) == event_ids(first + second)
        assert {envelope.persistence_id for envelope in read} == {kit.pid("a")}

    @pytest.mark.parametrize(
        ("from_sequence", "to_sequence", "expected"),
        [
            (3, 7, [3, 4, 5, 6, 7]),
            (1, 1, [1]),
            (10, 10, [10]),
            (5, 5, [5]),
            (1, 3, [1, 2, 3]),
            (8, 50, [8, 9, 10]),
            (4, None, [4, 5, 6, 7, 8, 9, 10]),
            (10, None, [10]),
            (11, None, []),
            (11, 20, []),
        ],
    )
    async def test_read_stream_bounds_are_inclusive(
        self,
        store: ea.Store,
        kit: Kit,
        from_sequence: int,
        to_sequence: int | None,
        expected: list[int],
    ) -> None:
        appended = await kit.append(kit.pid("a"), 10)

        read = await store.read_stream(kit.pid("a"), from_sequence, to_sequence)

        assert sequences(read) == expected
        assert event_ids(read) == [appended[s - 1].event_id for s in expected]

    @pytest.mark.parametrize(("from_sequence", "to_sequence"), [(5, 4), (7, 3), (10, 1), (2, 1)])
    async def test_read_stream_from_after_to_is_empty(
        self, store: ea.Store, kit: Kit, from_sequence: int, to_sequence: int
    ) -> None:
        await kit.append(kit.pid("a"), 10)

        assert await store.read_stream(kit.pid("a"), from_sequence, to_sequence) == []
        assert await store.read_stream(kit.pid("a"), from_sequence, to_sequence, limit=5) == []

    @pytest.mark.parametrize(
        ("from_sequence", "to_sequence", "limit", "expected"),
        [
            (1, None, 0, []),
            (4, 8, 0, []),
            (1, None, 1, [1]),
            (6, None, 1, [6]),
            (6, 9, 1, [6]),
            (4, None, 3, [4, 5, 6]),
            (2, 8, 2, [2, 3]),
            (2, 4, 10, [2, 3, 4]),
            (1, None, 10, [1, 2, 3, 4, 5, 6, 7, 8, 9, 10]),
            (1, None, 100, [1, 2, 3, 4, 5, 6, 7, 8, 9, 10]),
            (11, None, 1, []),
        ],
    )
    async def test_read_stream_limit(
        self,
        store: ea.Store,
        kit: Kit,
        from_sequence: int,
        to_sequence: int | None,
        limit: int,
        expected: list[int],
    ) -> None:
        await kit.append(kit.pid("a"), 10)

        read = await store.read_stream(kit.pid("a"), from_sequence, to_sequence, limit=limit)

        assert sequences(read) == expected

    # -- read_all -------------------------------------------------------------------------------

    async def test_read_all_of_an_empty_store_is_empty(self, store: ea.Store) -> None:
        assert await store.read_all() == []
        assert await store.read_all(after_position=5, limit=10) == []

    async def test_read_all_is_in_global_order_across_streams(
        self, store: ea.Store, kit: Kit
    ) -> None:
        appended: list[ea.EventEnvelope] = []
        for name, count in [("a", 2), ("b", 1), ("a", 1), ("c", 3), ("b", 2), ("a", 1)]:
            appended += await kit.append(kit.pid(name), count)

        everything = await store.read_all()

        assert event_ids(everything) == event_ids(appended)
        assert positions(everything) == positions(appended)
        assert strictly_increasing(positions(everything))
        assert [e.persistence_id for e in everything] == [e.persistence_id for e in appended]

    async def test_read_all_after_position_is_exclusive(self, store: ea.Store, kit: Kit) -> None:
        appended = await kit.append(kit.pid("a"), 3)
        appended += await kit.append(kit.pid("b"), 3)

        for index, envelope in enumerate(appended):
            after = await store.read_all(after_position=envelope.global_position)
            assert event_ids(after) == event_ids(appended[index + 1 :])
        assert event_ids(await store.read_all(after_position=0)) == event_ids(appended)
        assert await store.read_all(after_position=appended[-1].global_position) == []

    @pytest.mark.parametrize("limit", [0, 1, 3, 9, 10, 25])
    async def test_read_all_respects_limit(self, store: ea.Store, kit: Kit, limit: int) -> None:
        appended = await kit.append(kit.pid("a"), 4)
        appended += await kit.append(kit.pid("b"), 6)

        read = await store.read_all(limit=limit)

        assert event_ids(read) == event_ids(appended[:limit])
        middle = await store.read_all(after_position=appended[2].global_position, limit=limit)
        assert event_ids(middle) == event_ids(appended[3 : 3 + limit])

    @pytest.mark.parametrize("page", [1, 7, 1000])
    async def test_paging_through_read_all_sees_every_event_once(
        self, store: ea.Store, kit: Kit, page: int
    ) -> None:
        appended: list[ea.EventEnvelope] = []
        for round_ in range(5):
            for name in ("a", "b", "c"):
                appended += await kit.append(kit.pid(name), round_ + 1)

        pages: list[list[ea.EventEnvelope]] = []
        after = 0
        while batch := await store.read_all(after_position=after, limit=page):
            assert len(batch) <= page
            assert batch[0].global_position > after
            pages.append(batch)
            after = batch[-1].global_position
        seen = [envelope for batch in pages for envelope in batch]

        assert len(appended) == 45
        assert event_ids(seen) == event_ids(appended)
        assert len(set(event_ids(seen))) == len(seen)
        assert all(len(batch) == page for batch in pages[:-1])

    async def test_a_follower_of_the_log_misses_nothing_under_concurrent_writers(
        self, store: ea.Store, kit: Kit
    ) -> None:
        streams, per_stream = 10, 10
        writing = True
        seen: list[ea.EventEnvelope] = []

        async def write(name: str) -> list[ea.EventEnvelope]:
            written: list[ea.EventEnvelope] = []
            for _ in range(per_stream):
                written += await kit.append(kit.pid(name), 1)
            return written

        async def follow() -> None:
            after = 0
            while True:
                done = not writing
                batch = await store.read_all(after_position=after, limit=7)
                seen.extend(batch)
                if batch:
                    assert batch[0].global_position > after
                    after = batch[-1].global_position
                elif done:
                    return
                else:
                    await asyncio.sleep(0)  # a yield, not a wait: lets the writers run

        follower = asyncio.create_task(follow())
        written = await asyncio.gather(*(write(f"s{index}") for index in range(streams)))
        writing = False
        await follower

        appended = [envelope for batch in written for envelope in batch]
        assert len(seen) == streams * per_stream
        assert strictly_increasing(positions(seen))
        assert sorted(event_ids(seen)) == sorted(event_ids(appended))

    # -- persistence_ids ------------------------------------------------------------------------

    async def test_persistence_ids_lists_every_stream(self, store: ea.Store, kit: Kit) -> None:
        assert await store.persistence_ids() == []
        names = ["a", "b", "c|with-bar", "d"]
        for name in names:
            await kit.append(kit.pid(name), 2)
        await kit.append(kit.pid("a"), 3)
        await kit.append(kit.pid("x", entity_type="order"), 1)

        listed = await store.persistence_ids()

        expected = [kit.pid(name) for name in names] + [kit.pid("x", entity_type="order")]
        assert sorted(listed) == sorted(expected)
        assert len(listed) == len(expected)

    # -- decoding -------------------------------------------------------------------------------

    async def test_an_unregistered_event_type_fails_on_event_access_only(
        self, store: ea.Store, kit: Kit
    ) -> None:
        stream = kit.pid("a")
        good = kit.Deposited(account="a", amount=1)
        records = [
            kit.record(stream, 1, good),
            kit.record(stream, 2, kit.NeverRegistered(value=7), event_type="NeverRegistered"),
        ]
        await store.append(stream, records, 0)

        read = await store.read_stream(stream)
        from_log = await store.read_all()

        assert sequences(read) == [1, 2]
        assert event_ids(from_log) == event_ids(records)
        assert read[0].event == good
        for envelope in (read[1], from_log[1]):
            assert envelope.event_type == "NeverRegistered"
            assert kit.same_payload(envelope.payload, records[1].payload)
            for _ in range(2):  # a failed decode is not cached as a value
                with pytest.raises(ea.SerializationError) as caught:
                    _ = envelope.event
                assert "NeverRegistered" in str(caught.value)
                assert stream in str(caught.value)
