"""`Engine.statistics()`: the engine's figures as immutable values, without OpenTelemetry.

The runtime keeps running tallies in a `Recorder` (`_runtime/recorder.py`); this module reads
them, with the live entities and the projections, into one frozen `EngineStatistics`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING

from .projections import ProjectionStatus

if TYPE_CHECKING:
    from .engine import Engine


@dataclass(frozen=True, slots=True)
class CommandCounts:
    """Commands handled, by outcome. `timeout` counts commands past the entity's
    `command_timeout` and those whose caller stopped waiting before their turn came."""

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
class EngineStatistics:
    """A point-in-time view of the engine, for dashboards and tests.

    Counts run from the engine's creation. `commands_per_second` covers about the last ten
    seconds. `appends` counts the store writes of accepted commands that changed something
    (event appends and durable-state writes), and `append_latency` their latest durations.
    `mean_append_batch` is the store's mean group-commit batch (appends per write
    transaction, since the store object was created), None for a store that does not report
    it. `max_mailbox_depth` is the most commands ever waiting in one entity's mailbox. Each
    projection (each partition, by its own name) has its status, with `head` the highest
    position this engine has seen, so `lag` counts events not yet handled. The mappings are
    fresh copies.
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


def mean_append_batch(store: object) -> float | None:
    """Appends per write transaction, from the store's `write_statistics()` if it has one."""
    write_statistics = getattr(store, "write_statistics", None)
    if write_statistics is None:
        return None
    written = write_statistics()
    return written.appends / written.transactions if written.transactions else None


def projection_statistics(engine: Engine) -> dict[str, ProjectionStatus]:
    """Each local projection runner's status, its head raised to the engine's own: a runner
    only looks at the head when it turns, and the engine knows of its writes at once."""
    projections = {}
    for runner in engine._projections.runners():
        status = runner.status()
        head = max(status.head, engine._known_head)
        projections[status.name] = replace(status, head=head, lag=max(0, head - status.position))
    return projections


def engine_statistics(engine: Engine) -> EngineStatistics:
    recorder = engine._recorder
    busy = [actor for actor in engine._entities.values() if actor.task is not None]
    by_type = {
        name: CommandCounts(c.accepted, c.rejected, c.error, c.timeout)
        for name, c in recorder.commands.items()
    }
    return EngineStatistics(
        running=engine._running,
        entity_types=len(engine._kinds),
        live_entities=len(engine._entities),
        busy_entities=len(busy),
        queued_messages=sum(len(actor.mailbox or ()) for actor in busy),
        subscriptions=len(engine._subscriptions),
        commands=CommandCounts(
            sum(c.accepted for c in by_type.values()),
            sum(c.rejected for c in by_type.values()),
            sum(c.error for c in by_type.values()),
            sum(c.timeout for c in by_type.values()),
        ),
        commands_by_type=by_type,
        commands_per_second=recorder.commands_per_second(),
        appends=recorder.appends,
        events_appended=recorder.events_appended,
        append_latency=latency_percentiles(recorder.latency_window()),
        mean_append_batch=mean_append_batch(engine.store),
        max_mailbox_depth=recorder.max_mailbox_depth(),
        projections=projection_statistics(engine),
    )
