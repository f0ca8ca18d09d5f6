"""The `eventactors.*` metrics (see `eventactors.telemetry`): observable instruments that read
each instrumented engine's `snapshot` at collection time, and the two histograms the span
bridge records into. Imported only once OpenTelemetry is known to be installed."""

from __future__ import annotations

import contextlib
import weakref
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

from opentelemetry import metrics
from opentelemetry.metrics import CallbackOptions, Meter, MeterProvider, Observation

from . import __version__
from ._runtime.recorder import OUTCOMES
from ._statistics import Snapshot, snapshot

if TYPE_CHECKING:
    from .engine import Engine

ENGINE_ID = "eventactors.engine.id"
ENTITY_TYPE = "eventactors.entity.type"
COMMAND_OUTCOME = "eventactors.command.outcome"
PROJECTION_NAME = "eventactors.projection.name"

#: Store writes take from about 10 microseconds (memory) to a second (a slow disk).
DURATION_BUCKETS = (
    0.00001, 0.000025, 0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025,
    0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
)  # fmt: skip
BATCH_BUCKETS = (1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000)

Attributes = dict[str, str]


class Instruments:
    """One meter's instruments, shared by every engine instrumented on its provider: an
    instrument cannot be removed or created twice, so the callbacks read whichever engines
    are instrumented, and still alive, at collection time.

    Engines are held by weak reference: one that is dropped without `uninstrument` is freed,
    and its figures go with it. Every data point carries its engine's `eventactors.engine.id`,
    so no figure adds up several engines, and none goes backwards when one goes away. Gauges
    report running engines only: a stopped engine's mailboxes and lag are not news.

    The callbacks may run on an exporter's thread: they only read, through `snapshot`, and
    copy the list of engines in one C call first; the event loop alone adds engines, and
    a weak reference's callback (a `list.remove`, atomic under the GIL) drops them.
    """

    def __init__(self, meter: Meter) -> None:
        self._engines: list[weakref.ref[Engine]] = []
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
            "Commands waiting in the deepest entity mailbox",
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

    def add(self, engine: Engine) -> weakref.ref[Engine]:
        """Reports `engine` from now on, until `remove` or its collection."""
        reference = weakref.ref(engine, self.remove)
        self._engines.append(reference)
        return reference

    def remove(self, reference: weakref.ref[Engine]) -> None:
        with contextlib.suppress(ValueError):  # removed already
            self._engines.remove(reference)

    # -- the callbacks --------------------------------------------------------------------

    def _snapshots(self, *, running_only: bool) -> list[Snapshot]:
        engines = [reference() for reference in tuple(self._engines)]
        return [
            snapshot(engine)
            for engine in engines
            if engine is not None and (engine.is_running or not running_only)
        ]

    def _per_engine(
        self, value: Callable[[Snapshot], int | None], *, running_only: bool = False
    ) -> list[Observation]:
        observations = []
        for figures in self._snapshots(running_only=running_only):
            measured = value(figures)
            if measured is not None:
                observations.append(Observation(measured, {ENGINE_ID: figures.engine_id}))
        return observations

    def _per_projection(self, field: str, *, running_only: bool) -> list[Observation]:
        return [
            Observation(
                getattr(status, field), {ENGINE_ID: figures.engine_id, PROJECTION_NAME: name}
            )
            for figures in self._snapshots(running_only=running_only)
            for name, status in figures.projections.items()
        ]

    def _commands(self, options: CallbackOptions) -> Iterable[Observation]:
        return [
            Observation(
                getattr(counts, outcome),
                {ENGINE_ID: figures.engine_id, ENTITY_TYPE: name, COMMAND_OUTCOME: outcome},
            )
            for figures in self._snapshots(running_only=False)
            for name, counts in figures.commands_by_type.items()
            for outcome in OUTCOMES
        ]

    def _events(self, options: CallbackOptions) -> Iterable[Observation]:
        return self._per_engine(lambda figures: figures.events_appended)

    def _transactions(self, options: CallbackOptions) -> Iterable[Observation]:
        return self._per_engine(lambda figures: store_writes(figures, 1))

    def _store_appends(self, options: CallbackOptions) -> Iterable[Observation]:
        return self._per_engine(lambda figures: store_writes(figures, 0))

    def _mailbox_depth(self, options: CallbackOptions) -> Iterable[Observation]:
        return self._per_engine(lambda figures: figures.deepest_mailbox, running_only=True)

    def _mailbox_queued(self, options: CallbackOptions) -> Iterable[Observation]:
        return self._per_engine(lambda figures: figures.queued_messages, running_only=True)

    def _projection_lag(self, options: CallbackOptions) -> Iterable[Observation]:
        return self._per_projection("lag", running_only=True)

    def _projection_position(self, options: CallbackOptions) -> Iterable[Observation]:
        return self._per_projection("position", running_only=True)

    def _projection_events(self, options: CallbackOptions) -> Iterable[Observation]:
        return self._per_projection("events_handled", running_only=False)


_INSTRUMENTS: weakref.WeakKeyDictionary[Any, Instruments] = weakref.WeakKeyDictionary()


def instruments_for(provider: MeterProvider | None) -> Instruments:
    """The instruments of `provider` (OpenTelemetry's global one if None), made once."""
    if provider is None:
        provider = metrics.get_meter_provider()
    instruments = _INSTRUMENTS.get(provider)
    if instruments is None:
        meter = metrics.get_meter("eventactors", __version__, meter_provider=provider)
        instruments = _INSTRUMENTS[provider] = Instruments(meter)
    return instruments


def store_writes(figures: Snapshot, index: int) -> int | None:
    """The store's appends (0) or write transactions (1), if it reports them. Engines that
    share a store each report the store's figures: compare them, do not add them up."""
    return None if figures.store_writes is None else figures.store_writes[index]


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
