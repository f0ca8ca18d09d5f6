"""The spans of `eventactors.telemetry`: the recorder's hooks in OpenTelemetry terms, which
also record the two histograms measured per store write and per projection batch. Imported
only once OpenTelemetry is known to be installed."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from opentelemetry import context, trace
from opentelemetry.trace import Span, SpanKind, Status, StatusCode, Tracer

from ._runtime.recorder import ERROR, REJECTED, STOPPED, TIMEOUT
from ._telemetry_metrics import ENGINE_ID, ENTITY_TYPE, PROJECTION_NAME, Attributes, Instruments
from .errors import Rejected

if TYPE_CHECKING:
    from ._runtime.entity import EntityActor
    from ._runtime.message import Message
    from .engine import Engine
    from .records import EventEnvelope

ENTITY_ID = "eventactors.entity.id"
ENTITY_REVISION = "eventactors.entity.revision"
COMMAND_TYPE = "eventactors.command.type"
COMMAND_ID = "eventactors.command.id"
COMMAND_OUTCOME = "eventactors.command.outcome"
COMMAND_EVENTS = "eventactors.command.events"
COMMAND_REJECTION = "eventactors.command.rejection"
PROJECTION_BATCH_SIZE = "eventactors.projection.batch.size"
PROJECTION_FIRST = "eventactors.projection.position.first"
PROJECTION_LAST = "eventactors.projection.position.last"
PROJECTION_OUTCOME = "eventactors.projection.outcome"


class SpanHandle:
    """A running command's or batch's span, and the context token that made it current."""

    __slots__ = ("span", "token")

    def __init__(self, span: Span, token: object) -> None:
        self.span = span
        self.token = token


class Bridge:
    """The recorder's hooks (see `_runtime.recorder.Hooks`) for one engine, which it holds by
    weak reference only, through `Instruments`. Called on the event loop's thread."""

    def __init__(self, engine: Engine, engine_id: str, tracer: Tracer, instruments: Instruments):
        self._engine = instruments.add(engine)
        self._engine_id = engine_id
        self._tracer = tracer
        self._instruments = instruments
        self._root = context.Context()  # the parent of spans that have no caller
        # One attributes dict per entity type and per projection, not one per measurement.
        self._type_labels: dict[str, Attributes] = {}
        self._projection_labels: dict[str, Attributes] = {}

    def close(self) -> None:
        self._instruments.remove(self._engine)

    # -- commands -------------------------------------------------------------------------

    def capture(self) -> Any:
        """The caller's context, and when it sent: a command that never runs has a span from
        its send to when it was dropped."""
        return context.get_current(), time.time_ns()

    def command_started(self, actor: EntityActor, message: Message) -> Any:
        parent = self._parent(message.trace)
        span = self._command_span(actor, message, parent, None)
        return SpanHandle(span, context.attach(trace.set_span_in_context(span, parent)))

    def command_ended(
        self,
        handle: Any,
        actor: EntityActor,
        outcome: str,
        events: int,
        error: BaseException | None,
    ) -> None:
        try:
            if handle.span.is_recording():  # else ended when the engine abandoned it
                self._end_command(handle.span, actor, outcome, events, error)
        finally:
            context.detach(handle.token)

    def command_dropped(
        self, actor: EntityActor, message: Message, outcome: str, error: BaseException | None
    ) -> None:
        sent = message.trace[1] if isinstance(message.trace, tuple) else None
        span = self._command_span(actor, message, self._parent(message.trace), sent)
        self._end_command(span, actor, outcome, 0, error)

    def command_abandoned(self, handle: Any, actor: EntityActor, error: BaseException) -> None:
        if isinstance(handle, SpanHandle):  # begun by this bridge: no span otherwise
            self._end_command(handle.span, actor, ERROR, 0, error)

    def _parent(self, captured: Any) -> Any:
        return captured[0] if isinstance(captured, tuple) else self._root

    def _command_span(
        self, actor: EntityActor, message: Message, parent: Any, start_time: int | None
    ) -> Span:
        entity_type = actor.kind.name
        command_type = type(message.command).__qualname__
        return self._tracer.start_span(
            f"{entity_type} {command_type}",
            context=parent,
            kind=SpanKind.INTERNAL,
            attributes={
                ENGINE_ID: self._engine_id,
                ENTITY_TYPE: entity_type,
                ENTITY_ID: actor.entity_id,
                COMMAND_TYPE: command_type,
                COMMAND_ID: message.command_id,
            },
            start_time=start_time,
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
            labels = self._type_labels[entity_type] = {
                ENGINE_ID: self._engine_id,
                ENTITY_TYPE: entity_type,
            }
        self._instruments.append_duration.record(seconds, labels)

    # -- projections ----------------------------------------------------------------------

    def batch_started(self, projection: str, page: list[EventEnvelope]) -> Any:
        span = self._tracer.start_span(
            f"projection {projection}",
            context=self._root,
            kind=SpanKind.INTERNAL,
            attributes={
                ENGINE_ID: self._engine_id,
                PROJECTION_NAME: projection,
                PROJECTION_BATCH_SIZE: len(page),
                PROJECTION_FIRST: page[0].global_position or 0,
                PROJECTION_LAST: page[-1].global_position or 0,
            },
        )
        return SpanHandle(span, context.attach(trace.set_span_in_context(span, self._root)))

    def batch_ended(
        self, handle: Any, projection: str, size: int, outcome: str, error: BaseException | None
    ) -> None:
        span = handle.span
        try:
            span.set_attribute(PROJECTION_OUTCOME, outcome)
            if error is not None and outcome != STOPPED:
                span.record_exception(error)
                span.set_status(Status(StatusCode.ERROR, describe(error)))
            span.end()
            if outcome != STOPPED:  # a stop is not a batch the handler finished with
                self._instruments.batch_size.record(size, self._labels(projection))
        finally:
            context.detach(handle.token)

    def projection_removed(self, projection: str) -> None:
        self._projection_labels.pop(projection, None)

    def _labels(self, projection: str) -> Attributes:
        labels = self._projection_labels.get(projection)
        if labels is None:
            labels = self._projection_labels[projection] = {
                ENGINE_ID: self._engine_id,
                PROJECTION_NAME: projection,
            }
        return labels


def describe(error: BaseException) -> str:
    return f"{type(error).__qualname__}: {error}"
