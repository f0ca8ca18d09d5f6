"""A projection (or one slice-range partition of it) as a named Ray actor: a singleton in the
cluster, because Ray allows one live actor per name, and restarted by Ray when it dies. It
resumes from its stored offset, like any projection after a restart."""

from __future__ import annotations

import logging
import threading
import time
from typing import TYPE_CHECKING, Any

from ..projections import ProjectionStatus
from .app_spec import AppSpec
from .shard_host import EngineHost

if TYPE_CHECKING:
    from ..engine import Engine

log = logging.getLogger("eventactors.cluster")


class ProjectionHost(EngineHost):
    def __init__(self, spec: AppSpec, name: str, options: dict[str, Any]) -> None:
        super().__init__(spec, None)
        self.name = name
        self._options = options
        import ray

        if ray.is_initialized() and ray.get_runtime_context().get_actor_id() is not None:
            # Restarted by Ray, nobody may call it for a while: it starts itself. A call made
            # now fails while Ray still counts the actor as restarting, so a thread retries.
            handle = ray.get_runtime_context().current_actor
            threading.Thread(target=_start_until_started, args=(handle, name), daemon=True).start()

    async def on_build(self, engine: Engine) -> None:
        await engine.add_projection(self.name, **self._options)

    async def start(self) -> ProjectionStatus:
        engine = await self.engine()
        return engine.projection_status(self.name)

    async def status(self) -> ProjectionStatus:
        return (await self.engine()).projection_status(self.name)

    async def is_running(self) -> bool:
        return await (await self.engine()).is_projection_running(self.name)

    async def wait(self, head: int, timeout: float) -> ProjectionStatus:
        engine = await self.engine()
        return await engine._wait_for_projection_at(self.name, head, timeout)

    async def rebuild(self) -> ProjectionStatus:
        return await (await self.engine()).rebuild_projection(self.name)

    async def remove(self) -> None:
        """Finishes the page in hand and commits its offset; the caller then ends the actor."""
        engine = await self.engine()
        await engine.remove_projection(self.name)
        await engine.stop()


def _start_until_started(handle: Any, name: str) -> None:
    """Calls the actor's own `start` until it succeeds, backing off to 5 s between tries:
    the first may find the actor still restarting, a later one the store unreachable."""
    import ray

    delay = 0.1
    while True:
        try:
            ray.get(handle.start.remote())
            return
        except Exception as error:
            log.warning("projection %s did not start (%s); trying again", name, error)
            time.sleep(delay)
            delay = min(delay * 2, 5.0)
