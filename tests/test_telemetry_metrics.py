"""eventactors.telemetry's metrics, read through the OpenTelemetry SDK's in-memory readers on
private providers: names and units, one series per engine, gauges of the present moment
that every reader sees alike, and engines that are stopped, uninstrumented or dropped."""

from __future__ import annotations

import asyncio
import gc
import weakref
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from otel_support import Otel, private_otel
from test_statistics import CounterBehavior, Hold, LedgerBehavior, Put, Refuse
from waits import wait_until

import eventactors as ea
from eventactors import telemetry
from eventactors._telemetry_spans import Bridge

pytestmark = pytest.mark.timeout(60)

ENGINE, TYPE, OUTCOME = (
    "eventactors.engine.id",
    "eventactors.entity.type",
    "eventactors.command.outcome",
)
PROJECTION = "eventactors.projection.name"


@pytest.fixture
def otel() -> Iterator[Otel]:
    with private_otel(readers=2) as providers:
        yield providers


@pytest.fixture
async def engine(otel: Otel, tmp_path: Path) -> AsyncIterator[ea.Engine]:
    engine = ea.Engine(store=ea.SQLiteStore(tmp_path / "telemetry.db"))
    engine.register("ledger", LedgerBehavior)
    engine.register("counter", CounterBehavior)
    otel.instrument(engine)
    async with engine:
        yield engine
    telemetry.uninstrument(engine)


def ledger_engine(store: ea.Store | None = None) -> ea.Engine:
    engine = ea.Engine(store=store)
    engine.register("ledger", LedgerBehavior)
    return engine


async def test_metrics_names_units_and_attributes(engine: ea.Engine, otel: Otel) -> None:
    await engine.add_projection("all", lambda envelope: None)
    for n in range(4):
        await engine.send("ledger", f"l-{n}", Put())
    with pytest.raises(ea.Rejected):
        await engine.send("ledger", "l-0", Refuse("no"))
    await engine.send("counter", "c", object())
    await engine.wait_for_projection("all")

    units = {name: metric.unit for name, metric in otel.collect().items()}
    assert units == {
        "eventactors.commands": "{command}",
        "eventactors.append.duration": "s",
        "eventactors.events.appended": "{event}",
        "eventactors.store.transactions": "{transaction}",
        "eventactors.store.appends": "{append}",
        "eventactors.mailbox.depth": "{command}",
        "eventactors.mailbox.queued": "{command}",
        "eventactors.projection.lag": "{event}",
        "eventactors.projection.position": "{position}",
        "eventactors.projection.events": "{event}",
        "eventactors.projection.batch.size": "{event}",
    }
    me = (ENGINE, engine.statistics().engine_id)
    commands = otel.values("eventactors.commands")
    assert commands[(OUTCOME, "accepted"), me, (TYPE, "ledger")] == 4
    assert commands[(OUTCOME, "rejected"), me, (TYPE, "ledger")] == 1
    assert commands[(OUTCOME, "error"), me, (TYPE, "ledger")] == 0
    assert commands[(OUTCOME, "accepted"), me, (TYPE, "counter")] == 1

    durations = otel.points("eventactors.append.duration")
    assert durations[me, (TYPE, "ledger")].count == 4
    assert durations[me, (TYPE, "counter")].count == 1
    assert durations[me, (TYPE, "ledger")].sum > 0
    assert otel.values("eventactors.events.appended") == {(me,): 4}
    assert otel.values("eventactors.store.appends") == {(me,): 4}  # event appends
    assert otel.values("eventactors.store.transactions")[(me,)] >= 1
    assert otel.values("eventactors.mailbox.depth") == {(me,): 0}
    assert otel.values("eventactors.mailbox.queued") == {(me,): 0}

    projection = (me, (PROJECTION, "all"))
    assert otel.values("eventactors.projection.lag") == {projection: 0}
    assert otel.values("eventactors.projection.position") == {projection: 4}
    assert otel.values("eventactors.projection.events") == {projection: 4}
    batches = otel.points("eventactors.projection.batch.size")[projection]
    assert batches.sum == 4 and batches.count >= 1


async def test_every_reader_sees_the_deepest_mailbox_at_its_collection(
    engine: ea.Engine, otel: Otel
) -> None:
    first, second = otel.readers
    me = (ENGINE, engine.statistics().engine_id)
    gate = asyncio.Event()
    held = asyncio.ensure_future(engine.send("ledger", "busy", Hold(gate)))
    try:
        await wait_until(lambda: engine.statistics().busy_entities == 1)
        waiting = [asyncio.ensure_future(engine.send("ledger", "busy", Put())) for _ in range(3)]
        await wait_until(lambda: engine.statistics().queued_messages == 3)
        seen = [
            (otel.values(f"eventactors.mailbox.{gauge}", reader), gauge)
            for reader in (first, second, first)  # a collection takes nothing from the next
            for gauge in ("depth", "queued")
        ]
    finally:
        gate.set()  # a failure must not leave the stop waiting for the Hold
    assert seen == [({(me,): 3}, gauge) for gauge in ("depth", "queued")] * 3
    await asyncio.gather(held, *waiting)
    for reader in (first, second):
        assert otel.values("eventactors.mailbox.depth", reader) == {(me,): 0}
    stats = engine.statistics()
    assert (stats.deepest_mailbox, stats.max_mailbox_depth) == (0, 3)


async def test_uninstrument_stops_spans_and_metrics_and_instrument_again_works(
    otel: Otel,
) -> None:
    engine = ea.Engine()
    engine.register("counter", CounterBehavior)
    otel.instrument(engine)
    with pytest.raises(ea.EventActorsError, match="already instrumented"):
        otel.instrument(engine)
    async with engine:
        await engine.send("counter", "c", object())
        telemetry.uninstrument(engine)
        telemetry.uninstrument(engine)  # a second time does nothing
        await engine.send("counter", "c", object())
        assert len(otel.finished("counter object")) == 1
        assert otel.points("eventactors.commands") == {}
        otel.instrument(engine)  # the same meter: its instruments again
        await engine.send("counter", "c", object())
        assert len(otel.finished("counter object")) == 2
        me = (ENGINE, engine.statistics().engine_id)
        assert (
            otel.values("eventactors.commands")[(OUTCOME, "accepted"), me, (TYPE, "counter")] == 3
        )
    telemetry.uninstrument(engine)


async def test_engines_on_one_provider_report_apart_so_no_counter_goes_backwards(
    otel: Otel,
) -> None:
    shared = ea.MemoryStore()
    one, two = ledger_engine(shared), ledger_engine(shared)
    for engine in (one, two):
        otel.instrument(engine)
    async with one, two:
        for n in range(2):
            await one.send("ledger", f"one-{n}", Put())
        for n in range(3):
            await two.send("ledger", f"two-{n}", Put())
        first, second = (ENGINE, one.statistics().engine_id), (ENGINE, two.statistics().engine_id)
        assert first != second
        accepted = (OUTCOME, "accepted")
        commands = otel.values("eventactors.commands")
        assert (
            commands[accepted, first, (TYPE, "ledger")],
            commands[accepted, second, (TYPE, "ledger")],
        ) == (2, 3)
        # the store's own figures, once per engine that shares it: not to be added up
        assert otel.values("eventactors.store.appends") == {(first,): 5, (second,): 5}
        telemetry.uninstrument(two)
        commands = otel.values("eventactors.commands")
        assert commands[accepted, first, (TYPE, "ledger")] == 2
        assert all(second not in key for key in commands)
        assert otel.values("eventactors.events.appended") == {(first,): 2}
    telemetry.uninstrument(one)


async def test_an_engine_dropped_without_uninstrument_is_freed_and_reports_no_more(
    otel: Otel,
) -> None:
    async def run_and_drop() -> weakref.ref[ea.Engine]:
        engine = ledger_engine()
        otel.instrument(engine)
        async with engine:
            await engine.send("ledger", "l", Put())
        assert otel.values("eventactors.commands")  # still reported: stopped but alive
        return weakref.ref(engine)

    dropped = await run_and_drop()
    await asyncio.sleep(0)  # the stop's last callbacks let go of its frames
    gc.collect()
    assert dropped() is None
    assert otel.points("eventactors.commands") == {}


async def test_a_stopped_engine_reports_its_counters_but_not_its_gauges(otel: Otel) -> None:
    engine = ledger_engine()
    otel.instrument(engine)
    gate = asyncio.Event()

    async def slow(envelope: ea.EventEnvelope) -> None:
        await gate.wait()

    async with engine:
        try:
            await engine.add_projection("slow", slow)
            for n in range(3):
                await engine.send("ledger", f"l-{n}", Put())
            me = (ENGINE, engine.statistics().engine_id)
            lag = otel.values("eventactors.projection.lag")
        finally:
            gate.set()  # the stop finishes the page in hand
        assert lag == {(me, (PROJECTION, "slow")): 3}
    assert otel.values("eventactors.commands")[(OUTCOME, "accepted"), me, (TYPE, "ledger")] == 3
    assert otel.values("eventactors.projection.events")[me, (PROJECTION, "slow")] >= 1
    for gauge in ("lag", "position"):
        assert otel.points(f"eventactors.projection.{gauge}") == {}
    assert otel.points("eventactors.mailbox.depth") == {}
    assert otel.points("eventactors.mailbox.queued") == {}
    telemetry.uninstrument(engine)


async def test_a_removed_projection_leaves_nothing_behind_in_the_bridge(
    engine: ea.Engine, otel: Otel
) -> None:
    await engine.send("ledger", "l", Put())
    await engine.add_projection("short-lived", lambda envelope: None)
    await engine.wait_for_projection("short-lived")
    bridge = engine._recorder.hooks
    assert isinstance(bridge, Bridge)
    assert "short-lived" in bridge._projection_labels  # one attributes dict per projection
    await engine.remove_projection("short-lived")
    assert "short-lived" not in bridge._projection_labels
