"""OpenTelemetry traces and metrics for an engine (the optional extra `eventactors[telemetry]`).

    from eventactors import telemetry

    telemetry.instrument(engine)  # the global providers; or tracer_provider=, meter_provider=
    ...
    telemetry.uninstrument(engine)

Nothing here runs until `instrument` is called: the engine keeps its tallies anyway (they are
what `Engine.statistics()` reads), and the metrics below are observable instruments reading
them at collection time. Only the spans and the two histograms add work per command.

Spans (kind INTERNAL), each with `eventactors.engine.id`:

- `<entity type> <CommandType>`, one per command, from its turn in the mailbox to the reply
  (the handler, the append and the apply), and current while the handler runs. Its parent is
  the span that was current when `send` was called. Attributes: `eventactors.entity.type`,
  `eventactors.entity.id`, `eventactors.command.type`, `eventactors.command.id`,
  `eventactors.command.outcome` (`accepted`, `rejected`, `error`, `timeout`; `retried` when
  `send_by` sends the command again, because its keys moved or its creation lost them to
  another entity), `eventactors.command.events` (events persisted) and
  `eventactors.entity.revision` (after the command). Status ERROR, with the exception
  recorded, for `error` and `timeout`; a rejection is an answer, not an error: it sets
  `eventactors.command.rejection` to the reason. A command that never runs (its caller's
  timeout passed first, or the engine stopped) has a span from its send to that moment.
- `projection <name>`, one per batch a projection hands to its handler and commits (a root
  span, current while the handler runs). Attributes: `eventactors.projection.name`,
  `eventactors.projection.batch.size`, `eventactors.projection.position.first` and `.last`
  (global positions), `eventactors.projection.outcome` (`handled`; `skipped`: the policy
  skipped an event; `failed`: the projection failed, with status ERROR; `stopped`: the
  engine stopped while the batch waited for the store, not an error).

Metrics (meter `eventactors`), each data point with `eventactors.engine.id`:

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

(Attribute names take the `eventactors.` prefix too.) `engine.id` is a short random id per
`Engine` object (`statistics().engine_id`): several engines on one meter provider report
apart, so that none of their counters goes backwards when one is uninstrumented or freed.
`append.duration` times each store write of an accepted command that changed something: an
event append or a durable-state write. `store.transactions` and `store.appends` are the
store's group-commit counts (for a store with `write_statistics()`): their rates' ratio is the
mean group-commit batch. Engines sharing a store object each report the store's counts: take
one of them, do not add them up. `mailbox.depth` is the deepest entity mailbox at collection,
`mailbox.queued` the commands waiting in all of them. `projection.lag` is the engine's known
head minus the projection's committed offset, in positions; a partitioned projection reports
each partition under its own name, and a rebuild starts `projection.events` again from 0 (a
counter reset). The gauges report running engines only. An engine is held by weak reference:
dropping it without `uninstrument` frees it, and its series end.

In cluster mode, instrumenting the driver covers the driver's own process only.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from . import __version__
from .engine import Engine
from .errors import EventActorsError

try:
    from opentelemetry import trace
except ImportError:  # without the extra, instrument() says what to install
    _INSTALLED = False
else:
    _INSTALLED = True
    from ._telemetry_metrics import instruments_for
    from ._telemetry_spans import Bridge

if TYPE_CHECKING:
    from opentelemetry.metrics import MeterProvider
    from opentelemetry.trace import TracerProvider

__all__ = ["instrument", "uninstrument"]

_MISSING = "eventactors.telemetry needs OpenTelemetry: pip install 'eventactors[telemetry]'"


def instrument(
    engine: Engine,
    *,
    tracer_provider: TracerProvider | None = None,
    meter_provider: MeterProvider | None = None,
) -> None:
    """Starts tracing the engine's commands and projection batches and reporting its metrics,
    through the given providers (OpenTelemetry's global ones by default)."""
    if not _INSTALLED:
        raise ImportError(_MISSING)
    if not isinstance(engine, Engine):
        raise TypeError(f"instrument() takes an eventactors Engine, got {engine!r}")
    recorder = engine._recorder
    if recorder.hooks is not None:
        raise EventActorsError("this engine is already instrumented; uninstrument() it first")
    tracer = trace.get_tracer("eventactors", __version__, tracer_provider=tracer_provider)
    instruments = instruments_for(meter_provider)
    recorder.hooks = Bridge(engine, recorder.engine_id, tracer, instruments)


def uninstrument(engine: Engine) -> None:
    """Stops the spans and the engine's share of the metrics; does nothing if not instrumented.
    (A meter's instruments outlive this: they report nothing more for this engine.)"""
    if not isinstance(engine, Engine):
        raise TypeError(f"uninstrument() takes an eventactors Engine, got {engine!r}")
    hooks = engine._recorder.hooks
    engine._recorder.hooks = None
    if _INSTALLED and isinstance(hooks, Bridge):
        hooks.close()
