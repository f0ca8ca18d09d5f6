"""The driver's side of projections in cluster mode: each projection (or each slice-range
partition of one) runs in its own named Ray actor, so exactly once in the cluster, and Ray
restarts it where it dies."""

from __future__ import annotations

from typing import Any

from ..errors import ShardUnavailable
from ..projections import ProjectionStatus
from .app_spec import AppSpec
from .ray_actors import existing_actor, is_actor_error, kill, projection_actor


class RemoteProjections:
    def __init__(self) -> None:
        self.spec: AppSpec | None = None  # set when the driver engine starts
        self._options: dict[str, dict[str, Any]] = {}  # member name -> add_projection options
        self._handles: dict[str, Any] = {}

    def __contains__(self, name: str) -> bool:
        return name in self._options

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(self._options)

    def forget_all(self) -> None:
        """After stop_cluster: the actors are gone; a new start creates them again."""
        self._handles.clear()

    def declare(self, name: str, options: dict[str, Any]) -> None:
        if name in self._options:
            raise ValueError(f"a projection named {name!r} is already added")
        self._options[name] = options

    async def start(self, name: str) -> ProjectionStatus:
        """Creates the projection's actor (or finds the one another process created)."""
        handle = self._handles.get(name)
        if handle is None:
            assert self.spec is not None, "the engine starts its projections once started"
            handle = projection_actor(self.spec, name, self._options[name])
            self._handles[name] = handle
        status: ProjectionStatus = await self._call(name, "start")
        return status

    async def start_all(self) -> None:
        for name in self._options:
            await self.start(name)

    async def status(self, name: str) -> ProjectionStatus:
        status: ProjectionStatus = await self._call(name, "status")
        return status

    async def is_running(self, name: str) -> bool:
        return bool(await self._call(name, "is_running"))

    async def wait(self, name: str, head: int, timeout: float) -> ProjectionStatus:
        status: ProjectionStatus = await self._call(name, "wait", head, timeout)
        return status

    async def rebuild(self, name: str) -> ProjectionStatus:
        status: ProjectionStatus = await self._call(name, "rebuild")
        return status

    async def remove(self, name: str) -> None:
        """Commits the projection's offset, then ends its actor for good."""
        handle = self._handle(name)
        await self._call(name, "remove")
        kill(handle)
        self._handles.pop(name, None)
        self._options.pop(name, None)

    def _handle(self, name: str) -> Any:
        assert self.spec is not None
        cluster = self.spec.cluster
        handle = self._handles.get(name) or existing_actor(cluster, cluster.projection_name(name))
        if handle is None:
            raise KeyError(f"no projection named {name!r} runs in the cluster")
        self._handles[name] = handle
        return handle

    async def _call(self, name: str, method: str, *args: Any) -> Any:
        try:
            return await getattr(self._handle(name), method).remote(*args)
        except Exception as error:
            cause = getattr(error, "cause", None)
            if isinstance(cause, Exception):  # raised by the projection: re-raised as it was
                raise cause from None
            if is_actor_error(error):
                self._handles.pop(name, None)
                raise ShardUnavailable(
                    f"projection {name!r}: its actor died or could not be reached "
                    f"({type(error).__name__}); Ray restarts it, and it resumes from its offset"
                ) from error
            raise
