"""Memory: resident bytes per idle live entity, measured in a fresh subprocess.

The child process starts an engine on `ea.MemoryStore`, with a behavior whose state is one
shared module-level frozen Struct and whose only command does nothing (returns None, so nothing
is persisted): what is measured is the engine's own cost per entity (whatever its actor and its
registry keep), not a state's. It notes the RSS (/proc/self/statm), makes
`memory_entities` entities live by sending each the no-op command, `memory_gather` at a time,
runs gc.collect(), notes the RSS again, and reports (after - before) / N, together with
`engine.statistics().live_entities` to show that they are all live (no passivation is set).
Before the first reading it makes one gather's worth of other entities live (not counted), so
that the memory one gather's transient tasks and futures occupy, which the allocator keeps for
reuse, is not charged to the entities measured.

Run on its own: python -m benchmarks.memory --entities 1000000 [--uvloop]
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import subprocess
import sys
import time
from functools import partial
from pathlib import Path
from typing import Any

import msgspec

import eventactors as ea

from .common import Context, guarded, log, rss_bytes

TARGET_BYTES = 512


def run(context: Context) -> dict[str, Any]:
    settings = context.settings
    results: dict[str, Any] = {
        "workload": {
            "entities": settings.memory_entities,
            "gather": settings.memory_gather,
            "store": "MemoryStore",
            "state": "one shared frozen msgspec.Struct; a no-op command (returns None)",
        },
        "target_bytes_per_entity": TARGET_BYTES,
    }
    measured = guarded("memory", partial(child, context))
    if "bytes_per_entity" in measured:
        measured["meets_target"] = measured["bytes_per_entity"] <= TARGET_BYTES
        log(
            f"memory: {measured['bytes_per_entity']:.0f} bytes per entity, "
            f"{measured['live_entities']:,} live"
        )
    return {**results, **measured}


def child(context: Context) -> dict[str, Any]:
    settings = context.settings
    command = [
        sys.executable, "-m", "benchmarks.memory", "--entities", str(settings.memory_entities),
        "--gather", str(settings.memory_gather),
    ]  # fmt: skip
    if context.loop == "uvloop":
        command.append("--uvloop")
    completed = subprocess.run(
        command, stdout=subprocess.PIPE, text=True, check=True, cwd=Path(__file__).parent.parent
    )
    result: dict[str, Any] = json.loads(completed.stdout.strip().splitlines()[-1])
    return result


# -- the child process --------------------------------------------------------------------


class Tiny(msgspec.Struct, frozen=True):
    pass


TINY = Tiny()


class Touch(msgspec.Struct, frozen=True):
    pass


class IdleBehavior(ea.EventSourcedBehavior[Tiny]):
    """Every entity shares the one state object; its command changes nothing."""

    commands = (Touch,)
    events = ()

    def initial_state(self) -> Tiny:
        return TINY

    def handle_command(self, state: Tiny, command: object) -> None:
        return None

    def handle_event(self, state: Tiny, event: object) -> Tiny:
        return state


async def measure(entities: int, gather: int) -> dict[str, Any]:
    started = time.perf_counter()

    def say(message: str) -> None:  # stderr: stdout carries the result
        print(f"  [memory {time.perf_counter() - started:6.1f}s] {message}", file=sys.stderr)

    engine = ea.Engine()
    engine.register("idle", IdleBehavior)
    touch = Touch()
    async with engine:
        # One gather's worth of warm-up entities first: the memory a gather's transient tasks
        # and futures take (which the allocator keeps) is then in the first reading already.
        await asyncio.gather(*(engine.send("idle", f"w{i}", touch) for i in range(gather)))
        gc.collect()
        before = rss_bytes()
        for start in range(0, entities, gather):
            stop = min(entities, start + gather)
            await asyncio.gather(*(engine.send("idle", f"e{i}", touch) for i in range(start, stop)))
            if stop % (entities // 10 or 1) < gather:
                say(f"{stop:,} entities live")
        gc.collect()
        after = rss_bytes()
        live = engine.statistics().live_entities - gather  # without the warm-up entities
    return {
        "entities": entities,
        "live_entities": live,
        "rss_before": before,
        "rss_after": after,
        "bytes_per_entity": round((after - before) / entities, 1),
        "seconds": round(time.perf_counter() - started, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--entities", type=int, default=1_000_000)
    parser.add_argument("--gather", type=int, default=10_000)
    parser.add_argument("--uvloop", action="store_true")
    args = parser.parse_args()
    factory = None
    if args.uvloop:
        import uvloop

        factory = uvloop.new_event_loop
    with asyncio.Runner(loop_factory=factory) as runner:
        result = runner.run(measure(args.entities, args.gather))
    print(json.dumps(result))


if __name__ == "__main__":
    main()
