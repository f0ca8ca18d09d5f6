"""`EventStore.sequence_at`: how far a stream had got at a moment, by its events' timestamps."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest

import eventactors as ea

from .base import OpenStore, StoreContractBase
from .kit import Kit

T0 = datetime(2026, 5, 1, 12, 0, tzinfo=UTC)


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


async def write_timed(store: ea.Store, kit: Kit, stream: str, seconds: list[float]) -> None:
    """Appends one event per entry of `seconds`, timestamped that long after T0."""
    highest = await store.highest_sequence_number(stream)
    records = [
        kit.record(stream, highest + index + 1, timestamp=at(offset))
        for index, offset in enumerate(seconds)
    ]
    await store.append(stream, records, highest)


class SequenceAtContract(StoreContractBase):
    """Needs `EventStore` (sequence_at)."""

    async def test_an_unknown_stream_is_at_zero(self, store: ea.Store, kit: Kit) -> None:
        await write_timed(store, kit, kit.pid("other"), [10])

        assert await store.sequence_at(kit.pid("nobody"), at(100)) == 0

    @pytest.mark.parametrize(
        ("seconds", "expected"),
        [
            (-1000, 0),  # before the first event
            (9.999999, 0),
            (10, 1),  # an event timestamped exactly then had happened
            (15, 1),  # between events
            (20, 2),
            (29, 2),
            (30, 3),
            (31, 3),  # after the last
            (10**6, 3),
        ],
    )
    async def test_the_events_up_to_the_moment_count(
        self, store: ea.Store, kit: Kit, seconds: float, expected: int
    ) -> None:
        stream = kit.pid("a")
        await write_timed(store, kit, stream, [10, 20])
        await write_timed(store, kit, stream, [30])

        assert await store.sequence_at(stream, at(seconds)) == expected

    async def test_any_timezone_names_the_same_moment(self, store: ea.Store, kit: Kit) -> None:
        stream = kit.pid("a")
        await write_timed(store, kit, stream, [10, 20, 30])
        plus_two = timezone(timedelta(hours=2))

        assert await store.sequence_at(stream, at(25).astimezone(plus_two)) == 2
        assert await store.sequence_at(stream, at(9).astimezone(plus_two)) == 0

    async def test_the_first_event_after_the_moment_ends_the_count(
        self, store: ea.Store, kit: Kit
    ) -> None:
        # Clocks are not monotonic: event 2 is stamped after event 3. At 25s, events 1 and 3
        # are in the past, but the stream had only got as far as 1 before an event from the
        # future, so the answer is 1, never 3.
        stream = kit.pid("a")
        await write_timed(store, kit, stream, [10, 30, 20, 40])

        assert await store.sequence_at(stream, at(25)) == 1
        assert await store.sequence_at(stream, at(35)) == 3
        assert await store.sequence_at(stream, at(45)) == 4

    async def test_streams_are_independent(self, store: ea.Store, kit: Kit) -> None:
        a, b = kit.pid("a"), kit.pid("b")
        await write_timed(store, kit, a, [10, 20, 30])
        await write_timed(store, kit, b, [5, 25])

        assert await store.sequence_at(a, at(22)) == 2
        assert await store.sequence_at(b, at(22)) == 1
        assert await store.sequence_at(b, at(2)) == 0

    async def test_after_deleting_events_only_the_stored_ones_count(
        self, store: ea.Store, kit: Kit
    ) -> None:
        stream = kit.pid("a")
        await write_timed(store, kit, stream, [10, 20, 30, 40])

        await store.delete_events_to(stream, 2)

        assert await store.sequence_at(stream, at(35)) == 3
        assert await store.sequence_at(stream, at(50)) == 4
        assert await store.sequence_at(stream, at(25)) == 2
        # A moment before the deleted events is left open: their timestamps are gone (today the
        # backends answer 2, see the xfail in tests/test_time_travel.py).

    async def test_after_deleting_every_event_the_stream_is_at_its_highest(
        self, store: ea.Store, kit: Kit
    ) -> None:
        stream = kit.pid("a")
        await write_timed(store, kit, stream, [10, 20, 30])

        await store.delete_events_to(stream, 3)

        assert await store.sequence_at(stream, at(50)) == 3
        await write_timed(store, kit, stream, [60])
        assert await store.sequence_at(stream, at(50)) == 3
        assert await store.sequence_at(stream, at(60)) == 4

    @pytest.mark.parametrize("moment", [datetime(2026, 5, 1, 12, 0), "2026-05-01T12:00:00+00:00"])
    async def test_a_moment_without_a_timezone_is_refused(
        self, store: ea.Store, kit: Kit, moment: Any
    ) -> None:
        stream = kit.pid("a")
        await write_timed(store, kit, stream, [10])

        with pytest.raises(ValueError, match="timezone"):
            await store.sequence_at(stream, moment)

    async def test_the_answer_survives_close(
        self, store: ea.Store, reopen: OpenStore, kit: Kit
    ) -> None:
        stream = kit.pid("a")
        await write_timed(store, kit, stream, [10, 20, 30])
        await store.close()

        assert await reopen().sequence_at(stream, at(25)) == 2
        assert await store.sequence_at(stream, at(25)) == 2
