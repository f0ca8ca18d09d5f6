"""How `Engine.stop()` lets mailboxes drain, and gives up on them at its deadline."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable

from .entity import EntityActor

#: How long `stop(drain_timeout=)` waits for cancelled work to end before leaving it behind.
CANCEL_GRACE = 1.0


async def drain_mailboxes(
    actors: Callable[[], Iterable[EntityActor]], deadline: float | None
) -> None:
    """Waits until no entity is busy; past `deadline` (loop time), cancels what still runs.

    A handler that ignores its cancellation keeps its task alive: its callers are failed with
    `EngineNotStarted` and stop goes on without it, rather than waiting forever.
    """
    loop = asyncio.get_running_loop()
    while busy := [actor.task for actor in actors() if actor.task]:
        remaining = None if deadline is None else max(0.0, deadline - loop.time())
        _, pending = await asyncio.wait(busy, timeout=remaining)
        if pending and deadline is not None and loop.time() >= deadline:
            for task in pending:
                task.cancel()
            _, stubborn = await asyncio.wait(pending, timeout=CANCEL_GRACE)
            for actor in actors():
                if actor.task in stubborn:
                    actor.abandon_callers()
            return
