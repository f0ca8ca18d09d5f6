"""OpenTelemetry traces and metrics for an engine (the optional extra `eventactors[telemetry]`).

    from eventactors import telemetry

    telemetry.instrument(engine)  # the global providers; or tracer_provider=, meter_provider=
    ...
    telemetry.uninstrument(engine)

Nothing here runs until `instrument` is called: the engine keeps its tallies anyway (they are
what `Engine.statistics()` reads), and the metrics below are observable instruments reading
them at collection time. Only the spans and the two histograms add work per command.

Spans (kind INTERNAL):

- `<entity type> <CommandType>`, one per command, from its turn in the mailbox to the reply
  (the handler, the append and the apply), and current while the handler runs. Its parent is
  the span that was current when `send` was called. Attributes: `eventactors.entity.type`,
  `eventactors.entity.id`, `eventactors.command.type`, `eventactors.command.id`,
  `eventactors.command.outcome` (`accepted`, `rejected`, `error`, `timeout`; `retried` when
  `send_by` found its keys moved and sends again), `eventactors.command.events` (events
  persisted) and `eventactors.entity.revision` (after the command). Status ERROR, with the
  exception recorded, for `error` and `timeout`; a rejection is an answer, not an error: it
  sets `eventactors.command.rejection` to the reason.
- `projection <name>`, one per batch a projection hands to its handler and commits (a root
  span, current while the handler runs). Attributes: `eventactors.projection.name`,
  `eventactors.projection.batch.size`, `eventactors.projection.position.first` and `.last`
  (global positions), `eventactors.projection.outcome` (`handled`, `skipped`: the policy
  skipped an event, `failed`: the projection stopped, with status ERROR).

Metrics (meter `eventactors`):

=================================  ==============  =============  ==============================
name                               instrument      unit           attributes
=================================  ==============  =============  ==============================
eventactors.commands               counter         {command}      entity.type, command.outcome
eventactors.append.duration        histogram       s              entity.type
eventactors.events.appended        counter         {event}
eventactors.store.transactions     counter         {transaction}
eventactors.store.appends          counter         {append}
eventactors.mailbox.depth          gauge           {command}
eventactors.mailbox.queued         gauge           {command}
eventactors.projection.lag         gauge           {event}        projection.name
eventactors.projection.position    gauge           {position}     projection.name
eventactors.projection.events      counter         {event}        projection.name
eventactors.projection.batch.size  histogram       {event}        projection.name
=================================  ==============  =============  ==============================

(Attribute names take the `eventactors.` prefix too.) `append.duration` times each store write
of an accepted command that changed something: an event append or a durable-state write.
`store.transactions` and `store.appends` are the store's group-commit counts (for a store
with `write_statistics()`): their rates' ratio is the mean group-commit batch. `mailbox.depth`
is the deepest entity mailbox since the previous collection; `mailbox.queued` the commands
waiting in all mailboxes at collection. `projection.lag` is the engine's known head minus the
projection's committed offset; a partitioned projection reports each partition under its own
name, and a rebuild starts `projection.events` again from 0 (a counter reset). Several
engines may share one meter provider: their figures add up (gauges: the highest), under the
same attributes.

In cluster mode, instrumenting the driver covers the driver's own process only.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

from . import __version__
from ._runtime.recorder import ERROR, FAILED, OUTCOMES, REJECTED, TIMEOUT
from ._statistics import projection_statistics
from .engine import Engine
from .errors import EventActorsError, Rejected

try:
    from opentelemetry import context, metrics, trace
    from opentelemetry.metrics import Observation
    from opentelemetry.trace import SpanKind, Status, StatusCode
except ImportError:  # without the extra, instrument() says what to install
    INSTALLED = False
else:
    INSTALLED = True

if TYPE_CHECKING:
    from opentelemetry.metrics import CallbackOptions, Meter, MeterProvider
    from opentelemetry.trace import Span, Tracer, TracerProvider

    from ._runtime.entity import EntityActor, Message
    from .records import EventEnvelope

__all__ = ["instrument", "uninstrument"]

ENTITY_TYPE = "eventactors.entity.type"
ENTITY_ID = "eventactors.entity.id"
ENTITY_REVISION = "eventactors.entity.revision"
COMMAND_TYPE = "eventactors.command.type"
COMMAND_ID = "eventactors.command.id"
COMMAND_OUTCOME = "eventactors.command.outcome"
COMMAND_EVENTS = "eventactors.command.events"
COMMAND_REJECTION = "eventactors.command.rejection"
PROJECTION_NAME = "eventactors.projection.name"
PROJECTION_BATCH_SIZE = "eventactors.projection.batch.size"
PROJECTION_FIRST = "eventactors.projection.position.first"
PROJECTION_LAST = "eventactors.projection.position.last"
PROJECTION_OUTCOME = "eventactors.projection.outcome"

#: Store writes take from about 10 microseconds (memory) to a second (a slow disk).
DURATION_BUCKETS = (
    0.00001, 0.000025, 0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025,
    0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
)  # fmt: skip
BATCH_BUCKETS = (1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000)
MISSING = "eventactors.telemetry needs OpenTelemetry: pip install 'eventactors[telemetry]'"


def instrument(
    engine: Engine,
    *,
    tracer_provider: TracerProvider | None = None,
    meter_provider: MeterProvider | None = None,
) -> None:
    """Starts tracing the engine's commands and projection batches and reporting its metrics,
    through the given providers (OpenTelemetry's global ones by default)."""
    if not INSTALLED:
        raise ImportError(MISSING)
    if not isinstance(engine, Engine):
        raise TypeError(f"instrument() takes an eventactors Engine, got {engine!r}")
    recorder = engine._recorder
    if recorder.hooks is not None:
        raise EventActorsError("this engine is already instrumented; uninstrument() it first")
    tracer = trace.get_tracer("eventactors", __version__, tracer_provider=tracer_provider)
    provider = meter_provider if meter_provider is not None else metrics.get_meter_provider()
    instruments = _INSTRUMENTS.get(provider)
    if instruments is None:
        meter = metrics.get_meter("eventactors", __version__, meter_provider=provider)
        instruments = _INSTRUMENTS[provider] = Instruments(meter)
    recorder.hooks = Bridge(engine, tracer, instruments)


def uninstrument(engine: Engine) -> None:
    """Stops the spans and the engine's share of the metrics; does nothing if not instrumented.
    (A meter's instruments outlive this: they report nothing more for this engine.)"""
    if not isinstance(engine, Engine):
        raise TypeError(f"uninstrument() takes an eventactors Engine, got {engine!r}")
    hooks = engine._recorder.hooks
    engine._recorder.hooks = None
    if isinstance(hooks, Bridge):
        hooks.close()


class Bridge:
    """The recorder's hooks, in OpenTelemetry terms; see `_runtime.recorder.Hooks`."""

    def __init__(self, engine: Engine, tracer: Tracer, instruments: Instruments) -> None:
        self.engine: Engine | None = engine
        self._tracer = tracer
        self._instruments = instruments
        self._root = context.Context()  # the parent of spans that have no caller
        # One attributes dict per entity type and per projection, not one per measurement.
        self._type_labels: dict[str, dict[str, str]] = {}
        self._projection_labels: dict[str, dict[str, str]] = {}
        instruments.bridges.append(self)

    def close(self) -> None:
        self.engine = None
        self._instruments.bridges.remove(self)

    # -- commands -------------------------------------------------------------------------

    def capture(self) -> Any:
        return context.get_current()

    def command_started(self, actor: EntityActor, message: Message) -> Any:
        parent = message.trace if message.trace is not None else self._root
        span = self._command_span(actor, message, parent)
        return span, context.attach(trace.set_span_in_context(span, parent))

    def command_ended(
        self,
        handle: Any,
        actor: EntityActor,
        outcome: str,
        events: int,
        error: BaseException | None,
    ) -> None:
        span, token = handle
        try:
            self._end_command(span, actor, outcome, events, error)
        finally:
            context.detach(token)

    def command_dropped(self, actor: EntityActor, message: Message) -> None:
        parent = message.trace if message.trace is not None else self._root
        span = self._command_span(actor, message, parent)
        self._end_command(span, actor, TIMEOUT, 0, None)

    def _command_span(self, actor: EntityActor, message: Message, parent: Any) -> Span:
        entity_type = actor.kind.name
        command_type = type(message.command).__qualname__
        return self._tracer.start_span(
            f"{entity_type} {command_type}",
            context=parent,
            kind=SpanKind.INTERNAL,
            attributes={
                ENTITY_TYPE: entity_type,
                ENTITY_ID: actor.entity_id,
                COMMAND_TYPE: command_type,
                COMMAND_ID: message.command_id,
            },
        )

    def _end_command(
        self, span: Span, actor: EntityActor, outcome: str, events: int, error: BaseException | None
    ) -> None:
        span.set_attribute(COMMAND_OUTCOME, outcome)
        span.set_attribute(COMMAND_EVENTS, events)
        span.set_attribute(ENTITY_REVISION, actor.revision)
        if outcome == REJECTED and isinstance(error, Rejected):
            span.set_attribute(COMMAND_REJECTION, error.reason)
        elif outcome in (ERROR, TIMEOUT):
            if error is not None:
                span.record_exception(error)
            reason = "the caller stopped waiting" if error is None else describe(error)
            span.set_status(Status(StatusCode.ERROR, reason))
        span.end()

    def appended(self, entity_type: str, seconds: float) -> None:
        labels = self._type_labels.get(entity_type)
        if labels is None:
            labels = self._type_labels[entity_type] = {ENTITY_TYPE: entity_type}
        self._instruments.append_duration.record(seconds, labels)

    # -- projections ----------------------------------------------------------------------

    def batch_started(self, projection: str, page: list[EventEnvelope]) -> Any:
        span = self._tracer.start_span(
            f"projection {projection}",
            context=self._root,
            kind=SpanKind.INTERNAL,
            attributes={
                PROJECTION_NAME: projection,
                PROJECTION_BATCH_SIZE: len(page),
                PROJECTION_FIRST: page[0].global_position or 0,
                PROJECTION_LAST: page[-1].global_position or 0,
            },
        )
        return span, context.attach(trace.set_span_in_context(span, self._root))

    def batch_ended(
        self, handle: Any, projection: str, size: int, outcome: str, error: BaseException | None
    ) -> None:
        span, token = handle
        try:
            span.set_attribute(PROJECTION_OUTCOME, outcome)
            if outcome == FAILED and error is not None:
                span.record_exception(error)
                span.set_status(Status(StatusCode.ERROR, describe(error)))
            span.end()
            labels = self._projection_labels.get(projection)
            if labels is None:
                labels = self._projection_labels[projection] = {PROJECTION_NAME: projection}
            self._instruments.batch_size.record(size, labels)
        finally:
            context.detach(token)


class Instruments:
    """One meter's instruments, shared by every engine instrumented on its provider: an
    instrument cannot be removed or created twice, so the callbacks read whichever engines
    are instrumented at collection time.

    The callbacks may run on the exporter's thread: they copy the engine's dicts in one C
    call (`tuple(d.values())`, atomic under the GIL) before looking through them.
    """

    def __init__(self, meter: Meter) -> None:
        self.bridges: list[Bridge] = []
        counter, gauge = meter.create_observable_counter, meter.create_observable_gauge
        counter("eventactors.commands", [self._commands], "{command}", "Commands handled")
        counter("eventactors.events.appended", [self._events], "{event}", "Events appended")
        counter(
            "eventactors.store.transactions", [self._transactions], "{transaction}",
            "Write transactions that carried appends, by the store's group commit",
        )  # fmt: skip
        counter(
            "eventactors.store.appends", [self._store_appends], "{append}",
            "Appends the store's group commit handled",
        )  # fmt: skip
        gauge(
            "eventactors.mailbox.depth", [self._mailbox_depth], "{command}",
            "The deepest entity mailbox since the previous collection",
        )  # fmt: skip
        gauge(
            "eventactors.mailbox.queued", [self._mailbox_queued], "{command}",
            "Commands waiting in all entity mailboxes",
        )  # fmt: skip
        gauge(
            "eventactors.projection.lag", [self._projection_lag], "{event}",
            "Positions between the known head of the log and the projection's offset",
        )  # fmt: skip
        gauge(
            "eventactors.projection.position", [self._projection_position], "{position}",
            "The projection's committed offset",
        )  # fmt: skip
        counter(
            "eventactors.projection.events", [self._projection_events], "{event}",
            "Events the projection handled",
        )  # fmt: skip
        self.append_duration = histogram(
            meter, "eventactors.append.duration", "s",
            "Store writes of accepted commands: event appends and durable-state writes",
            DURATION_BUCKETS,
        )  # fmt: skip
        self.batch_size = histogram(
            meter, "eventactors.projection.batch.size", "{event}",
            "Events per batch handed to a projection", BATCH_BUCKETS,
        )  # fmt: skip

    def _engines(self) -> list[Engine]:
        return [bridge.engine for bridge in tuple(self.bridges) if bridge.engine is not None]

    def _commands(self, options: CallbackOptions) -> Iterable[Observation]:
        totals: dict[tuple[str, str], int] = {}
        for engine in self._engines():
            for entity_type, counter in tuple(engine._recorder.commands.items()):
                for outcome in OUTCOMES:
                    key = (entity_type, outcome)
                    totals[key] = totals.get(key, 0) + getattr(counter, outcome)
        return [
            Observation(count, {ENTITY_TYPE: entity_type, COMMAND_OUTCOME: outcome})
            for (entity_type, outcome), count in totals.items()
        ]

    def _sum(self, value: Callable[[Engine], int | None]) -> list[Observation]:
        values = [v for v in map(value, self._engines()) if v is not None]
        return [Observation(sum(values))] if values else []

    def _events(self, options: CallbackOptions) -> Iterable[Observation]:
        return self._sum(lambda engine: engine._recorder.events_appended)

    def _transactions(self, options: CallbackOptions) -> Iterable[Observation]:
        return self._sum(lambda engine: write_count(engine, "transactions"))

    def _store_appends(self, options: CallbackOptions) -> Iterable[Observation]:
        return self._sum(lambda engine: write_count(engine, "appends"))

    def _mailbox_depth(self, options: CallbackOptions) -> Iterable[Observation]:
        peaks = [engine._recorder.take_mailbox_peak() for engine in self._engines()]
        return [Observation(max(peaks))] if peaks else []

    def _mailbox_queued(self, options: CallbackOptions) -> Iterable[Observation]:
        return self._sum(
            lambda engine: sum(
                len(actor.mailbox or ()) for actor in tuple(engine._entities.values())
            )
        )

    def _projections(self, field: str, combine: Callable[[list[int]], int]) -> list[Observation]:
        values: dict[str, list[int]] = {}
        for engine in self._engines():
            for name, status in projection_statistics(engine).items():
                values.setdefault(name, []).append(getattr(status, field))
        return [Observation(combine(v), {PROJECTION_NAME: name}) for name, v in values.items()]

    def _projection_lag(self, options: CallbackOptions) -> Iterable[Observation]:
        return self._projections("lag", max)

    def _projection_position(self, options: CallbackOptions) -> Iterable[Observation]:
        return self._projections("position", min)

    def _projection_events(self, options: CallbackOptions) -> Iterable[Observation]:
        return self._projections("events_handled", sum)


_INSTRUMENTS: weakref.WeakKeyDictionary[Any, Instruments] = weakref.WeakKeyDictionary()


def histogram(
    meter: Meter, name: str, unit: str, description: str, buckets: tuple[float, ...]
) -> Any:
    """A histogram with bucket boundaries fit for it, where the API takes the advice (1.30+)."""
    try:
        return meter.create_histogram(
            name, unit, description, explicit_bucket_boundaries_advisory=buckets
        )
    except TypeError:  # an older API: the SDK's default buckets
        return meter.create_histogram(name, unit, description)


def write_count(engine: Engine, field: str) -> int | None:
    write_statistics = getattr(engine.store, "write_statistics", None)
    return None if write_statistics is None else int(getattr(write_statistics(), field))


def describe(error: BaseException) -> str:
    return f"{type(error).__qualname__}: {error}"
