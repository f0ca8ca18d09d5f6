"""The Engine: the registry of entity types, their lifecycle, and command routing.

`send` finds (or spawns) the entity's actor, puts the command in its mailbox and awaits the
reply. Everything else about handling a command lives in `_runtime/`.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import Any

from ._ids import uuid7
from ._runtime.durable_state import DurableStateEntity
from ._runtime.entity import GET_STATE, EntityActor, Message
from ._runtime.event_sourced import EventSourcedEntity
from ._runtime.kinds import EntityKind
from ._runtime.passivation import run_sweeps
from ._runtime.projection_registry import ProjectionRegistry
from ._runtime.projection_spec import build_spec
from .behavior import DurableStateBehavior, EventSourcedBehavior
from .errors import (
    CommandTimeout,
    EngineNotStarted,
    InvalidEntityId,
    SerializationError,
    UnknownEntityType,
)
from .projections import FailurePolicy, ProjectionStatus
from .records import EventEnvelope, Reply, persistence_id_of
from .serialization import Serializer
from .stores._common import check_position
from .stores.memory import MemoryStore
from .stores.protocols import OffsetStore, Store
from .subscription import Subscription

MAX_ENTITY_ID_LENGTH = 1024


@dataclass(frozen=True, slots=True)
class EngineStatistics:
    """A point-in-time view of the engine, for dashboards and tests."""

    running: bool
    entity_types: int
    live_entities: int
    busy_entities: int
    queued_messages: int
    subscriptions: int


class Engine:
    """Runs entity actors for registered behaviors on one store."""

    def __init__(self, store: Store | None = None, *, serializer: Serializer | None = None) -> None:
        self.store: Store = store if store is not None else MemoryStore()
        if serializer is not None:
            self.store.serializer = serializer
        self.serializer: Serializer = self.store.serializer
        self._kinds: dict[str, EntityKind] = {}
        self._entities: dict[str, EntityActor] = {}
        self._subscriptions: set[Subscription] = set()
        self._running = False
        self._sweeper: asyncio.Task[None] | None = None
        self._known_head = 0  # the highest position this engine knows to be committed
        self._projections = ProjectionRegistry(self.store)

    # -- registration ---------------------------------------------------------------------

    def register(
        self,
        entity_type: str,
        behavior_class: type[EventSourcedBehavior[Any]] | type[DurableStateBehavior[Any]],
        *,
        snapshot_every: int | None = None,
        passivate_after: float | None = None,
        command_timeout: float | None = None,
    ) -> None:
        """Declares an entity type. Its events and state type join the serializer's registry."""
        if not isinstance(entity_type, str) or not entity_type or "|" in entity_type:
            raise ValueError(
                f"entity_type must be a non-empty string without '|', got {entity_type!r}"
            )
        if entity_type in self._kinds:
            raise ValueError(f"entity type {entity_type!r} is already registered")
        is_event_sourced = isinstance(behavior_class, type) and issubclass(
            behavior_class, EventSourcedBehavior
        )
        if not is_event_sourced and not (
            isinstance(behavior_class, type) and issubclass(behavior_class, DurableStateBehavior)
        ):
            raise TypeError(
                f"{behavior_class!r} is not an EventSourcedBehavior or DurableStateBehavior class"
            )
        _check_positive("snapshot_every", snapshot_every, int)
        _check_positive("passivate_after", passivate_after, (int, float))
        _check_positive("command_timeout", command_timeout, (int, float))
        if snapshot_every is not None and not is_event_sourced:
            raise ValueError("snapshot_every applies to event-sourced behaviors only")

        probe = behavior_class()
        probe.entity_id = ""
        state_type = type(probe.initial_state())
        state_type_name = self._register_type(state_type, f"state of {behavior_class.__qualname__}")
        event_types: frozenset[type] = frozenset()
        if issubclass(behavior_class, EventSourcedBehavior):
            for event_type in behavior_class.events:
                self._register_type(event_type, f"event in {behavior_class.__qualname__}.events")
            event_types = frozenset(behavior_class.events)
        self._kinds[entity_type] = EntityKind(
            name=entity_type,
            behavior_class=behavior_class,
            store=self.store,
            serializer=self.serializer,
            publish=self._publish,
            state_type=state_type,
            state_type_name=state_type_name,
            event_types=event_types,
            command_types=frozenset(behavior_class.commands),
            snapshot_every=snapshot_every,
            passivate_after=passivate_after,
            command_timeout=command_timeout,
        )

    def _register_type(self, cls: Any, role: str) -> str:
        if not isinstance(cls, type) or not self.serializer.supports(cls):
            raise SerializationError(
                f"{cls!r} ({role}) cannot be serialized by {type(self.serializer).__name__}"
            )
        if self.serializer.is_registered(cls):
            return self.serializer.type_name(cls)
        return self.serializer.register(cls)

    @property
    def entity_types(self) -> tuple[str, ...]:
        return tuple(self._kinds)

    # -- lifecycle ------------------------------------------------------------------------

    @property
    def is_running(self) -> bool:
        return self._running

    async def start(self) -> None:
        """Starts the engine and its projections; fails with `StoreUnavailable` if the store
        cannot be reached."""
        if self._running:
            return
        self._known_head = await self.store.head_position()
        self._running = True
        self._sweeper = asyncio.get_running_loop().create_task(
            run_sweeps(self._kinds.values, self._forget), name="eventactors passivation"
        )
        self._projections.start_all()

    async def stop(self, *, drain_timeout: float | None = None) -> None:
        """Refuses new commands, lets every mailbox drain, ends subscriptions, closes the store.

        With `drain_timeout`, work still running after that many seconds is abandoned and
        its callers get `EngineNotStarted`; without it, stop waits for every mailbox.
        """
        if not self._running:
            return
        self._running = False
        loop = asyncio.get_running_loop()
        deadline = None if drain_timeout is None else loop.time() + drain_timeout
        while busy := [actor.task for actor in self._entities.values() if actor.task]:
            remaining = None if deadline is None else max(0.0, deadline - loop.time())
            _, pending = await asyncio.wait(busy, timeout=remaining)
            if pending and deadline is not None and loop.time() >= deadline:
                for task in pending:
                    task.cancel()
                await asyncio.wait(pending)
        await self._projections.stop_all()
        if self._sweeper is not None:
            self._sweeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._sweeper
            self._sweeper = None
        for subscription in list(self._subscriptions):
            subscription.end()
        self._subscriptions.clear()
        self._entities.clear()
        for kind in self._kinds.values():
            kind.idle.clear()
        await self.store.close()

    async def __aenter__(self) -> Engine:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.stop()

    # -- commands and queries -------------------------------------------------------------

    async def send(
        self,
        entity_type: str,
        entity_id: str,
        command: Any,
        *,
        timeout: float | None = None,
        metadata: Mapping[str, str] | None = None,
        command_id: str | None = None,
        correlation_id: str | None = None,
    ) -> Reply[Any]:
        """Sends a command and waits for its reply: the state after its events are durable.

        `timeout` bounds the wait: past it, `CommandTimeout` is raised. A command that has not
        started by then is dropped; one already running may still complete.
        """
        actor = self._actor(entity_type, entity_id)
        command_id = command_id or uuid7()
        future: asyncio.Future[Reply[Any]] = asyncio.get_running_loop().create_future()
        message = Message(
            command, future, command_id, correlation_id or command_id,
            dict(metadata) if metadata else None,
        )  # fmt: skip
        actor.enqueue(message)
        reply: Reply[Any] = await _wait(future, timeout, actor.persistence_id)
        return reply

    async def get_state(
        self, entity_type: str, entity_id: str, *, timeout: float | None = None
    ) -> tuple[Any, int]:
        """The entity's (state, revision), after every command sent to it before this call."""
        actor = self._actor(entity_type, entity_id)
        future: asyncio.Future[tuple[Any, int]] = asyncio.get_running_loop().create_future()
        actor.enqueue(Message(GET_STATE, future))
        state: tuple[Any, int] = await _wait(future, timeout, actor.persistence_id)
        return state

    def _actor(self, entity_type: str, entity_id: str) -> EntityActor:
        if not self._running:
            raise EngineNotStarted("the engine is not running: call start() or use `async with`")
        kind = self._kinds.get(entity_type)
        if kind is None:
            raise UnknownEntityType(
                f"unknown entity type {entity_type!r}; registered: "
                + (", ".join(repr(name) for name in self._kinds) or "none")
            )
        _check_entity_id(entity_id)
        persistence_id = persistence_id_of(entity_type, entity_id)
        actor = self._entities.get(persistence_id)
        if actor is None:
            actor_class = DurableStateEntity if kind.is_durable_state else EventSourcedEntity
            actor = actor_class(kind, persistence_id)
            self._entities[persistence_id] = actor
        return actor

    def _forget(self, persistence_id: str, actor: EntityActor) -> None:
        if self._entities.get(persistence_id) is actor:
            del self._entities[persistence_id]

    def is_live(self, entity_type: str, entity_id: str) -> bool:
        """Whether the entity is in memory (not passivated, not yet spawned)."""
        return persistence_id_of(entity_type, entity_id) in self._entities

    # -- subscriptions and projections ----------------------------------------------------

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

    def statistics(self) -> EngineStatistics:
        busy = [actor for actor in self._entities.values() if actor.task is not None]
        return EngineStatistics(
            running=self._running,
            entity_types=len(self._kinds),
            live_entities=len(self._entities),
            busy_entities=len(busy),
            queued_messages=sum(len(actor.mailbox or ()) for actor in busy),
            subscriptions=len(self._subscriptions),
        )


async def _wait(future: asyncio.Future[Any], timeout: float | None, persistence_id: str) -> Any:
    if timeout is None:
        return await future
    try:
        return await asyncio.wait_for(future, timeout)
    except TimeoutError:
        raise CommandTimeout(
            f"no reply from {persistence_id!r} within {timeout}s; a command that had not "
            "started was dropped, one already running may still complete"
        ) from None


def _check_entity_id(entity_id: object) -> None:
    if not isinstance(entity_id, str):
        raise InvalidEntityId(f"entity id must be a str, got {type(entity_id).__qualname__}")
    if not entity_id.strip():
        raise InvalidEntityId(f"entity id must not be empty or blank, got {entity_id!r}")
    if len(entity_id) > MAX_ENTITY_ID_LENGTH:
        raise InvalidEntityId(
            f"entity id is {len(entity_id)} characters; the limit is {MAX_ENTITY_ID_LENGTH}"
        )
    if "\x00" in entity_id:
        raise InvalidEntityId(f"entity id must not contain NUL characters: {entity_id!r}")


def _check_positive(name: str, value: object, kinds: type | tuple[type, ...]) -> None:
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, kinds) or value <= 0:  # type: ignore[operator]
        raise ValueError(f"{name} must be a positive number, got {value!r}")
