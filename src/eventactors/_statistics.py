"""`Engine.statistics()`: the engine's figures as immutable values, without OpenTelemetry.

The runtime keeps running tallies in a `Recorder` (`_runtime/recorder.py`). `snapshot` is the
one reader of those tallies, the live entities and the projections: `statistics()` and the
telemetry metrics both start from it, so that they report the same figures.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from operator import attrgetter
from typing import TYPE_CHECKING

from .projections import ProjectionStatus

if TYPE_CHECKING:
    from .engine import Engine


@dataclass(frozen=True, slots=True)
class CommandCounts:
    """Commands handled, by outcome. `timeout` counts commands past the entity's
    `command_timeout` and those whose caller stopped waiting before their turn came (counted
    when the caller gives up); `error` includes the commands the engine gave up on when it
    stopped. A `send_by` call counts once, however often it was routed."""

    accepted: int = 0
    rejected: int = 0
    error: int = 0
    timeout: int = 0

    @property
    def total(self) -> int:
        return self.accepted + self.rejected + self.error + self.timeout


@dataclass(frozen=True, slots=True)
class LatencyPercentiles:
    """Percentiles, in seconds, of the latest `samples` store writes (at most 1024)."""

    p50: float
    p95: float
    p99: float
    samples: int


@dataclass(frozen=True, slots=True)
class BatchSizes:
    """Events per batch handed to a projection, over its latest `batches` batches (at most
    100, a stopped one aside): the recent side of `eventactors.projection.batch.size`."""

    last: int
    mean: float
    batches: int


@dataclass(frozen=True, slots=True)
class EngineStatistics:
    """A point-in-time view of the engine, for dashboards and tests: the figures its telemetry
    metrics report, with rates and percentiles.

    Counts run from the engine's creation. `commands_per_second` covers about the last ten
    seconds (and is divided by ten seconds until that much has passed since the start).
    `appends` counts the store writes of accepted commands that changed something (event
    appends and durable-state writes), and `append_latency` their latest durations.
    `store_appends` and `store_transactions` are the store's group commit since the store
    object was created, `mean_append_batch` their ratio (appends per write transaction) and
    `recent_append_batch` the same over about the last ten seconds (None without writes in
    it); all are None for a store that does not report them. `deepest_mailbox` is the most
    commands waiting in one entity's mailbox now, `max_mailbox_depth` the most ever. Each
    projection (each partition, by its own name) has its status, with `head` the highest
    position this engine has seen, so `lag` counts positions not yet handled (events, unless
    some positions are holes), and `projection_batches` the sizes of its latest batches.
    `engine_id` is the `eventactors.engine.id` of this engine's metrics and spans. The
    mappings are fresh copies.
    """

    running: bool
    entity_types: int
    live_entities: int
    busy_entities: int
    queued_messages: int
    subscriptions: int
    commands: CommandCounts = CommandCounts()
    commands_by_type: Mapping[str, CommandCounts] = field(default_factory=dict)
    commands_per_second: float = 0.0
    appends: int = 0
    events_appended: int = 0
    append_latency: LatencyPercentiles | None = None
    mean_append_batch: float | None = None
    max_mailbox_depth: int = 0
    projections: Mapping[str, ProjectionStatus] = field(default_factory=dict)
    projection_batches: Mapping[str, BatchSizes] = field(default_factory=dict)
    recent_append_batch: float | None = None
    store_appends: int | None = None
    store_transactions: int | None = None
    deepest_mailbox: int = 0
    engine_id: str = ""


@dataclass(frozen=True, slots=True)
class Snapshot:
    """One engine's figures as `snapshot` read them: what both reporters start from."""

    engine_id: str
    running: bool
    entity_types: int
    live_entities: int
    busy_entities: int
    queued_messages: int
    deepest_mailbox: int
    subscriptions: int
    commands_by_type: dict[str, CommandCounts]
    appends: int
    events_appended: int
    max_mailbox_depth: int
    store_writes: tuple[int, int] | None  # (appends, transactions)
    projections: dict[str, ProjectionStatus]
    projection_batches: dict[str, BatchSizes]


_MAILBOX, _TASK = attrgetter("mailbox"), attrgetter("task")


def snapshot(engine: Engine) -> Snapshot:
    """Reads the engine without writing anything, so a metric exporter's thread may call it:
    each container the event loop changes is first copied in one C call (`tuple(d.values())`,
    atomic under the GIL), and the loops over the copies run in C too."""
    recorder = engine._recorder
    actors = tuple(engine._entities.values())
    depths = tuple(map(len, filter(None, map(_MAILBOX, actors))))
    commands = {
        name: CommandCounts(c.accepted, c.rejected, c.error, c.timeout)
        for name, c in tuple(recorder.commands.items())
    }
    known_head = engine._known_head
    projections, batches = {}, {}
    for runner in engine._projections.runners():
        # A runner looks at the head only when it turns; the engine knows of its writes at once.
        status = runner.status()
        head = max(status.head, known_head)
        projections[status.name] = replace(status, head=head, lag=max(0, head - status.position))
        sizes = tuple(runner.batch_sizes)
        if sizes:
            batches[status.name] = BatchSizes(sizes[-1], sum(sizes) / len(sizes), len(sizes))
    return Snapshot(
        engine_id=recorder.engine_id,
        running=engine._running,
        entity_types=len(engine._kinds),
        live_entities=len(actors),
        busy_entities=len(tuple(filter(None, map(_TASK, actors)))),
        queued_messages=sum(depths),
        deepest_mailbox=max(depths, default=0),
        subscriptions=len(engine._subscriptions),
        commands_by_type=commands,
        appends=recorder.appends,
        events_appended=recorder.events_appended,
        max_mailbox_depth=recorder.mailbox_peak,
        store_writes=recorder.store_writes(),
        projections=projections,
        projection_batches=batches,
    )


def percentile(ordered: list[float], fraction: float) -> float:
    """Nearest rank: the smallest sample with at least `fraction` of them at or below it."""
    return ordered[max(0, math.ceil(fraction * len(ordered)) - 1)]


def latency_percentiles(ordered: list[float]) -> LatencyPercentiles | None:
    if not ordered:
        return None
    return LatencyPercentiles(
        percentile(ordered, 0.50), percentile(ordered, 0.95), percentile(ordered, 0.99),
        len(ordered),
    )  # fmt: skip


def engine_statistics(engine: Engine) -> EngineStatistics:
    """The snapshot, with the figures only `statistics()` computes: the rate (which samples
    the recorder, so on the event loop's thread) and the percentiles (a sort)."""
    figures = snapshot(engine)
    recorder = engine._recorder
    by_type = figures.commands_by_type
    writes = figures.store_writes
    return EngineStatistics(
        running=figures.running,
        entity_types=figures.entity_types,
        live_entities=figures.live_entities,
        busy_entities=figures.busy_entities,
        queued_messages=figures.queued_messages,
        subscriptions=figures.subscriptions,
        commands=CommandCounts(
            sum(c.accepted for c in by_type.values()),
            sum(c.rejected for c in by_type.values()),
            sum(c.error for c in by_type.values()),
            sum(c.timeout for c in by_type.values()),
        ),
        commands_by_type=by_type,
        commands_per_second=recorder.commands_per_second(),
        appends=figures.appends,
        events_appended=figures.events_appended,
        append_latency=latency_percentiles(recorder.latency_window()),
        mean_append_batch=writes[0] / writes[1] if writes and writes[1] else None,
        max_mailbox_depth=figures.max_mailbox_depth,
        projections=figures.projections,
        projection_batches=figures.projection_batches,
        recent_append_batch=recorder.recent_append_batch(),
        store_appends=None if writes is None else writes[0],
        store_transactions=None if writes is None else writes[1],
        deepest_mailbox=figures.deepest_mailbox,
        engine_id=figures.engine_id,
    )
