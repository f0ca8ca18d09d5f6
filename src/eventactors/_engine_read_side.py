"""The engine's read side: live subscriptions and projections over the global event log."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from typing import Any

from ._runtime.projection_registry import ProjectionRegistry
from ._runtime.projection_spec import build_spec
from .errors import EngineNotStarted
from .projections import FailurePolicy, ProjectionStatus
from .records import EventEnvelope
from .stores._common import check_position
from .stores.protocols import OffsetStore, Store
from .subscription import Subscription


class ReadSide:
    """Mixed into `Engine`: what it offers to readers of the event log."""

    store: Store
    _running: bool
    _known_head: int  # the highest position this engine knows to be committed
    _subscriptions: set[Subscription]
    _projections: ProjectionRegistry

    def subscribe(self, from_position: int | None = None, *, page_size: int = 500) -> Subscription:
        """Every event after `from_position` in global order, then live; without a position,
        every event persisted after this call returns.

        The subscription reads the store at its own pace, holding at most one page: a slow
        subscriber never stalls the engine, and never loses an event.
        """
        if not self._running:
            raise EngineNotStarted("the engine is not running: call start() or use `async with`")
        start = self._known_head if from_position is None else check_position(from_position)
        if isinstance(page_size, bool) or not isinstance(page_size, int) or page_size < 1:
            raise ValueError(f"page_size must be an int >= 1, got {page_size!r}")
        subscription = Subscription(
            self.store, start, self._subscriptions.discard, page_size=page_size
        )
        self._subscriptions.add(subscription)
        return subscription

    def _publish(self, envelopes: Sequence[EventEnvelope]) -> None:
        if envelopes:
            self._known_head = max(self._known_head, envelopes[-1].global_position)

    async def add_projection(
        self,
        name: str,
        handler: Callable[..., Any],
        *,
        from_start: bool = True,
        batch_size: int = 500,
        policy: FailurePolicy | None = None,
        offset_store: OffsetStore | None = None,
        entity_types: Sequence[str] | None = None,
        event_types: Sequence[str] | None = None,
        tags: Sequence[str] | None = None,
        batched: bool = False,
        transactional: bool = False,
        reset: Callable[..., Any] | None = None,
        poll_interval: float = 1.0,
    ) -> None:
        """Adds a projection; it runs while the engine runs (added before `start`, it starts
        with the engine). See `eventactors.projections` for delivery and policies.

        `handler(envelope)` by default; `handler(envelopes)` with `batched=True`;
        `handler(envelopes, connection)` with `transactional=True`, where the offset commits in
        the handler's own transaction (SQLite: a plain function on the writer thread). `reset`
        clears the read model before a rebuild (given the connection when transactional).
        """
        await self._projections.add(
            build_spec(
                self.store, name, handler, from_start=from_start, batch_size=batch_size,
                policy=policy, offset_store=offset_store, entity_types=entity_types,
                event_types=event_types, tags=tags, batched=batched,
                transactional=transactional, reset=reset, poll_interval=poll_interval,
            )
        )  # fmt: skip

    async def remove_projection(self, name: str) -> None:
        """Finishes the page in hand, commits its offset, and removes the projection. Added
        again under the same name, it resumes after that offset."""
        await self._projections.remove(name)

    async def is_projection_running(self, name: str) -> bool:
        return self._projections.get(name).is_running

    def projection_status(self, name: str) -> ProjectionStatus:
        """Position, head, lag, events handled, last error and state of a projection."""
        return self._projections.status(name)

    async def wait_for_projection(self, name: str, *, timeout: float = 30.0) -> ProjectionStatus:
        """Waits until the projection has handled everything committed when this was called
        (its offset reaches that head); `TimeoutError` after `timeout` seconds."""
        runner = self._projections.get(name)
        head = await self.store.head_position()
        async with asyncio.timeout(timeout):
            await runner.wait_until(head)
        return runner.status()

    async def rebuild_projection(
        self, name: str, *, on_progress: Callable[[int, int], Any] | None = None
    ) -> ProjectionStatus:
        """Resets the projection's offset (and read model, through its `reset`) and replays the
        log up to its current head, calling `on_progress(position, head)` after each page.
        The projection then carries on live."""
        if not self._running:
            raise EngineNotStarted("the engine is not running: call start() or use `async with`")
        return await self._projections.rebuild(name, on_progress)
