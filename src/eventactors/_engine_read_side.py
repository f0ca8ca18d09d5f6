"""The engine's read side: live subscriptions and projections over the global event log."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from ._runtime.projection_registry import ProjectionRegistry
from ._runtime.projection_spec import build_spec
from ._slices import slice_ranges
from .errors import EngineNotStarted, EventActorsError
from .projections import FailurePolicy, ProjectionState, ProjectionStatus
from .records import EventEnvelope
from .stores._common import check_position
from .stores.protocols import OffsetStore, Store
from .subscription import Subscription

if TYPE_CHECKING:
    from .cluster.remote_projections import RemoteProjections


class ReadSide:
    """Mixed into `Engine`: what it offers to readers of the event log."""

    store: Store
    _running: bool
    _known_head: int  # the highest position this engine knows to be committed
    _subscriptions: set[Subscription]
    _projections: ProjectionRegistry
    _partitions: dict[str, list[str]]  # a partitioned projection's name -> its runners' names
    _remote_projections: RemoteProjections | None  # cluster mode: projections run in actors

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
        partitions: int = 1,
        slices: range | None = None,
    ) -> None:
        """Adds a projection; it runs while the engine runs (added before `start`, it starts
        with the engine). See `eventactors.projections` for delivery and policies.

        `handler(envelope)` by default; `handler(envelopes)` with `batched=True`;
        `handler(envelopes, connection)` with `transactional=True`, where the offset commits in
        the handler's own transaction (SQLite: a plain function on the writer thread). `reset`
        clears the read model before a rebuild (given the connection when transactional).

        `partitions=N` splits the projection by persistence-id slices (as Akka's
        `eventsBySlices`): N runners, named `<name>/slices-<first>-<last>`, each with its own
        offset, each seeing the events of its slices in order, together every event once.
        In cluster mode each runs in its own actor. `slices=range(...)` runs one such partition.
        The split is part of the offsets: changing N means a new projection name.
        """
        options: dict[str, Any] = dict(
            handler=handler, from_start=from_start, batch_size=batch_size, policy=policy,
            offset_store=offset_store, entity_types=entity_types, event_types=event_types,
            tags=tags, batched=batched, transactional=transactional, reset=reset,
            poll_interval=poll_interval,
        )  # fmt: skip
        members = self._partition(name, partitions, slices, reset)
        specs = [
            build_spec(self.store, member, slices=member_slices, **options)
            for member, member_slices in members
        ]  # every partition checked before any is added
        if self._remote_projections is not None:
            for member, member_slices in members:
                self._remote_projections.declare(member, {**options, "slices": member_slices})
            if self._running:
                for member, _ in members:
                    await self._remote_projections.start(member)
        else:
            for spec in specs:
                await self._projections.add(spec)
        if partitions > 1:
            self._partitions[name] = [member for member, _ in members]

    def _partition(
        self, name: str, partitions: int, slices: range | None, reset: Callable[..., Any] | None
    ) -> list[tuple[str, range | None]]:
        if partitions == 1:
            return [(name, slices)]
        ranges = slice_ranges(partitions)  # checks partitions
        if slices is not None:
            raise ValueError(f"projection {name!r}: give partitions= or slices=, not both")
        if reset is not None:
            raise ValueError(
                f"projection {name!r}: a partitioned projection takes no reset=, since each "
                "partition rebuilds alone; clear the read model before rebuild_projection"
            )
        if name in self._partitions:
            raise ValueError(f"a projection named {name!r} is already added")
        return [(f"{name}/slices-{part.start}-{part.stop - 1}", part) for part in ranges]

    def _members(self, name: str) -> list[str]:
        return self._partitions.get(name, [name])

    async def remove_projection(self, name: str) -> None:
        """Finishes the page in hand, commits its offset, and removes the projection. Added
        again under the same name, it resumes after that offset."""
        for member in self._members(name):
            if self._remote_projections is not None:
                await self._remote_projections.remove(member)
            else:
                await self._projections.remove(member)
        self._partitions.pop(name, None)

    async def is_projection_running(self, name: str) -> bool:
        for member in self._members(name):
            if self._remote_projections is not None:
                running = await self._remote_projections.is_running(member)
            else:
                running = self._projections.get(member).is_running
            if not running:
                return False
        return True

    def projection_status(self, name: str) -> ProjectionStatus:
        """Position, head, lag, events handled, last error and state of a projection (of its
        slowest partition, for a partitioned one). In cluster mode, use
        `fetch_projection_status`: the status lives in another process."""
        if self._remote_projections is not None:
            raise EventActorsError(
                f"projection {name!r} runs in the cluster: await engine.fetch_projection_status()"
            )
        return combine(name, [self._projections.status(m) for m in self._members(name)])

    async def fetch_projection_status(self, name: str) -> ProjectionStatus:
        """`projection_status`, in any mode."""
        if self._remote_projections is None:
            return self.projection_status(name)
        remote = self._remote_projections
        return combine(name, [await remote.status(member) for member in self._members(name)])

    async def wait_for_projection(self, name: str, *, timeout: float = 30.0) -> ProjectionStatus:
        """Waits until the projection has handled everything committed when this was called
        (its offset reaches that head); `TimeoutError` after `timeout` seconds."""
        head = await self.store.head_position()
        members = self._members(name)
        if self._remote_projections is not None:
            remote = self._remote_projections
            waits = [remote.wait(member, head, timeout) for member in members]
        else:
            waits = [self._wait_for_projection_at(member, head, timeout) for member in members]
        return combine(name, list(await asyncio.gather(*waits)))  # partitions wait together

    async def _wait_for_projection_at(
        self, name: str, head: int, timeout: float
    ) -> ProjectionStatus:
        runner = self._projections.get(name)
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
        statuses = []
        for member in self._members(name):
            if self._remote_projections is not None:
                statuses.append(await self._remote_projections.rebuild(member))
            else:
                statuses.append(await self._projections.rebuild(member, on_progress))
        return combine(name, statuses)


def combine(name: str, statuses: list[ProjectionStatus]) -> ProjectionStatus:
    """One status for the partitions of a projection: the slowest one's position, the worst
    state, and the events all of them handled."""
    if len(statuses) == 1 and statuses[0].name == name:
        return statuses[0]
    states = {status.state for status in statuses}
    state = next(
        (s for s in (ProjectionState.FAILED, ProjectionState.STOPPED) if s in states),
        ProjectionState.RUNNING,
    )
    errors = [f"{s.name}: {s.last_error}" for s in statuses if s.last_error is not None]
    return ProjectionStatus(
        name=name,
        state=state,
        position=min(status.position for status in statuses),
        head=max(status.head for status in statuses),
        lag=max(status.lag for status in statuses),
        events_handled=sum(status.events_handled for status in statuses),
        last_error="; ".join(errors) or None,
    )
