"""Following the global log: filters, the head position, and waiting for new events."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest

import eventactors as ea

from .base import OpenStore, StoreContractBase
from .kit import Kit


async def mixed_log(store: ea.Store, kit: Kit) -> list[ea.EventRecord]:
    """Nine events over two entity types, two event types and a few tags, in one known order."""
    written = []
    plan = [
        ("account", "a", "dep", ("vip",)),
        ("order", "o", "wd", ()),
        ("account", "b", "wd", ("eu", "vip")),
        ("order", "o", "dep", ("eu",)),
        ("account", "a", "dep", ()),
        ("audit", "x", "dep", ("vip",)),
        ("order", "p", "wd", ("us",)),
        ("account", "b", "dep", ()),
        ("audit", "x", "wd", ("eu",)),
    ]
    for entity_type, entity_id, kind, tags in plan:
        stream = kit.pid(entity_id, entity_type=entity_type)
        highest = await store.highest_sequence_number(stream)
        event = (
            kit.Deposited(account=entity_id, amount=1)
            if kind == "dep"
            else kit.Withdrawn(account=entity_id, amount=1)
        )
        record = kit.record(stream, highest + 1, event, tags=tags)
        await store.append(stream, [record], highest)
        written.append(record)
    return written


def ids(envelopes: list[ea.EventEnvelope]) -> list[str]:
    return [envelope.event_id for envelope in envelopes]


class LogFollowingContract(StoreContractBase):
    """Needs `EventStore` (read_all's filters, head_position, wait_for_events)."""

    @pytest.mark.parametrize(
        ("filters", "expected"),
        [
            ({"entity_types": ["account"]}, [0, 2, 4, 7]),
            ({"entity_types": ["order", "audit"]}, [1, 3, 5, 6, 8]),
            ({"event_types": ["Withdrawn"]}, [1, 2, 6, 8]),
            ({"tags": ["vip"]}, [0, 2, 5]),
            ({"tags": ["eu", "us"]}, [2, 3, 6, 8]),
            ({"entity_types": ["account"], "event_types": ["Deposited"]}, [0, 4, 7]),
            ({"entity_types": ["account"], "tags": ["eu"]}, [2]),
            ({"entity_types": ["nobody"]}, []),
        ],
    )
    async def test_read_all_filters(
        self, store: ea.Store, kit: Kit, filters: dict[str, Any], expected: list[int]
    ) -> None:
        written = await mixed_log(store, kit)
        selected = await store.read_all(**filters)
        assert ids(selected) == [written[i].event_id for i in expected]

    async def test_filtered_reads_page_by_position(self, store: ea.Store, kit: Kit) -> None:
        written = await mixed_log(store, kit)
        accounts = [written[i].event_id for i in (0, 2, 4, 7)]
        first = await store.read_all(limit=2, entity_types=["account"])
        rest = await store.read_all(first[-1].global_position, limit=10, entity_types=["account"])
        assert ids(first) + ids(rest) == accounts

    @pytest.mark.parametrize(
        "bad", [{"entity_types": "account"}, {"tags": []}, {"event_types": [1]}], ids=str
    )
    async def test_bad_filters_are_refused(self, store: ea.Store, bad: dict[str, Any]) -> None:
        with pytest.raises((TypeError, ValueError), match=r"entity_types|event_types|tags"):
            await store.read_all(**bad)

    async def test_head_position_is_the_highest_committed_position(
        self, store: ea.Store, kit: Kit
    ) -> None:
        assert await store.head_position() == 0
        appended = await kit.append(kit.pid("a"), 3)
        assert await store.head_position() == appended[-1].global_position

    async def test_wait_for_events_returns_at_once_for_events_already_there(
        self, store: ea.Store, kit: Kit
    ) -> None:
        await kit.append(kit.pid("a"), 2)
        started = time.monotonic()
        assert await store.wait_for_events(0, timeout=5)
        assert not await store.wait_for_events(await store.head_position(), timeout=0)
        assert time.monotonic() - started < 1

    async def test_wait_for_events_wakes_on_an_append(self, store: ea.Store, kit: Kit) -> None:
        head = await store.head_position()
        waiting = asyncio.create_task(store.wait_for_events(head, timeout=10))
        await asyncio.sleep(0.05)
        assert not waiting.done()
        started = time.monotonic()
        await kit.append(kit.pid("a"), 1)
        assert await asyncio.wait_for(waiting, 5)
        assert time.monotonic() - started < 1.5

    async def test_wait_for_events_times_out_when_nothing_comes(self, store: ea.Store) -> None:
        started = time.monotonic()
        assert not await store.wait_for_events(0, timeout=0.2)
        assert 0.15 < time.monotonic() - started < 2

    async def test_another_store_objects_append_wakes_a_waiter(
        self, reopen: OpenStore, kit: Kit
    ) -> None:
        first, second = reopen(), reopen()
        waiting = asyncio.create_task(first.wait_for_events(0, timeout=10))
        await asyncio.sleep(0.05)
        stream = kit.pid("a")
        await second.append(stream, [kit.record(stream, 1)], 0)
        assert await asyncio.wait_for(waiting, 5)  # NOTIFY, a shared object, or the poll
