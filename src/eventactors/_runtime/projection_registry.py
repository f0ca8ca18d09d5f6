"""The engine's projections: registered by name, started and stopped with the engine."""

from __future__ import annotations

import inspect
from typing import Any

from ..errors import EventActorsError
from ..projections import ProjectionState, ProjectionStatus
from ..stores.protocols import Store
from .projection_runner import Progress, ProjectionRunner, ProjectionSpec
from .recorder import Recorder


class ProjectionRegistry:
    def __init__(self, store: Store, recorder: Recorder | None = None) -> None:
        self._store = store
        self._recorder = recorder if recorder is not None else Recorder()
        self._runners: dict[str, ProjectionRunner] = {}
        self._started = False

    async def add(self, spec: ProjectionSpec) -> None:
        if spec.name in self._runners:
            raise ValueError(f"a projection named {spec.name!r} is already added")
        if not spec.from_start and await spec.offset_store.get_offset(spec.name) is None:
            # "From now on" means from this call: pin it, so no event sent after add_projection
            # returns can slip past a start position read later (or after a crash).
            await spec.offset_store.save_offset(spec.name, await self._store.head_position())
        runner = ProjectionRunner(spec, self._store, self._recorder)
        self._runners[spec.name] = runner
        if self._started:
            runner.start()

    def get(self, name: str) -> ProjectionRunner:
        try:
            return self._runners[name]
        except KeyError:
            known = ", ".join(repr(n) for n in self._runners) or "none"
            raise KeyError(f"no projection named {name!r}; added: {known}") from None

    async def remove(self, name: str) -> None:
        runner = self.get(name)
        await runner.stop()
        del self._runners[name]
        if self._recorder.hooks is not None:
            self._recorder.hooks.projection_removed(name)

    def status(self, name: str) -> ProjectionStatus:
        return self.get(name).status()

    def runners(self) -> list[ProjectionRunner]:
        return list(self._runners.values())

    def start_all(self) -> None:
        self._started = True
        for runner in self._runners.values():
            runner.start()

    async def stop_all(self) -> None:
        self._started = False
        for runner in self._runners.values():
            await runner.stop()

    async def rebuild(self, name: str, progress: Progress | None) -> ProjectionStatus:
        """Resets the offset (and the read model, through `reset`) and replays to the head."""
        runner = self.get(name)
        spec = runner.spec
        await runner.stop()
        if spec.reset is not None and spec.transactional:
            store: Any = self._store  # the reset and the offset in one transaction
            await store.commit_with_offset(spec.name, 0, spec.reset)
        else:
            if spec.reset is not None:
                result = spec.reset()
                if inspect.isawaitable(result):
                    await result
            await spec.offset_store.reset_offset(spec.name, 0)
        runner.position = runner.events_handled = 0
        target = await self._store.head_position()
        runner.head = target
        runner.progress = progress
        try:
            runner.start()
            await runner.wait_until(target)
        finally:
            runner.progress = None
        if runner.state is ProjectionState.FAILED:
            raise EventActorsError(f"rebuild of projection {name!r} failed: {runner.last_error}")
        return runner.status()
