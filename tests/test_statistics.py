"""`Engine.statistics()`: the figures after a known workload, on a MemoryStore and on an
SQLite file; mailbox depth while a handler is held; projection lag falling to 0, batch sizes,
and an outage's error cleared once the projection recovers; the rate right after a start."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import FrozenInstanceError, dataclass
from pathlib import Path
from typing import Any

import msgspec
import pytest
from waits import wait_until

import eventactors as ea
from eventactors._statistics import latency_percentiles

pytestmark = pytest.mark.timeout(60)


class Put(msgspec.Struct, frozen=True):
    count: int = 1


class Refuse(msgspec.Struct, frozen=True):
    reason: str


class Fail(msgspec.Struct, frozen=True):
    pass


@dataclass(frozen=True)
class Hold:
    """Waits for `gate` before storing one event."""

    gate: asyncio.Event


class Stored(msgspec.Struct, frozen=True):
    n: int


class Ledger(msgspec.Struct, frozen=True):
    total: int = 0


class LedgerBehavior(ea.EventSourcedBehavior[Ledger]):
    events = (Stored,)

    def initial_state(self) -> Ledger:
        return Ledger()

    async def handle_command(self, state: Ledger, command: Any) -> Any:
        match command:
            case Put(count):
                return [Stored(n) for n in range(count)]
            case Refuse(reason):
                raise ea.Rejected(reason)
            case Fail():
                raise ValueError("the handler failed")
            case Hold(gate):
                await gate.wait()
                return Stored(0)
        raise AssertionError(command)

    def handle_event(self, state: Ledger, event: Stored) -> Ledger:
        return Ledger(state.total + 1)


class Count(msgspec.Struct, frozen=True):
    value: int = 0


class CounterBehavior(ea.DurableStateBehavior[Count]):
    def initial_state(self) -> Count:
        return Count()

    def handle_command(self, state: Count, command: Any) -> Count:
        return Count(state.value + 1)


StoreFactory = Callable[[Path], ea.Store]
STORES: dict[str, StoreFactory] = {
    "memory": lambda tmp_path: ea.MemoryStore(),
    "sqlite": lambda tmp_path: ea.SQLiteStore(tmp_path / "statistics.db"),
}


def new_engine(store: ea.Store) -> ea.Engine:
    engine = ea.Engine(store=store)
    engine.register("ledger", LedgerBehavior, command_timeout=0.05)
    engine.register("counter", CounterBehavior)
    return engine


async def refused(call: Any, error: type[Exception]) -> None:
    with pytest.raises(error):
        await call


@pytest.mark.parametrize("store_name", STORES)
async def test_figures_after_a_known_workload(tmp_path: Path, store_name: str) -> None:
    engine = new_engine(STORES[store_name](tmp_path))
    fresh = engine.statistics()
    assert (fresh.running, fresh.commands, fresh.appends, fresh.events_appended) == (
        False, ea.CommandCounts(), 0, 0,
    )  # fmt: skip
    assert (fresh.append_latency, fresh.mean_append_batch, fresh.max_mailbox_depth) == (
        None, None, 0,
    )  # fmt: skip
    async with engine:
        for n in range(5):
            await engine.send("ledger", f"l-{n}", Put())
        await engine.send("ledger", "l-0", Put(3))
        await engine.send("ledger", "l-1", Put(3))
        await engine.send("ledger", "l-2", Put(0))  # accepted, but nothing to write
        await refused(engine.send("ledger", "l-0", Refuse("no")), ea.Rejected)
        await refused(engine.send("ledger", "l-1", Refuse("never")), ea.Rejected)
        await refused(engine.send("ledger", "l-0", Fail()), ValueError)
        await refused(engine.send("ledger", "l-0", Hold(asyncio.Event())), ea.CommandTimeout)
        for _ in range(3):
            await engine.send("counter", "c", object())
        stats = engine.statistics()

    assert stats.running and (stats.entity_types, stats.live_entities) == (2, 6)
    assert (stats.busy_entities, stats.queued_messages, stats.subscriptions) == (0, 0, 0)
    assert stats.commands_by_type == {
        "ledger": ea.CommandCounts(accepted=8, rejected=2, error=1, timeout=1),
        "counter": ea.CommandCounts(accepted=3),
    }
    assert stats.commands == ea.CommandCounts(accepted=11, rejected=2, error=1, timeout=1)
    assert stats.commands.total == 15
    assert stats.commands_per_second > 0
    # 7 appends with events (5 x 1, 2 x 3) and 3 durable-state writes
    assert (stats.appends, stats.events_appended) == (10, 11)
    latency = stats.append_latency
    assert latency is not None and latency.samples == 10
    assert 0 < latency.p50 <= latency.p95 <= latency.p99 < 5
    assert stats.mean_append_batch is not None and stats.mean_append_batch >= 1.0
    assert stats.store_appends is not None and stats.store_transactions is not None
    assert stats.mean_append_batch == stats.store_appends / stats.store_transactions
    # every write came after the start, within the window: the recent batch is the same
    assert stats.recent_append_batch == pytest.approx(stats.mean_append_batch)
    assert stats.max_mailbox_depth == 1  # one command at a time: never more than one waiting
    assert stats.deepest_mailbox == 0
    assert (
        len(stats.engine_id) == 12
        and stats.engine_id != new_engine(ea.MemoryStore()).statistics().engine_id
    )
    with pytest.raises(FrozenInstanceError):
        stats.appends = 0  # type: ignore[misc]
    assert not engine.statistics().running


async def test_a_command_whose_caller_gave_up_before_its_turn_counts_as_a_timeout() -> None:
    gate = asyncio.Event()
    async with new_engine(ea.MemoryStore()) as engine:
        engine.register("slow", LedgerBehavior)  # no command_timeout: holds until released
        held = asyncio.ensure_future(engine.send("slow", "s", Hold(gate)))
        await wait_until(lambda: engine.statistics().busy_entities == 1)
        await refused(engine.send("slow", "s", Put(), timeout=0.02), ea.CommandTimeout)
        gate.set()
        await held
        await wait_until(lambda: engine.statistics().busy_entities == 0)
        assert engine.statistics().commands_by_type["slow"] == ea.CommandCounts(1, 0, 0, 1)


@pytest.mark.parametrize("store_name", STORES)
async def test_mailbox_depth_while_a_handler_is_held(tmp_path: Path, store_name: str) -> None:
    gate = asyncio.Event()
    engine = ea.Engine(store=STORES[store_name](tmp_path))
    engine.register("ledger", LedgerBehavior)
    async with engine:
        held = asyncio.ensure_future(engine.send("ledger", "busy", Hold(gate)))
        await wait_until(lambda: engine.statistics().busy_entities == 1)
        assert engine.statistics().queued_messages == 0
        waiting = [asyncio.ensure_future(engine.send("ledger", "busy", Put())) for _ in range(3)]
        await wait_until(lambda: engine.statistics().queued_messages == 3)
        stats = engine.statistics()
        assert (stats.busy_entities, stats.queued_messages) == (1, 3)
        assert (stats.deepest_mailbox, stats.max_mailbox_depth) == (3, 3)
        gate.set()
        await asyncio.gather(held, *waiting)
        stats = engine.statistics()
        assert (stats.queued_messages, stats.deepest_mailbox, stats.max_mailbox_depth) == (0, 0, 3)
        assert stats.commands.accepted == 4


@pytest.mark.parametrize("store_name", STORES)
async def test_projection_lag_falls_to_zero_after_catch_up(tmp_path: Path, store_name: str) -> None:
    gate = asyncio.Event()
    seen: list[int] = []

    async def held(envelope: ea.EventEnvelope) -> None:
        await gate.wait()
        seen.append(envelope.global_position or 0)

    engine = ea.Engine(store=STORES[store_name](tmp_path))
    engine.register("ledger", LedgerBehavior)
    async with engine:
        await engine.add_projection("held", held)
        for n in range(10):
            await engine.send("ledger", f"l-{n}", Put(2))
        behind = engine.statistics().projections["held"]
        assert (behind.position, behind.head, behind.lag) == (0, 20, 20)
        gate.set()
        await wait_until(lambda: engine.statistics().projections["held"].lag == 0)
        caught_up = engine.statistics().projections["held"]
        assert (caught_up.position, caught_up.head, caught_up.events_handled) == (20, 20, 20)
        assert caught_up.state is ea.ProjectionState.RUNNING and len(seen) == 20


async def test_batch_sizes_of_each_projection() -> None:
    pages: list[int] = []
    async with new_engine(ea.MemoryStore()) as engine:
        await engine.send("ledger", "l", Put(10))
        await engine.add_projection(
            "pages", lambda page: pages.append(len(page)), batched=True, batch_size=4
        )
        await engine.add_projection("single", lambda envelope: None)
        await engine.wait_for_projection("pages")
        await engine.wait_for_projection("single")
        batches = engine.statistics().projection_batches
    assert pages == [4, 4, 2]
    assert batches["pages"] == ea.BatchSizes(last=2, mean=10 / 3, batches=3)
    # a page of the log, handed to the handler one event at a time
    assert batches["single"] == ea.BatchSizes(last=10, mean=10.0, batches=1)


class Outage(ea.MemoryStore):
    """A MemoryStore whose reads of the log fail while `down` is set."""

    down = False

    async def read_all(self, *args: Any, **kwargs: Any) -> list[ea.EventEnvelope]:
        if self.down:
            raise ea.StoreUnavailable("the store is restarting")
        return await super().read_all(*args, **kwargs)


async def test_an_outage_shows_in_last_error_until_the_projection_recovers() -> None:
    store = Outage()
    read_model_down = True

    def handler(envelope: ea.EventEnvelope) -> None:
        if read_model_down:
            raise ea.StoreUnavailable("read model down")

    async with new_engine(store) as engine:
        await engine.add_projection("p", handler, poll_interval=0.01)
        await engine.send("ledger", "l", Put())

        def status() -> ea.ProjectionStatus:
            return engine.statistics().projections["p"]

        await wait_until(lambda: status().last_error == "StoreUnavailable: read model down")
        read_model_down = False  # the read model is back: the batch is handled
        await wait_until(lambda: status().lag == 0)
        assert status().last_error is None
        store.down = True  # the event store goes away while the projection is idle
        await wait_until(lambda: status().last_error == "StoreUnavailable: the store is restarting")
        store.down = False
        await wait_until(lambda: status().last_error is None)
        assert status().state is ea.ProjectionState.RUNNING


async def test_the_rate_right_after_the_start_is_over_the_whole_window() -> None:
    async with new_engine(ea.MemoryStore()) as engine:
        await engine.send("ledger", "l", Put())
        rate = engine.statistics().commands_per_second
    assert 0 < rate <= 1 / 10  # one command in a ten-second window, not thousands a second


async def test_latencies_are_those_of_the_latest_1024_writes() -> None:
    async with new_engine(ea.MemoryStore()) as engine:
        await asyncio.gather(*(engine.send("counter", f"c-{n}", object()) for n in range(1100)))
        stats = engine.statistics()
    assert stats.appends == 1100
    assert stats.append_latency is not None and stats.append_latency.samples == 1024


def test_percentiles_are_nearest_rank() -> None:
    assert latency_percentiles([]) is None
    ordered = [float(n) for n in range(1, 101)]
    assert latency_percentiles(ordered) == ea.LatencyPercentiles(50.0, 95.0, 99.0, 100)
    assert latency_percentiles([0.5]) == ea.LatencyPercentiles(0.5, 0.5, 0.5, 1)
