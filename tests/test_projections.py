"""Projections: every event once, in global order, after a stored offset; failure policies,
filters, rebuilds and exactly-once transactional handlers.

Behaviour that touches the store (offsets, filters, transactions) runs on MemoryStore and on
both durable stores; the rest on MemoryStore. Nothing sleeps to let things happen: tests wait
on conditions with deadlines.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import sqlite3
from collections import Counter
from collections.abc import Callable, Iterable
from typing import Any

import asyncpg
import msgspec
import pytest
from behaviors_for_tests import (
    Add,
    Envelopes,
    OpenStore,
    Tally,
    add_events,
    keys,
    memory,
    read_log,
    tally_behavior,
)
from eventactors_examples.bank.domain import AccountBehavior, Deposit, Open, Withdraw
from postgres_support import DSN
from waits import wait_until

import eventactors as ea

pytestmark = pytest.mark.timeout(60)

RUNNING = ea.ProjectionState.RUNNING
STOPPED = ea.ProjectionState.STOPPED
FAILED = ea.ProjectionState.FAILED


# -- a behavior with tags -----------------------------------------------------------------


class Note(msgspec.Struct, frozen=True):
    n: int


class Noted(msgspec.Struct, frozen=True):
    n: int


class TaggedBehavior(ea.EventSourcedBehavior[Tally]):
    """Tags each event "even" or "odd", and also "fives" when its number is a multiple of 5."""

    events = (Noted,)

    def initial_state(self) -> Tally:
        return Tally()

    def handle_command(self, state: Tally, command: Any) -> Noted:
        return Noted(command.n)

    def handle_event(self, state: Tally, event: Any) -> Tally:
        return Tally((*state.items, event.n), state.total + event.n)

    def tags_for(self, event: Any) -> Iterable[str]:
        yield "even" if event.n % 2 == 0 else "odd"
        if event.n % 5 == 0:
            yield "fives"


# -- helpers ------------------------------------------------------------------------------


def new_engine(store: ea.Store) -> ea.Engine:
    engine = ea.Engine(store)
    engine.register("tally", tally_behavior())
    engine.register("account", AccountBehavior)
    engine.register("tagged", TaggedBehavior)
    return engine


def numbers(envelopes: Iterable[ea.EventEnvelope]) -> list[int]:
    return [envelope.event.n for envelope in envelopes]


def flatten(pages: Iterable[Envelopes]) -> Envelopes:
    return [envelope for page in pages for envelope in page]


async def wait_for_state(
    engine: ea.Engine, name: str, state: ea.ProjectionState, timeout: float = 5.0
) -> ea.ProjectionStatus:
    await wait_until(lambda: engine.projection_status(name).state is state, timeout)
    return engine.projection_status(name)


# -- at-least-once basics -----------------------------------------------------------------


async def check_every_event_once_in_global_order(open_store: OpenStore) -> None:
    store = open_store()
    engine = new_engine(store)
    early: Envelopes = []
    late: Envelopes = []
    pages: list[Envelopes] = []

    async def on_late(envelope: ea.EventEnvelope) -> None:
        await asyncio.sleep(0)
        late.append(envelope)

    await engine.add_projection("early", early.append)
    await engine.add_projection("pages", pages.append, batched=True, batch_size=6)
    async with engine:
        await add_events(engine, 20)
        await engine.add_projection("late", on_late, batch_size=9)
        await add_events(engine, 25, start=20)
        log = await read_log(store)
        assert len(log) == 45
        head = log[-1].global_position
        for name in ("early", "late", "pages"):
            status = await engine.wait_for_projection(name, timeout=10)
            assert (status.state, status.position, status.lag) == (RUNNING, head, 0), name
            assert status.events_handled == 45, name
            assert await store.get_offset(name) == head, name
    assert keys(early) == keys(log)
    assert keys(late) == keys(log)
    assert all(1 <= len(page) <= 6 for page in pages)
    assert keys(flatten(pages)) == keys(log)


async def test_every_event_once_in_global_order_on_memory():
    await check_every_event_once_in_global_order(memory())


async def test_every_event_once_in_global_order_on_durable_stores(open_durable_store):
    await check_every_event_once_in_global_order(open_durable_store)


async def test_a_projection_can_keep_its_offset_in_another_offset_store():
    store, offsets = ea.MemoryStore(), ea.MemoryStore()
    engine = new_engine(store)
    seen: Envelopes = []
    async with engine:
        await add_events(engine, 5)
        await engine.add_projection("p", seen.append, offset_store=offsets)
        status = await engine.wait_for_projection("p", timeout=5)
    assert len(seen) == 5
    assert await offsets.get_offset("p") == status.position == await store.head_position()
    assert await store.get_offset("p") is None


# -- catch-up, then live ------------------------------------------------------------------


async def check_catch_up_then_live(open_store: OpenStore) -> None:
    store = open_store()
    engine = new_engine(store)
    seen: Envelopes = []
    paused, resume = asyncio.Event(), asyncio.Event()

    async def handler(envelope: ea.EventEnvelope) -> None:
        seen.append(envelope)
        if len(seen) == 10:  # mid-way through the catch-up, in the middle of a page
            paused.set()
            await resume.wait()
        await asyncio.sleep(0)

    async with engine:
        await add_events(engine, 60)
        await engine.add_projection("p", handler, batch_size=7)
        await wait_until(paused.is_set)
        # live writes land while the projection is still catching up, and go on after it resumes
        await add_events(engine, 30, start=60, entities=("d", "e", "f"))
        resume.set()
        await add_events(engine, 30, start=90, entities=("d", "e", "f"))
        status = await engine.wait_for_projection("p", timeout=20)
        log = await read_log(store)
    assert len(log) == 120
    assert keys(seen) == keys(log)
    assert (status.events_handled, status.lag) == (120, 0)


async def test_catch_up_then_live_without_gap_or_duplicate_on_memory():
    await check_catch_up_then_live(memory())


async def test_catch_up_then_live_without_gap_or_duplicate_on_durable_stores(open_durable_store):
    await check_catch_up_then_live(open_durable_store)


# -- graceful stop and resume -------------------------------------------------------------


async def check_stop_mid_catch_up_and_resume(open_store: OpenStore) -> None:
    store = open_store()
    engine = new_engine(store)
    seen: Envelopes = []

    async def slow(envelope: ea.EventEnvelope) -> None:
        seen.append(envelope)
        await asyncio.sleep(0.002)

    async with engine:
        await add_events(engine, 60)
        await engine.add_projection("p", slow, batch_size=5)
        await wait_until(lambda: len(seen) >= 12)
        await engine.remove_projection("p")
        stopped_at = len(seen)
        assert 12 <= stopped_at < 60  # it stopped in the middle of the catch-up
        assert stopped_at % 5 == 0  # after finishing the page in hand
        assert await store.get_offset("p") == seen[-1].global_position
        with pytest.raises(KeyError, match="'p'"):
            engine.projection_status("p")
        await add_events(engine, 10, start=60)
        # from_start=True (the default) does not restart from 0: an offset is stored
        await engine.add_projection("p", seen.append, batch_size=5)
        status = await engine.wait_for_projection("p", timeout=10)
        log = await read_log(store)
    assert keys(seen) == keys(log)
    assert status.events_handled == 70 - stopped_at


async def test_remove_mid_catch_up_then_add_again_resumes_on_memory():
    await check_stop_mid_catch_up_and_resume(memory())


async def test_remove_mid_catch_up_then_add_again_resumes_on_durable_stores(open_durable_store):
    await check_stop_mid_catch_up_and_resume(open_durable_store)


async def check_from_start_false_starts_at_the_head(open_store: OpenStore) -> None:
    store = open_store()
    engine = new_engine(store)
    tail: Envelopes = []
    async with engine:
        await add_events(engine, 10)
        await engine.add_projection("tail", tail.append, from_start=False)
        await add_events(engine, 5, start=10)  # at once: the start is fixed by the call
        status = await engine.wait_for_projection("tail", timeout=10)
        log = await read_log(store)
        assert await store.get_offset("tail") == log[-1].global_position
    assert keys(tail) == keys(log[10:])
    assert status.events_handled == 5


async def test_from_start_false_starts_at_the_head_on_memory():
    await check_from_start_false_starts_at_the_head(memory())


async def test_from_start_false_starts_at_the_head_on_durable_stores(open_durable_store):
    await check_from_start_false_starts_at_the_head(open_durable_store)


async def check_restart_resumes_from_the_offset(open_store: OpenStore) -> None:
    first: Envelopes = []
    engine = new_engine(open_store())
    await engine.add_projection("p", first.append, batch_size=4)
    async with engine:
        await add_events(engine, 10)
        await engine.wait_for_projection("p", timeout=10)
    assert engine.projection_status("p").state is STOPPED

    second: Envelopes = []
    store = open_store()
    engine = new_engine(store)
    await engine.add_projection("p", second.append, batch_size=4)
    async with engine:
        await add_events(engine, 7, start=10)
        status = await engine.wait_for_projection("p", timeout=10)
        log = await read_log(store)
        assert await store.get_offset("p") == log[-1].global_position
    assert keys(first) == keys(log[:10])
    assert keys(second) == keys(log[10:])
    assert status.events_handled == 7


async def test_an_engine_restart_resumes_from_the_offset_on_memory():
    await check_restart_resumes_from_the_offset(memory())


async def test_an_engine_restart_resumes_from_the_offset_on_durable_stores(open_durable_store):
    await check_restart_resumes_from_the_offset(open_durable_store)


async def test_wait_for_projection_returns_at_once_after_a_restart_with_nothing_new():
    """The runner signals the offset it loads: a wait called before that does not hang."""
    store = ea.MemoryStore()
    engine = new_engine(store)
    await engine.add_projection("p", lambda envelope: None)
    async with engine:
        await add_events(engine, 5)
        await engine.wait_for_projection("p", timeout=5)
    engine = new_engine(store)
    await engine.add_projection("p", lambda envelope: None)
    async with engine:
        status = await engine.wait_for_projection("p", timeout=0.5)
    assert status.position == await store.head_position()


async def test_wait_for_projection_returns_at_once_for_a_new_projection_started_at_the_head():
    """A projection pinned at the head has nothing to wait for."""
    store = ea.MemoryStore()
    engine = new_engine(store)
    async with engine:
        await add_events(engine, 5)
        await engine.add_projection("tail", lambda envelope: None, from_start=False)
        status = await engine.wait_for_projection("tail", timeout=0.5)
    assert status.position == await store.head_position()


async def test_a_projection_started_at_the_head_sees_events_sent_after_add_projection(
    monkeypatch,
):
    """from_start=False means from the add_projection call, however late the runner reads the
    store: the start may not be read after an event sent meanwhile."""
    store = ea.MemoryStore()
    engine = new_engine(store)
    store_answers = asyncio.Event()
    real_get_offset = store.get_offset
    test_task = asyncio.current_task()

    async def slow_get_offset(projection: str) -> int | None:
        if asyncio.current_task() is not test_task:  # the runner's task: slow to answer
            await store_answers.wait()
        return await real_get_offset(projection)

    tail: Envelopes = []
    async with engine:
        await add_events(engine, 3)
        monkeypatch.setattr(store, "get_offset", slow_get_offset)
        await engine.add_projection("tail", tail.append, from_start=False)
        await engine.send("tally", "a", Add(99))  # after add_projection returned
        store_answers.set()
        await wait_until(lambda: numbers(tail) == [99], timeout=1.0)


async def test_cancelling_remove_projection_cancels_the_caller():
    """Stopping a projection must not swallow the cancellation of its caller."""
    engine = new_engine(ea.MemoryStore())
    entered, gate, removal_started = asyncio.Event(), asyncio.Event(), asyncio.Event()

    async def stuck(envelope: ea.EventEnvelope) -> None:
        entered.set()
        await gate.wait()

    async def remove() -> None:
        removal_started.set()
        await engine.remove_projection("p")

    async with engine:
        await add_events(engine, 1)
        await engine.add_projection("p", stuck)
        await wait_until(entered.is_set)
        removing = asyncio.create_task(remove())
        await removal_started.wait()  # `remove` now awaits the runner inside stop()
        removing.cancel()
        done, _ = await asyncio.wait({removing}, timeout=2)
        gate.set()
        assert removing in done
        assert removing.cancelled()


async def test_stopping_the_engine_does_not_wait_for_the_store_to_come_back(monkeypatch):
    """A runner retrying a store that is down holds no page to finish: a stop ends it."""
    store = ea.MemoryStore()
    engine = new_engine(store)
    real_read_all = store.read_all
    broken = True
    failures = 0

    async def down(*args: Any, **kwargs: Any) -> Envelopes:
        nonlocal failures
        if broken:
            failures += 1
            raise ea.StoreUnavailable("injected outage")
        return await real_read_all(*args, **kwargs)

    await engine.start()
    await add_events(engine, 3)
    monkeypatch.setattr(store, "read_all", down)
    await engine.add_projection("p", lambda envelope: None)
    await wait_until(lambda: failures >= 2)
    stopping = asyncio.create_task(engine.stop(drain_timeout=0.2))
    done, _ = await asyncio.wait({stopping}, timeout=0.5)
    broken = False  # the store comes back, so that the stop finishes either way
    await asyncio.wait_for(stopping, 5)
    assert stopping in done, "Engine.stop() waited for the store to come back"
    assert engine.projection_status("p").state is STOPPED


async def test_stopping_while_a_projection_starts_listening_leaks_no_connection(
    pg_schema, monkeypatch
):
    """A wait_for_events cancelled while it opens the LISTEN connection closes it."""
    engine = new_engine(ea.PostgresStore(DSN, schema=pg_schema))
    opened: list[asyncpg.Connection] = []

    async def slow_add_listener(self: asyncpg.Connection, channel: str, callback: Any) -> None:
        opened.append(self)
        await asyncio.Event().wait()  # LISTEN is slow to be answered

    monkeypatch.setattr(asyncpg.Connection, "add_listener", slow_add_listener)
    await engine.add_projection("p", lambda envelope: None)
    await engine.start()
    try:
        await wait_until(lambda: bool(opened))  # nothing to do: the runner starts listening
    finally:
        await engine.stop()
    try:
        assert opened[0].is_closed()
    finally:
        for connection in opened:
            connection.terminate()  # no ResourceWarning for the tests that come after


# -- filters ------------------------------------------------------------------------------

FILTERS: dict[str, dict[str, list[str]]] = {
    "accounts": {"entity_types": ["account"]},
    "money": {"event_types": ["Deposited", "Withdrawn"]},
    "even": {"tags": ["even"]},
    "even_or_fives": {"tags": ["even", "fives"]},
    "tagged_fives": {"entity_types": ["tagged"], "tags": ["fives"]},
    "tally_deposits": {"entity_types": ["tally"], "event_types": ["Deposited"]},
    "nobody": {"entity_types": ["nobody"]},
}


def selects(
    envelope: ea.EventEnvelope,
    entity_types: list[str] | None = None,
    event_types: list[str] | None = None,
    tags: list[str] | None = None,
) -> bool:
    return (
        (entity_types is None or envelope.entity_type in entity_types)
        and (event_types is None or envelope.event_type in event_types)
        and (tags is None or any(tag in envelope.tags for tag in tags))
    )


async def write_mixed_log(engine: ea.Engine, account: str, numbers: range) -> None:
    """Accounts, tagged notes and tallies, interleaved; it ends with a tally, which most of the
    filters ignore."""
    await engine.send("account", account, Open(account))
    for n in numbers:
        await engine.send("tagged", f"t{n % 2}", Note(n))
        if n % 3 == 0:
            await engine.send("account", account, Deposit(n + 1))
        await engine.send("tally", "a", Add(n))
    await engine.send("account", account, Withdraw(1))
    await engine.send("tally", "a", Add(99))


async def check_filters(open_store: OpenStore) -> None:
    store = open_store()
    engine = new_engine(store)
    seen: dict[str, Envelopes] = {name: [] for name in FILTERS}
    async with engine:
        await write_mixed_log(engine, "x", range(12))
        for name, selection in FILTERS.items():
            await engine.add_projection(name, seen[name].append, batch_size=3, **selection)
        await write_mixed_log(engine, "y", range(12, 20))  # live
        log = await read_log(store)
        head = log[-1].global_position
        for name, selection in FILTERS.items():
            status = await engine.wait_for_projection(name, timeout=10)
            expected = [envelope for envelope in log if selects(envelope, **selection)]
            assert keys(seen[name]) == keys(expected), name
            assert keys(await store.read_all(0, 1000, **selection)) == keys(expected), name
            assert (status.position, status.head, status.lag) == (head, head, 0), name
            assert status.events_handled == len(expected), name
            assert await store.get_offset(name) == head, name  # even when nothing matched
    notes = [envelope for envelope in log if envelope.entity_type == "tagged"]
    assert [envelope.tags for envelope in notes[:3]] == [("even", "fives"), ("odd",), ("even",)]
    assert all(seen[name] for name in FILTERS if name not in ("tally_deposits", "nobody"))
    assert numbers(seen["tagged_fives"]) == [0, 5, 10, 15]
    assert all(n % 2 == 0 or n % 5 == 0 for n in numbers(seen["even_or_fives"]))


async def test_filters_on_memory():
    await check_filters(memory())


async def test_filters_on_durable_stores(open_durable_store):
    await check_filters(open_durable_store)


# -- failure policies ---------------------------------------------------------------------


async def check_fail_policy(open_store: OpenStore, batch_size: int) -> None:
    store = open_store()
    engine = new_engine(store)
    seen: Envelopes = []

    def handler(envelope: ea.EventEnvelope) -> None:
        if envelope.event.n == 7:
            raise ValueError("boom on seven")
        seen.append(envelope)

    async with engine:
        await add_events(engine, 12, start=1, entities=("a",))
        log = await read_log(store)
        poison, last_good = log[6], log[5]
        await engine.add_projection("p", handler, batch_size=batch_size)
        status = await wait_for_state(engine, "p", FAILED)
        assert status.last_error is not None
        assert "ValueError: boom on seven" in status.last_error
        assert f"global position {poison.global_position}" in status.last_error
        assert not await engine.is_projection_running("p")
        assert (status.position, status.events_handled) == (last_good.global_position, 6)
        assert await store.get_offset("p") == last_good.global_position
        assert keys(seen) == keys(log[:6])
        # waiting for a failed projection returns at once, with the failure
        assert (await engine.wait_for_projection("p", timeout=5)).state is FAILED
        # fixed and added again, it resumes right after the last good event
        await engine.remove_projection("p")
        resumed: Envelopes = []
        await engine.add_projection("p", resumed.append, batch_size=batch_size)
        await engine.wait_for_projection("p", timeout=10)
    assert keys(resumed) == keys(log[6:])


@pytest.mark.parametrize("batch_size", [3, 4, 100])  # poison first in its page, mid-page
async def test_fail_policy_stops_at_the_failing_event_on_memory(batch_size):
    await check_fail_policy(memory(), batch_size)


async def test_fail_policy_stops_at_the_failing_event_on_durable_stores(open_durable_store):
    await check_fail_policy(open_durable_store, 4)


async def test_retry_recovers_when_the_handler_succeeds_in_time():
    store = ea.MemoryStore()
    engine = new_engine(store)
    seen: Envelopes = []
    attempts: Counter[int] = Counter()
    loop = asyncio.get_running_loop()
    tried_at: list[float] = []

    def handler(envelope: ea.EventEnvelope) -> None:
        n = envelope.event.n
        attempts[n] += 1
        if n == 5:
            tried_at.append(loop.time())
            if attempts[n] <= 3:
                raise RuntimeError("flaky")
        seen.append(envelope)

    async with engine:
        await add_events(engine, 10, start=1, entities=("a",))
        await engine.add_projection("p", handler, policy=ea.retry(3, backoff=0.01))
        status = await engine.wait_for_projection("p", timeout=5)
        log = await read_log(store)
    assert status.state is RUNNING
    assert keys(seen) == keys(log)
    assert attempts == Counter({n: 4 if n == 5 else 1 for n in range(1, 11)})
    assert status.events_handled == 10
    gaps = [later - earlier for earlier, later in itertools.pairwise(tried_at)]
    assert all(gap >= 0.9 * wanted for gap, wanted in zip(gaps, (0.01, 0.02, 0.04), strict=True))


async def test_retry_exhausted_fails_the_projection():
    store = ea.MemoryStore()
    engine = new_engine(store)
    attempts: Counter[int] = Counter()

    def handler(envelope: ea.EventEnvelope) -> None:
        attempts[envelope.event.n] += 1
        if envelope.event.n == 5:
            raise RuntimeError("always")

    async with engine:
        await add_events(engine, 10, start=1, entities=("a",))
        log = await read_log(store)
        await engine.add_projection("p", handler, policy=ea.retry(2, backoff=0.001))
        status = await wait_for_state(engine, "p", FAILED)
        assert await store.get_offset("p") == log[3].global_position == status.position
    assert attempts[5] == 3
    assert max(attempts) == 5  # nothing after the failing event was handled
    assert status.last_error is not None and "RuntimeError: always" in status.last_error


@pytest.mark.parametrize("asynchronous", [False, True], ids=["sync", "async"])
async def test_retry_then_skip_dead_letters_exactly_the_poison_events(asynchronous):
    store = ea.MemoryStore()
    engine = new_engine(store)
    seen: Envelopes = []
    dead: list[tuple[ea.EventEnvelope, BaseException]] = []
    attempts: Counter[int] = Counter()

    def dead_letter(envelope: ea.EventEnvelope, error: BaseException) -> None:
        dead.append((envelope, error))

    async def dead_letter_async(envelope: ea.EventEnvelope, error: BaseException) -> None:
        await asyncio.sleep(0)
        dead.append((envelope, error))

    def handler(envelope: ea.EventEnvelope) -> None:
        attempts[envelope.event.n] += 1
        if envelope.event.n in (3, 8):
            raise ValueError(f"poison {envelope.event.n}")
        seen.append(envelope)

    policy = ea.retry_then_skip(
        1, backoff=0.001, dead_letter=dead_letter_async if asynchronous else dead_letter
    )
    async with engine:
        await add_events(engine, 10, start=1, entities=("a",))
        await engine.add_projection("p", handler, policy=policy, batch_size=4)
        status = await engine.wait_for_projection("p", timeout=5)
        log = await read_log(store)
        assert status.state is RUNNING and await engine.is_projection_running("p")
        assert await store.get_offset("p") == log[-1].global_position
        # it carries on with what comes next
        await add_events(engine, 1, start=11, entities=("a",))
        status = await engine.wait_for_projection("p", timeout=5)
    assert numbers(seen) == [1, 2, 4, 5, 6, 7, 9, 10, 11]
    assert keys(seen[:8]) == keys(envelope for envelope in log if envelope.event.n not in (3, 8))
    assert keys(envelope for envelope, _ in dead) == keys([log[2], log[7]])
    assert [type(error) for _, error in dead] == [ValueError, ValueError]
    assert [str(error) for _, error in dead] == ["poison 3", "poison 8"]
    assert attempts[3] == attempts[8] == 2
    assert status.events_handled == 9


async def test_a_skipped_page_of_a_batched_handler_dead_letters_each_envelope():
    store = ea.MemoryStore()
    engine = new_engine(store)
    pages: list[Envelopes] = []
    dead: list[tuple[ea.EventEnvelope, BaseException]] = []

    def handler(envelopes: Envelopes) -> None:
        if 6 in numbers(envelopes):
            raise ValueError("bad page")
        pages.append(envelopes)

    def dead_letter(envelope: ea.EventEnvelope, error: BaseException) -> None:
        dead.append((envelope, error))

    policy = ea.retry_then_skip(0, backoff=0, dead_letter=dead_letter)
    async with engine:
        await add_events(engine, 12, start=1, entities=("a",))
        await engine.add_projection("p", handler, batched=True, batch_size=4, policy=policy)
        status = await engine.wait_for_projection("p", timeout=5)
        assert await store.get_offset("p") == await store.head_position()
    assert [numbers(page) for page in pages] == [[1, 2, 3, 4], [9, 10, 11, 12]]
    assert numbers(envelope for envelope, _ in dead) == [5, 6, 7, 8]
    assert {str(error) for _, error in dead} == {"bad page"}
    assert (status.state, status.events_handled, status.lag) == (RUNNING, 8, 0)


async def test_a_handler_raising_store_unavailable_is_retried_even_under_fail():
    store = ea.MemoryStore()
    engine = new_engine(store)
    seen: Envelopes = []
    failures = 0

    def handler(envelope: ea.EventEnvelope) -> None:
        nonlocal failures
        if envelope.event.n == 2 and failures < 2:
            failures += 1
            raise ea.StoreUnavailable("read model down")
        seen.append(envelope)

    async with engine:
        await add_events(engine, 4, start=1, entities=("a",))
        await engine.add_projection("p", handler)
        status = await engine.wait_for_projection("p", timeout=5)
    assert numbers(seen) == [1, 2, 3, 4]
    assert failures == 2
    assert status.state is RUNNING


# -- store errors -------------------------------------------------------------------------


async def check_store_errors_are_retried(open_store: OpenStore, monkeypatch) -> None:
    store = open_store()
    engine = new_engine(store)
    seen: Envelopes = []
    failures: Counter[str] = Counter()
    broken = True
    real_read_all, real_save_offset = store.read_all, store.save_offset

    async def flaky_read_all(*args: Any, **kwargs: Any) -> Envelopes:
        if broken:
            failures["read_all"] += 1
            raise ea.StoreUnavailable("injected outage")
        return await real_read_all(*args, **kwargs)

    async def flaky_save_offset(projection: str, position: int) -> None:
        if failures["save_offset"] < 2:
            failures["save_offset"] += 1
            raise ea.StoreUnavailable("offsets down")
        await real_save_offset(projection, position)

    async with engine:
        await add_events(engine, 30)
        monkeypatch.setattr(store, "read_all", flaky_read_all)
        monkeypatch.setattr(store, "save_offset", flaky_save_offset)
        await engine.add_projection("p", seen.append, batch_size=7)
        await wait_until(lambda: failures["read_all"] >= 3)
        status = engine.projection_status("p")
        assert status.state is RUNNING and await engine.is_projection_running("p")
        assert status.last_error is not None
        assert "StoreUnavailable" in status.last_error and "injected outage" in status.last_error
        assert (seen, status.position) == ([], 0)
        await add_events(engine, 5, start=30)  # commands go on meanwhile
        broken = False
        status = await engine.wait_for_projection("p", timeout=10)
        log = await read_log(store)
        assert await store.get_offset("p") == log[-1].global_position
    assert keys(seen) == keys(log)  # a failed offset commit is retried, not the page
    assert failures["save_offset"] == 2
    assert (status.state, status.events_handled) == (RUNNING, 35)


async def test_store_errors_are_retried_and_never_stop_a_projection_on_memory(monkeypatch):
    await check_store_errors_are_retried(memory(), monkeypatch)


async def test_store_errors_are_retried_and_never_stop_a_projection_on_durable_stores(
    open_durable_store, monkeypatch
):
    await check_store_errors_are_retried(open_durable_store, monkeypatch)


# -- several projections ------------------------------------------------------------------


async def check_projections_are_independent(open_store: OpenStore) -> None:
    store = open_store()
    engine = new_engine(store)
    plain: Envelopes = []
    slow: Envelopes = []
    pages: list[Envelopes] = []

    def failing(envelope: ea.EventEnvelope) -> None:
        if envelope.event.n == 10:
            raise ValueError("only this one fails")

    async def slow_handler(envelope: ea.EventEnvelope) -> None:
        await asyncio.sleep(0)
        slow.append(envelope)

    async with engine:
        await engine.add_projection("failing", failing, batch_size=5)
        await engine.add_projection("plain", plain.append, batch_size=5)
        await engine.add_projection("slow", slow_handler, batch_size=3)
        await engine.add_projection("pages", pages.append, batched=True, batch_size=8)
        await add_events(engine, 40, entities=("a", "b", "c", "d"))
        failed = await wait_for_state(engine, "failing", FAILED)
        statuses = [
            await engine.wait_for_projection(name, timeout=10)
            for name in ("plain", "slow", "pages")
        ]
        log = await read_log(store)
    assert failed.last_error is not None and "only this one fails" in failed.last_error
    for status in statuses:
        assert (status.state, status.lag, status.events_handled) == (RUNNING, 0, 40)
    assert keys(plain) == keys(slow) == keys(flatten(pages)) == keys(log)


async def test_projections_run_independently_on_memory():
    await check_projections_are_independent(memory())


async def test_projections_run_independently_on_durable_stores(open_durable_store):
    await check_projections_are_independent(open_durable_store)


# -- rebuild ------------------------------------------------------------------------------


class Balances:
    """A read model of account balances, and what happened to it."""

    def __init__(self) -> None:
        self.by_account: dict[str, int] = {}
        self.handled = 0
        self.resets = 0
        self.broken = False

    def handle(self, envelope: ea.EventEnvelope) -> None:
        self.handled += 1
        if self.broken and envelope.event_type == "Withdrawn":
            raise ValueError("cannot rebuild")
        match envelope.event_type:
            case "Opened":
                self.by_account[envelope.entity_id] = 0
            case "Deposited":
                self.by_account[envelope.entity_id] += envelope.event.amount
            case "Withdrawn":
                self.by_account[envelope.entity_id] -= envelope.event.amount

    def reset(self) -> None:
        self.resets += 1
        self.by_account.clear()

    async def reset_async(self) -> None:
        await asyncio.sleep(0)
        self.reset()


async def check_rebuild(open_store: OpenStore, asynchronous_reset: bool) -> None:
    store = open_store()
    engine = new_engine(store)
    balances = Balances()
    reset = balances.reset_async if asynchronous_reset else balances.reset
    async with engine:
        for owner, deposits, withdrawal in (
            ("ann", [50, 25], 30),
            ("bob", [10], 5),
            ("cy", [7, 8, 9], 0),
        ):
            await engine.send("account", owner, Open(owner))
            for amount in deposits:
                await engine.send("account", owner, Deposit(amount))
            if withdrawal:
                await engine.send("account", owner, Withdraw(withdrawal))
        await add_events(engine, 5)  # events the read model ignores
        await engine.add_projection("balances", balances.handle, batch_size=4, reset=reset)
        await engine.wait_for_projection("balances", timeout=10)
        original = dict(balances.by_account)
        assert original == {"ann": 45, "bob": 5, "cy": 24}
        log_length = len(await read_log(store))
        head = await store.head_position()

        progress: list[tuple[int, int]] = []
        status = await engine.rebuild_projection(
            "balances", on_progress=lambda position, head: progress.append((position, head))
        )
        assert balances.by_account == original
        assert (balances.resets, balances.handled) == (1, 2 * log_length)
        positions = [position for position, _ in progress]
        assert positions == sorted(set(positions))  # monotonic
        assert len(positions) >= log_length // 4
        assert all(position <= seen_head == head for position, seen_head in progress)
        assert progress[-1] == (head, head)
        assert (status.state, status.position, status.head, status.lag) == (RUNNING, head, head, 0)
        assert status.events_handled == log_length
        assert await store.get_offset("balances") == head

        # after the rebuild it carries on live
        await engine.send("account", "ann", Deposit(5))
        await engine.wait_for_projection("balances", timeout=10)
        assert balances.by_account["ann"] == 50

        balances.broken = True
        with pytest.raises(ea.EventActorsError, match="'balances' failed: ValueError: cannot rebu"):
            await engine.rebuild_projection("balances")
        assert engine.projection_status("balances").state is FAILED
        assert not await engine.is_projection_running("balances")


@pytest.mark.parametrize("asynchronous_reset", [False, True], ids=["sync", "async"])
async def test_rebuild_replays_into_a_reset_read_model_on_memory(asynchronous_reset):
    await check_rebuild(memory(), asynchronous_reset)


async def test_rebuild_replays_into_a_reset_read_model_on_durable_stores(open_durable_store):
    await check_rebuild(open_durable_store, asynchronous_reset=True)


# -- transactional (exactly-once) projections ---------------------------------------------


class ReadModelTable:
    """A read-model table in the store's own database, written by a transactional handler:
    plain functions with the sqlite3 connection on SQLite, coroutines with asyncpg's on
    PostgreSQL."""

    def __init__(self, store: ea.Store, table: str) -> None:
        self.store = store
        self.on_sqlite = isinstance(store, ea.SQLiteStore)
        self.table = table if self.on_sqlite else f'"{store.schema}".{table}'  # type: ignore[attr-defined]

    def handler(self, fail_on: int | None = None) -> Callable[..., Any]:
        create = (
            f"CREATE TABLE IF NOT EXISTS {self.table} "
            "(global_position BIGINT PRIMARY KEY, event_id TEXT NOT NULL)"
        )

        def check(envelopes: Envelopes) -> None:
            if fail_on in numbers(envelopes):
                raise ValueError(f"poison {fail_on}")  # after the rows were inserted

        if self.on_sqlite:
            insert = f"INSERT INTO {self.table} VALUES (?, ?)"

            def on_sqlite(envelopes: Envelopes, connection: sqlite3.Connection) -> None:
                connection.execute(create)
                connection.executemany(insert, keys(envelopes))
                check(envelopes)

            return on_sqlite
        insert = f"INSERT INTO {self.table} VALUES ($1, $2)"

        async def on_postgres(envelopes: Envelopes, connection: asyncpg.Connection) -> None:
            await connection.execute(create)
            await connection.executemany(insert, keys(envelopes))
            check(envelopes)

        return on_postgres

    def reset(self) -> Callable[..., Any]:
        delete = f"DELETE FROM {self.table}"
        if self.on_sqlite:

            def on_sqlite(connection: sqlite3.Connection) -> None:
                connection.execute(delete)

            return on_sqlite

        async def on_postgres(connection: asyncpg.Connection) -> None:
            await connection.execute(delete)

        return on_postgres

    async def rows(self) -> list[tuple[int, str]]:
        query = f"SELECT global_position, event_id FROM {self.table} ORDER BY global_position"
        if self.on_sqlite:
            path = self.store.path  # type: ignore[attr-defined]

            def read() -> list[tuple[int, str]]:
                with contextlib.closing(sqlite3.connect(path)) as connection:
                    try:
                        return [tuple(row) for row in connection.execute(query)]
                    except sqlite3.OperationalError:  # no table: nothing was committed
                        return []

            return await asyncio.to_thread(read)
        connection = await asyncpg.connect(DSN)
        try:
            return [tuple(row) for row in await connection.fetch(query)]
        except asyncpg.UndefinedTableError:
            return []
        finally:
            await connection.close()


async def test_a_transactional_projection_commits_rows_and_offset_together(open_durable_store):
    store = open_durable_store()
    engine = new_engine(store)
    table = ReadModelTable(store, "rm_events")
    async with engine:
        await add_events(engine, 23)
        await engine.add_projection(
            "rm", table.handler(), transactional=True, batch_size=5, reset=table.reset()
        )
        await engine.wait_for_projection("rm", timeout=10)
        await add_events(engine, 4, start=23)  # live
        status = await engine.wait_for_projection("rm", timeout=10)
        log = await read_log(store)
        head = log[-1].global_position
        assert await table.rows() == keys(log)
        assert await store.get_offset("rm") == head == status.position
        assert (status.state, status.events_handled, status.lag) == (RUNNING, 27, 0)

        # a rebuild resets the table with the offset, in one transaction, then replays: the
        # primary key would refuse a row written twice
        progress: list[tuple[int, int]] = []
        status = await engine.rebuild_projection(
            "rm", on_progress=lambda position, head: progress.append((position, head))
        )
        assert await table.rows() == keys(log)
        assert (status.state, status.position, status.events_handled) == (RUNNING, head, 27)
        assert progress[-1] == (head, head)


async def test_a_failing_transactional_handler_leaves_neither_rows_nor_offset(open_durable_store):
    store = open_durable_store()
    engine = new_engine(store)
    failing, skipping = ReadModelTable(store, "rm_failing"), ReadModelTable(store, "rm_skipping")
    dead: Envelopes = []

    def dead_letter(envelope: ea.EventEnvelope, error: BaseException) -> None:
        dead.append(envelope)

    async with engine:
        await add_events(engine, 20, start=1, entities=("a",))
        log = await read_log(store)
        await engine.add_projection(
            "failing", failing.handler(fail_on=13), transactional=True, batch_size=5
        )
        await engine.add_projection(
            "skipping",
            skipping.handler(fail_on=13),
            transactional=True,
            batch_size=5,
            policy=ea.retry_then_skip(0, backoff=0, dead_letter=dead_letter),
        )
        status = await wait_for_state(engine, "failing", FAILED)
        skipped = await engine.wait_for_projection("skipping", timeout=10)
        # the page of events 11-15 inserted its rows, then raised: rolled back with its offset
        assert await failing.rows() == keys(log[:10])
        assert await store.get_offset("failing") == log[9].global_position == status.position
        assert status.events_handled == 10
        assert status.last_error is not None and "ValueError: poison 13" in status.last_error
        # skipped, the page leaves no rows, and the offset moves on past it
        assert await skipping.rows() == keys(log[:10] + log[15:])
        assert keys(dead) == keys(log[10:15])
        assert await store.get_offset("skipping") == log[-1].global_position
        assert (skipped.state, skipped.events_handled) == (RUNNING, 15)


async def test_a_transactional_handlers_sql_error_fails_the_projection_on_postgres(pg_schema):
    engine = new_engine(ea.PostgresStore(DSN, schema=pg_schema))

    async def handler(envelopes: Envelopes, connection: asyncpg.Connection) -> None:
        await connection.execute(f'INSERT INTO "{pg_schema}".no_such_table VALUES (1)')

    async with engine:
        await add_events(engine, 3)
        await engine.add_projection("rm", handler, transactional=True)
        status = await wait_for_state(engine, "rm", FAILED)
        assert await engine.store.get_offset("rm") is None
    assert status.last_error is not None and "UndefinedTableError" in status.last_error


async def test_a_transactional_handlers_sql_error_fails_the_projection_on_sqlite(tmp_path):
    """An error in the handler's own SQL is the handler's failure, as on PostgreSQL, not a
    store outage to retry forever."""
    engine = new_engine(ea.SQLiteStore(tmp_path / "engine.db"))
    broken = True

    def handler(envelopes: Envelopes, connection: sqlite3.Connection) -> None:
        if broken:
            connection.execute("INSERT INTO no_such_table VALUES (1)")

    async with engine:
        await add_events(engine, 3)
        await engine.add_projection("rm", handler, transactional=True)
        try:
            await wait_for_state(engine, "rm", FAILED, timeout=0.6)
        finally:
            broken = False  # so that a runner still retrying lets the engine stop


async def test_transactional_needs_a_database_store():
    engine = new_engine(ea.MemoryStore())
    with pytest.raises(TypeError, match="needs a database store"):
        await engine.add_projection("rm", lambda envelopes, connection: None, transactional=True)


async def test_a_transactional_handler_on_sqlite_must_be_a_plain_function(tmp_path):
    engine = new_engine(ea.SQLiteStore(tmp_path / "engine.db"))

    async def handler(envelopes: Envelopes, connection: sqlite3.Connection) -> None:
        pass

    with pytest.raises(TypeError, match="must be a plain function"):
        await engine.add_projection("rm", handler, transactional=True)


async def test_a_transactional_projection_keeps_its_offset_in_the_engines_store(
    open_durable_store,
):
    store = open_durable_store()
    engine = new_engine(store)
    handler = ReadModelTable(store, "rm").handler()
    with pytest.raises(ValueError, match="do not pass offset_store"):
        await engine.add_projection(
            "rm", handler, transactional=True, offset_store=ea.MemoryStore()
        )
    await engine.add_projection("rm", handler, transactional=True, offset_store=store)


# -- arguments ----------------------------------------------------------------------------


async def test_bad_arguments_to_add_projection_are_named():
    engine = new_engine(ea.MemoryStore())

    def handler(envelope: ea.EventEnvelope) -> None:
        pass

    for name in ("", "   ", None, 5):
        with pytest.raises(ValueError, match="non-empty name"):
            await engine.add_projection(name, handler)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="must be callable"):
        await engine.add_projection("p", "not a function")  # type: ignore[arg-type]
    for batch_size in (0, -1, True, 1.5):
        with pytest.raises(ValueError, match="batch_size"):
            await engine.add_projection("p", handler, batch_size=batch_size)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="poll_interval"):
        await engine.add_projection("p", handler, poll_interval=0)
    for policy in ("fail", ea.fail, 3):
        with pytest.raises(TypeError, match="policy must be"):
            await engine.add_projection("p", handler, policy=policy)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="not an OffsetStore"):
        await engine.add_projection("p", handler, offset_store=object())  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="not a single string"):
        await engine.add_projection("p", handler, entity_types="account")
    with pytest.raises(ValueError, match="non-empty collection"):
        await engine.add_projection("p", handler, tags=[])
    with pytest.raises(ValueError, match="must not be negative"):
        ea.retry(-1)
    with pytest.raises(ValueError, match="must not be negative"):
        ea.retry_then_skip(1, backoff=-0.1)

    await engine.add_projection("p", handler)  # none of the refusals registered it
    with pytest.raises(ValueError, match="'p' is already added"):
        await engine.add_projection("p", lambda envelope: None)

    with pytest.raises(KeyError, match="no projection named 'nope'; added: 'p'"):
        engine.projection_status("nope")
    with pytest.raises(KeyError, match="'nope'"):
        await engine.remove_projection("nope")
    with pytest.raises(KeyError, match="'nope'"):
        await engine.is_projection_running("nope")
    with pytest.raises(KeyError, match="'nope'"):
        await engine.wait_for_projection("nope")
    with pytest.raises(ea.EngineNotStarted):
        await engine.rebuild_projection("p")
    async with engine:
        with pytest.raises(KeyError, match="'nope'"):
            await engine.rebuild_projection("nope")


# -- status -------------------------------------------------------------------------------


async def test_projection_status_fields():
    store = ea.MemoryStore()
    engine = new_engine(store)
    gate = asyncio.Event()
    seen: Envelopes = []

    async def gated(envelope: ea.EventEnvelope) -> None:
        await gate.wait()
        seen.append(envelope)

    await engine.add_projection("idle", lambda envelope: None)
    assert engine.projection_status("idle") == ea.ProjectionStatus(
        name="idle", state=STOPPED, position=0, head=0, lag=0, events_handled=0, last_error=None
    )
    assert not await engine.is_projection_running("idle")
    async with engine:
        await add_events(engine, 5)
        head = await store.head_position()
        await engine.add_projection("p", gated)
        await wait_until(lambda: engine.projection_status("p").head == head)
        assert engine.projection_status("p") == ea.ProjectionStatus(
            name="p", state=RUNNING, position=0, head=head, lag=head, events_handled=0,
            last_error=None,
        )  # fmt: skip
        assert await engine.is_projection_running("p")
        gate.set()
        status = await engine.wait_for_projection("p", timeout=5)
        assert status == ea.ProjectionStatus(
            name="p", state=RUNNING, position=head, head=head, lag=0, events_handled=5,
            last_error=None,
        )  # fmt: skip
        assert len(seen) == 5
    assert engine.projection_status("p").state is STOPPED
    assert engine.projection_status("p").position == head
    assert not await engine.is_projection_running("p")


async def test_a_plain_function_returning_a_coroutine_works_as_a_postgres_transactional_handler(
    pg_schema,
):
    store = ea.PostgresStore(DSN, schema=pg_schema)
    engine = ea.Engine(store=store)
    engine.register("account", AccountBehavior)
    table = f'"{pg_schema}".seen'

    def handler(envelopes: list[ea.EventEnvelope], connection: Any) -> Any:
        return connection.executemany(
            f"INSERT INTO {table} VALUES ($1)", [(e.event_id,) for e in envelopes]
        )

    async with engine:
        connection = await asyncpg.connect(DSN)
        await connection.execute(f"CREATE TABLE {table} (event_id text PRIMARY KEY)")
        await engine.add_projection("seen", handler, transactional=True)
        await engine.send("account", "a", Open("ann"))
        await engine.send("account", "a", Deposit(5))
        await engine.wait_for_projection("seen", timeout=10)
        assert await connection.fetchval(f"SELECT count(*) FROM {table}") == 2
        await connection.close()
