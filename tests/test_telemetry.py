"""eventactors.telemetry: spans per command and per projection batch, and the metrics, seen
through the OpenTelemetry SDK's in-memory exporter and reader on private providers."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.trace import StatusCode
from otel_support import Otel, attributes, private_otel
from test_statistics import CounterBehavior, Fail, Hold, LedgerBehavior, Put, Refuse
from waits import wait_until

import eventactors as ea
from eventactors import telemetry

pytestmark = pytest.mark.timeout(60)

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def otel() -> Iterator[Otel]:
    with private_otel() as providers:
        yield providers


@pytest.fixture
async def engine(otel: Otel, tmp_path: Path) -> AsyncIterator[ea.Engine]:
    engine = ea.Engine(store=ea.SQLiteStore(tmp_path / "telemetry.db"))
    engine.register("ledger", LedgerBehavior, command_timeout=0.05)
    engine.register("counter", CounterBehavior)
    otel.instrument(engine)
    async with engine:
        yield engine
    telemetry.uninstrument(engine)


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
    otel.instrument(engine)
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
        "eventactors.engine.id": engine.statistics().engine_id,
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


async def test_a_command_dropped_because_its_caller_gave_up_has_a_timeout_span_ending_then(
    engine: ea.Engine, otel: Otel
) -> None:
    engine.register("slow", LedgerBehavior)  # no command_timeout: holds until released
    gate = asyncio.Event()
    held = asyncio.ensure_future(engine.send("slow", "busy", Hold(gate)))
    try:
        await wait_until(lambda: engine.statistics().busy_entities == 1)
        with pytest.raises(ea.CommandTimeout):
            await engine.send("slow", "busy", Put(), timeout=0.05)
        # ended when its caller gave up, while the entity is still busy with the Hold
        (dropped,) = otel.finished("slow Put")
        assert engine.statistics().busy_entities == 1
    finally:
        gate.set()  # a failure here must not leave the engine's stop waiting for the Hold
    assert attributes(dropped)["eventactors.command.outcome"] == "timeout"
    assert dropped.status.status_code is StatusCode.ERROR
    assert dropped.status.description == "the caller stopped waiting"
    assert dropped.start_time is not None and dropped.end_time is not None
    assert dropped.end_time - dropped.start_time >= 0.04e9  # from its send to its timeout
    await held
    await wait_until(lambda: engine.statistics().busy_entities == 0)
    assert len(otel.finished("slow Put")) == 1  # its turn came: dropped, not traced again


async def test_a_stop_while_a_batch_waits_for_the_store_ends_it_as_stopped_not_failed(
    otel: Otel,
) -> None:
    engine = ea.Engine()
    engine.register("ledger", LedgerBehavior)
    otel.instrument(engine)
    attempts: list[int] = []

    def down(envelope: ea.EventEnvelope) -> None:
        attempts.append(1)
        raise ea.StoreUnavailable("read model down")

    async with engine:
        await engine.send("ledger", "l", Put())
        await engine.add_projection("read-model", down)
        await wait_until(lambda: len(attempts) >= 2)  # waiting the outage out
        await engine.remove_projection("read-model")
    telemetry.uninstrument(engine)
    (batch,) = otel.finished("projection read-model")
    assert attributes(batch)["eventactors.projection.outcome"] == "stopped"
    assert batch.status.status_code is StatusCode.UNSET and not batch.events
    assert otel.points("eventactors.projection.batch.size") == {}  # not a batch handled
