"""Stops entities that have been idle for their kind's `passivate_after`, freeing their memory.

Each kind keeps its idle actors in the order they went idle, so a sweep touches only the
actors it passivates (plus one), never the whole population.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable

from .entity import EntityActor
from .kinds import EntityKind
from .recorder import Recorder


def sweep(
    kinds: Iterable[EntityKind], now: float, forget: Callable[[str, EntityActor], None]
) -> int:
    """Passivates every actor idle past its deadline; returns how many."""
    passivated = 0
    for kind in kinds:
        if kind.passivate_after is None:
            continue
        idle = kind.idle
        deadline = now - kind.passivate_after
        while idle:
            persistence_id, actor = next(iter(idle.items()))
            if actor.last_active > deadline:
                break
            del idle[persistence_id]
            if actor.is_idle:
                forget(persistence_id, actor)
                passivated += 1
    return passivated


def sweep_interval(kinds: Iterable[EntityKind]) -> float | None:
    """A quarter of the shortest idle limit, between 10 ms and 1 s; None if nothing passivates."""
    limits = [kind.passivate_after for kind in kinds if kind.passivate_after is not None]
    if not limits:
        return None
    return min(1.0, max(0.01, min(limits) / 4))


async def run_sweeps(
    kinds: Callable[[], Iterable[EntityKind]],
    forget: Callable[[str, EntityActor], None],
    recorder: Recorder | None = None,
) -> None:
    """The engine's background task: sweep, sleep, repeat, until cancelled. It also samples
    the recorder's command count, at least once a second, for the commands-per-second rate."""
    loop = asyncio.get_running_loop()
    if recorder is not None:
        recorder.restart_rate()
    while True:
        interval = sweep_interval(kinds())
        await asyncio.sleep(interval if interval is not None else 1.0)
        sweep(kinds(), loop.time(), forget)
        if recorder is not None:
            recorder.sample_rate()
