"""eventactors.telemetry: spans per command and per projection batch, and the metrics, seen
through the OpenTelemetry SDK's in-memory exporter and reader on private providers."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from opentelemetry import trace
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader, Metric
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import StatusCode
from test_statistics import CounterBehavior, Fail, Hold, LedgerBehavior, Put, Refuse
from waits import wait_until

import eventactors as ea
from eventactors import telemetry

pytestmark = pytest.mark.timeout(60)

ROOT = Path(__file__).resolve().parent.parent


@dataclass
class Otel:
    spans: InMemorySpanExporter
    metrics: InMemoryMetricReader
    tracer_provider: TracerProvider
    meter_provider: MeterProvider

    def finished(self, name: str) -> list[ReadableSpan]:
        return [span for span in self.spans.get_finished_spans() if span.name == name]

    def collect(self) -> dict[str, Metric]:
        data = self.metrics.get_metrics_data()
        assert data is not None
        return {
            metric.name: metric
            for resource in data.resource_metrics
            for scope in resource.scope_metrics
            for metric in scope.metrics
        }


@pytest.fixture
def otel() -> Iterator[Otel]:
    spans = InMemorySpanExporter()
    tracer_provider = TracerProvider()
    tracer_provider.add_span_processor(SimpleSpanProcessor(spans))
    reader = InMemoryMetricReader()
    meter_provider = MeterProvider(metric_readers=[reader])
    yield Otel(spans, reader, tracer_provider, meter_provider)
    meter_provider.shutdown()
    tracer_provider.shutdown()


@pytest.fixture
async def engine(otel: Otel, tmp_path: Path) -> AsyncIterator[ea.Engine]:
    engine = ea.Engine(store=ea.SQLiteStore(tmp_path / "telemetry.db"))
    engine.register("ledger", LedgerBehavior, command_timeout=0.05)
    engine.register("counter", CounterBehavior)
    telemetry.instrument(
        engine, tracer_provider=otel.tracer_provider, meter_provider=otel.meter_provider
    )
    async with engine:
        yield engine
    telemetry.uninstrument(engine)


def attributes(span: ReadableSpan) -> dict[str, Any]:
    return dict(span.attributes or {})


def command_attributes(entity_id: str, outcome: str, events: int, revision: int) -> dict[str, Any]:
    return {
        "eventactors.entity.type": "ledger",
        "eventactors.entity.id": entity_id,
        "eventactors.command.outcome": outcome,
        "eventactors.command.events": events,
        "eventactors.entity.revision": revision,
    }


def subset(span: ReadableSpan, expected: dict[str, Any]) -> dict[str, Any]:
    return {key: attributes(span).get(key) for key in expected}


async def test_a_span_per_command_with_its_outcome(engine: ea.Engine, otel: Otel) -> None:
    await engine.send("ledger", "l", Put(2))
    with pytest.raises(ea.Rejected):
        await engine.send("ledger", "l", Refuse("closed"))
    with pytest.raises(ValueError):
        await engine.send("ledger", "l", Fail())
    with pytest.raises(ea.CommandTimeout):
        await engine.send("ledger", "l", Hold(asyncio.Event()))

    (accepted,) = otel.finished("ledger Put")
    expected = command_attributes("l", "accepted", 2, 2)
    assert subset(accepted, expected) == expected
    assert attributes(accepted)["eventactors.command.type"] == "Put"
    assert attributes(accepted)["eventactors.command.id"]
    assert accepted.status.status_code is StatusCode.UNSET
    assert accepted.kind is trace.SpanKind.INTERNAL and accepted.parent is None

    (rejected,) = otel.finished("ledger Refuse")
    expected = {
        **command_attributes("l", "rejected", 0, 2),
        "eventactors.command.rejection": "closed",
    }
    assert subset(rejected, expected) == expected
    assert rejected.status.status_code is StatusCode.UNSET  # an answer, not a failure

    (failed,) = otel.finished("ledger Fail")
    expected = command_attributes("l", "error", 0, 2)
    assert subset(failed, expected) == expected
    assert failed.status.status_code is StatusCode.ERROR
    assert failed.status.description == "ValueError: the handler failed"
    assert [event.name for event in failed.events] == ["exception"]

    (timed_out,) = otel.finished("ledger Hold")
    assert attributes(timed_out)["eventactors.command.outcome"] == "timeout"
    assert timed_out.status.status_code is StatusCode.ERROR


async def test_the_span_covers_handler_append_and_apply_and_ends_before_the_reply(
    engine: ea.Engine, otel: Otel
) -> None:
    await engine.send("counter", "c", object())
    (span,) = otel.finished("counter object")  # ended by the time the caller has its reply
    assert attributes(span)["eventactors.command.outcome"] == "accepted"
    assert attributes(span)["eventactors.entity.revision"] == 1
    assert span.start_time is not None and span.end_time is not None
    assert span.end_time > span.start_time


async def test_the_caller_span_is_the_parent_even_behind_another_caller_in_the_mailbox(
    engine: ea.Engine, otel: Otel
) -> None:
    tracer = otel.tracer_provider.get_tracer("test")
    gate = asyncio.Event()

    async def call(name: str, command: Any) -> trace.SpanContext:
        with tracer.start_as_current_span(name) as caller:
            await engine.send("ledger", "shared", command)
            return caller.get_span_context()

    first = asyncio.ensure_future(call("first caller", Hold(gate)))
    await wait_until(lambda: engine.statistics().busy_entities == 1)
    second = asyncio.ensure_future(call("second caller", Put()))
    await wait_until(lambda: engine.statistics().queued_messages == 1)
    gate.set()
    first_caller, second_caller = await asyncio.gather(first, second)

    (held,) = otel.finished("ledger Hold")
    (put,) = otel.finished("ledger Put")
    assert held.parent is not None and held.parent.span_id == first_caller.span_id
    assert put.parent is not None and put.parent.span_id == second_caller.span_id
    assert put.context is not None and put.context.trace_id == second_caller.trace_id


async def test_the_command_span_is_current_while_the_handler_runs(
    otel: Otel, tmp_path: Path
) -> None:
    seen: list[trace.SpanContext] = []

    class Spying(CounterBehavior):
        def handle_command(self, state: Any, command: Any) -> Any:
            seen.append(trace.get_current_span().get_span_context())
            return super().handle_command(state, command)

    engine = ea.Engine()
    engine.register("spy", Spying)
    telemetry.instrument(
        engine, tracer_provider=otel.tracer_provider, meter_provider=otel.meter_provider
    )
    async with engine:
        await engine.send("spy", "s", object())
    telemetry.uninstrument(engine)
    (span,) = otel.finished("spy object")
    assert span.context is not None and seen == [span.context]


async def test_a_span_per_projection_batch(engine: ea.Engine, otel: Otel) -> None:
    for n in range(3):
        await engine.send("ledger", f"l-{n}", Put(2))
    handled: list[int] = []
    await engine.add_projection(
        "numbers", lambda page: handled.extend(e.global_position for e in page), batched=True
    )
    await engine.wait_for_projection("numbers")
    (batch,) = otel.finished("projection numbers")
    assert attributes(batch) == {
        "eventactors.projection.name": "numbers",
        "eventactors.projection.batch.size": 6,
        "eventactors.projection.position.first": 1,
        "eventactors.projection.position.last": 6,
        "eventactors.projection.outcome": "handled",
    }
    assert batch.parent is None and batch.status.status_code is StatusCode.UNSET

    def broken(envelope: ea.EventEnvelope) -> None:
        raise RuntimeError("read model unavailable")

    await engine.add_projection("broken", broken)
    await wait_until(lambda: engine.projection_status("broken").state is ea.ProjectionState.FAILED)
    (failed,) = otel.finished("projection broken")
    assert attributes(failed)["eventactors.projection.outcome"] == "failed"
    assert failed.status.status_code is StatusCode.ERROR


async def test_metrics_names_units_and_attributes(engine: ea.Engine, otel: Otel) -> None:
    await engine.add_projection("all", lambda envelope: None)
    for n in range(4):
        await engine.send("ledger", f"l-{n}", Put())
    with pytest.raises(ea.Rejected):
        await engine.send("ledger", "l-0", Refuse("no"))
    await engine.send("counter", "c", object())
    await engine.wait_for_projection("all")

    metrics = otel.collect()
    units = {name: metric.unit for name, metric in metrics.items()}
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

    def points(name: str) -> dict[tuple[tuple[str, Any], ...], Any]:
        return {
            tuple(sorted((point.attributes or {}).items())): point
            for point in metrics[name].data.data_points
        }

    commands = {key: point.value for key, point in points("eventactors.commands").items()}
    type_key, outcome_key = "eventactors.entity.type", "eventactors.command.outcome"
    assert commands[((outcome_key, "accepted"), (type_key, "ledger"))] == 4
    assert commands[((outcome_key, "rejected"), (type_key, "ledger"))] == 1
    assert commands[((outcome_key, "error"), (type_key, "ledger"))] == 0
    assert commands[((outcome_key, "accepted"), (type_key, "counter"))] == 1

    durations = points("eventactors.append.duration")
    assert durations[((type_key, "ledger"),)].count == 4
    assert durations[((type_key, "counter"),)].count == 1
    assert durations[((type_key, "ledger"),)].sum > 0
    assert points("eventactors.events.appended")[()].value == 4
    assert points("eventactors.store.appends")[()].value == 4
    assert points("eventactors.store.transactions")[()].value >= 1
    assert points("eventactors.mailbox.depth")[()].value == 1
    assert points("eventactors.mailbox.queued")[()].value == 0

    projection = (("eventactors.projection.name", "all"),)
    assert points("eventactors.projection.lag")[projection].value == 0
    assert points("eventactors.projection.position")[projection].value == 4
    assert points("eventactors.projection.events")[projection].value == 4
    batches = points("eventactors.projection.batch.size")[projection]
    assert batches.sum == 4 and batches.count >= 1


async def test_the_mailbox_depth_gauge_reports_the_peak_since_the_last_collection(
    engine: ea.Engine, otel: Otel
) -> None:
    gate = asyncio.Event()
    held = asyncio.ensure_future(engine.send("ledger", "busy", Hold(gate)))
    await wait_until(lambda: engine.statistics().busy_entities == 1)
    waiting = [asyncio.ensure_future(engine.send("ledger", "busy", Put())) for _ in range(3)]
    await wait_until(lambda: engine.statistics().queued_messages == 3)
    metrics = otel.collect()
    assert metrics["eventactors.mailbox.depth"].data.data_points[0].value == 3
    assert metrics["eventactors.mailbox.queued"].data.data_points[0].value == 3
    gate.set()
    await asyncio.gather(held, *waiting)
    metrics = otel.collect()
    assert metrics["eventactors.mailbox.depth"].data.data_points[0].value == 0
    assert engine.statistics().max_mailbox_depth == 3


async def test_uninstrument_stops_spans_and_metrics_and_instrument_again_works(
    otel: Otel,
) -> None:
    engine = ea.Engine()
    engine.register("counter", CounterBehavior)
    providers = {"tracer_provider": otel.tracer_provider, "meter_provider": otel.meter_provider}
    telemetry.instrument(engine, **providers)
    with pytest.raises(ea.EventActorsError, match="already instrumented"):
        telemetry.instrument(engine, **providers)
    async with engine:
        await engine.send("counter", "c", object())
        telemetry.uninstrument(engine)
        telemetry.uninstrument(engine)  # a second time does nothing
        await engine.send("counter", "c", object())
        assert len(otel.finished("counter object")) == 1
        data = otel.metrics.get_metrics_data()
        names = {
            metric.name
            for resource in (data.resource_metrics if data else [])
            for scope in resource.scope_metrics
            for metric in scope.metrics
            if metric.data.data_points
        }
        assert "eventactors.commands" not in names
        telemetry.instrument(engine, **providers)  # the same meter: its instruments again
        await engine.send("counter", "c", object())
        assert len(otel.finished("counter object")) == 2
        commands = otel.collect()["eventactors.commands"].data.data_points
        assert {point.value for point in commands} == {3, 0}
    telemetry.uninstrument(engine)


def test_instrument_refuses_what_is_not_an_engine(otel: Otel) -> None:
    with pytest.raises(TypeError, match="Engine"):
        telemetry.instrument("engine")  # type: ignore[arg-type]


def run_python(code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=60
    )


def test_importing_and_running_eventactors_does_not_import_opentelemetry() -> None:
    code = (
        "import asyncio, sys\n"
        "import eventactors as ea\n"
        "from eventactors_examples.bank.domain import AccountBehavior, Open\n"
        "async def main():\n"
        "    async with ea.Engine() as engine:\n"
        "        engine.register('account', AccountBehavior)\n"
        "        await engine.send('account', 'a', Open('ann'))\n"
        "        engine.statistics()\n"
        "asyncio.run(main())\n"
        "print(sorted(m for m in sys.modules if m.startswith('opentelemetry')))\n"
    )
    result = run_python(code)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


def test_without_the_extra_instrument_says_what_to_install() -> None:
    code = (
        "import sys\n"
        "sys.modules['opentelemetry'] = None  # as if the extra were not installed\n"
        "import eventactors as ea\n"
        "from eventactors import telemetry\n"
        "try:\n"
        "    telemetry.instrument(ea.Engine())\n"
        "except ImportError as exc:\n"
        "    print(exc)\n"
    )
    result = run_python(code)
    assert result.returncode == 0, result.stderr
    assert "pip install 'eventactors[telemetry]'" in result.stdout


async def test_a_command_dropped_because_its_caller_gave_up_has_a_timeout_span(
    engine: ea.Engine, otel: Otel
) -> None:
    gate = asyncio.Event()
    held = asyncio.ensure_future(engine.send("ledger", "busy", Hold(gate)))
    await wait_until(lambda: engine.statistics().busy_entities == 1)
    with pytest.raises(ea.CommandTimeout):
        await engine.send("ledger", "busy", Put(), timeout=0.02)
    gate.set()
    await held
    await wait_until(lambda: len(otel.finished("ledger Put")) == 1)
    (dropped,) = otel.finished("ledger Put")
    assert attributes(dropped)["eventactors.command.outcome"] == "timeout"
    assert dropped.status.status_code is StatusCode.ERROR
    assert dropped.status.description == "the caller stopped waiting"
