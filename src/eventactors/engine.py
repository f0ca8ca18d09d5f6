"""The Engine: the registry of entity types, their lifecycle, and command routing.

`send` finds (or spawns) the entity's actor, puts the command in its mailbox and awaits the
reply. Everything else about handling a command lives in `_runtime/`.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Mapping
from datetime import datetime
from types import TracebackType
from typing import TYPE_CHECKING, Any

from ._engine_checks import (
    check_entity_id,
    check_positive,
    check_send_options,
    check_timeout,
    wait_command,
    wait_reply,
)
from ._engine_cluster import ClusterMode, check_cluster_store
from ._engine_erasure import Erasure
from ._engine_history import History
from ._engine_natural_keys import NaturalKeys
from ._engine_read_side import ReadSide
from ._identifiers import IdentifiersOf, IdentifierSpec
from ._ids import uuid7
from ._runtime.draining import drain_mailboxes
from ._runtime.durable_state import DurableStateEntity
from ._runtime.entity import EntityActor, Message
from ._runtime.event_sourced import EventSourcedEntity
from ._runtime.history import state_at
from ._runtime.kinds import EntityKind
from ._runtime.passivation import run_sweeps
from ._runtime.payload_limit import DEFAULT_MAX_EVENT_BYTES
from ._runtime.projection_registry import ProjectionRegistry
from ._runtime.recorder import Recorder
from ._statistics import EngineStatistics, engine_statistics
from .behavior import DurableStateBehavior, EventSourcedBehavior
from .cluster.config import RayCluster
from .cluster.wire import SendMessage, StateMessage
from .errors import (
    CommandTimeout,
    EngineNotStarted,
    EventActorsError,
    SerializationError,
    UnknownEntityType,
)
from .records import Reply, persistence_id_of
from .serialization import Serializer
from .stores.memory import MemoryStore
from .stores.protocols import Store
from .subscription import Subscription
from .upcasting import event_version, type_aliases

if TYPE_CHECKING:
    from .cluster.app_spec import Registration
    from .cluster.remote_projections import RemoteProjections
    from .cluster.router import ShardRouter


class Engine(NaturalKeys, History, ReadSide, ClusterMode, Erasure):
    """Runs entity actors for registered behaviors on one store; with `cluster=`, shards them
    over a Ray cluster (see `eventactors.cluster`), with the same API."""

    def __init__(
        self,
        store: Store | None = None,
        *,
        serializer: Serializer | None = None,
        cluster: RayCluster | None = None,
        max_event_bytes: int | None = DEFAULT_MAX_EVENT_BYTES,
        _hosted_shard: int | None = None,
        _host: bool = False,
    ) -> None:
        check_positive("max_event_bytes", max_event_bytes, int)
        #: The largest encoded event or durable state a command may write, in bytes (None:
        #: no limit); above it the command fails with `PayloadTooLarge`, having written nothing.
        self.max_event_bytes = max_event_bytes
        self.store: Store = store if store is not None else MemoryStore()
        check_cluster_store(cluster, self.store)
        self.cluster = cluster
        self._hosted_shard = _hosted_shard
        self._is_host = _host  # a shard's or a projection's own engine, inside the cluster
        self._router: ShardRouter | None = None
        self._registrations: list[Registration] = []
        self._partitions: dict[str, list[str]] = {}
        self._remote_projections: RemoteProjections | None = None
        if cluster is not None and not _host:
            from .cluster.remote_projections import RemoteProjections

            self._remote_projections = RemoteProjections()
        if serializer is not None:
            self.store.serializer = serializer
        self.serializer: Serializer = self.store.serializer
        self._kinds: dict[str, EntityKind] = {}
        self._entities: dict[str, EntityActor] = {}
        self._subscriptions: set[Subscription] = set()
        self._running = False
        self._sweeper: asyncio.Task[None] | None = None
        self._known_head = 0  # the highest position this engine knows to be committed
        self._recorder = Recorder(self.store)  # the runtime's tallies: statistics(), telemetry
        self._projections = ProjectionRegistry(self.store, self._recorder)

    # -- registration ---------------------------------------------------------------------

    def register(
        self,
        entity_type: str,
        behavior_class: type[EventSourcedBehavior[Any]] | type[DurableStateBehavior[Any]],
        *,
        snapshot_every: int | None = None,
        passivate_after: float | None = None,
        command_timeout: float | None = None,
        identifiers: IdentifiersOf | None = None,
        command_log: bool = False,
    ) -> None:
        """Declares an entity type. Its events and state type join the serializer's registry.

        `identifiers(state)` gives an entity's natural keys (such as `{"email": ...}`), so
        that `send_by` can address it by them; each key set belongs to one entity at most.
        `command_log=True` records every command the type handles (see `command_log`).
        """
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
        check_positive("snapshot_every", snapshot_every, int)
        check_positive("passivate_after", passivate_after, (int, float))
        check_positive("command_timeout", command_timeout, (int, float))
        if snapshot_every is not None and not is_event_sourced:
            raise ValueError("snapshot_every applies to event-sourced behaviors only")
        if not isinstance(command_log, bool):
            raise TypeError(f"command_log must be True or False, got {command_log!r}")
        if self._running and self.cluster is not None:
            raise EventActorsError("in cluster mode, register every entity type before start()")

        probe = behavior_class()
        probe.entity_id = ""
        initial_state = probe.initial_state()
        state_type = type(initial_state)
        spec = (
            None if identifiers is None else IdentifierSpec(entity_type, identifiers, initial_state)
        )
        state_type_name = self._register_type(state_type, f"state of {behavior_class.__qualname__}")
        event_types: frozenset[type] = frozenset()
        if issubclass(behavior_class, EventSourcedBehavior):
            for event_type in behavior_class.events:
                self._register_type(event_type, f"event in {behavior_class.__qualname__}.events")
            event_types = frozenset(behavior_class.events)
        if command_log:  # so that the log's commands decode again
            for command_type in behavior_class.commands:
                self._register_type(command_type, f"command in {behavior_class.__qualname__}")
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
            identifiers=spec,
            command_log=command_log,
            max_event_bytes=self.max_event_bytes,
            engine=self,
            recorder=self._recorder,
        )
        options = {
            "snapshot_every": snapshot_every, "passivate_after": passivate_after,
            "command_timeout": command_timeout, "identifiers": identifiers,
            "command_log": command_log,
        }  # fmt: skip
        self._registrations.append((entity_type, behavior_class, options))

    def _register_type(self, cls: Any, role: str) -> str:
        if not isinstance(cls, type) or not self.serializer.supports(cls):
            raise SerializationError(
                f"{cls!r} ({role}) cannot be serialized by {type(self.serializer).__name__}"
            )
        if self.serializer.is_registered(cls):
            return self.serializer.type_name(cls)
        event_version(cls)  # a malformed __event_version__ fails here, not on first write
        name = self.serializer.register(cls)
        for alias in type_aliases(cls):  # the names a renamed class was stored under
            self.serializer.register(cls, alias)
        return name

    @property
    def entity_types(self) -> tuple[str, ...]:
        return tuple(self._kinds)

    def registrations(self) -> tuple[Registration, ...]:
        """Each registered type's (entity type, behavior class, options), in order: what a
        tool needs to run the same application on another store."""
        return tuple(
            (name, behavior, dict(options)) for name, behavior, options in self._registrations
        )

    def projection_names(self) -> tuple[str, ...]:
        """The names under which this engine's projections keep offsets, in the order added
        (each partition of a partitioned projection under its own name): what a tool lists
        beside the offsets a store holds."""
        if self._remote_projections is not None:
            return self._remote_projections.names
        return tuple(runner.spec.name for runner in self._projections.runners())

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
        try:
            await self._start_cluster()
        except BaseException:
            await self.store.close()
            raise
        self._running = True
        self._sweeper = asyncio.get_running_loop().create_task(
            run_sweeps(self._kinds.values, self._forget, self._recorder),
            name="eventactors passivation",
        )
        self._projections.start_all()
        if self._remote_projections is not None:
            await self._remote_projections.start_all()

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
        await drain_mailboxes(self._entities.values, deadline)
        remaining = None if deadline is None else max(0.0, deadline - loop.time())
        await self._stop_cluster_side(remaining)
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
        expected_revision: int | None = None,
    ) -> Reply[Any]:
        """Sends a command and waits for its reply: the state after its events are durable.

        `timeout` bounds the wait: past it, `CommandTimeout` is raised. A command that has not
        started by then is dropped; one already running may still complete.
        `expected_revision` refuses the command with `ConcurrencyError`, persisting nothing,
        unless the entity is still at that revision when the command's turn comes.
        """
        if timeout is not None or expected_revision is not None:
            check_send_options(timeout, expected_revision)
        if (
            self._router is not None
            and (shard := self._remote_shard(entity_type, entity_id)) is not None
        ):
            options = (metadata, command_id, correlation_id, expected_revision)
            message = SendMessage(entity_type, entity_id, command, timeout, options)
            reply: Reply[Any] = await self._remote(shard, message)
            return reply
        actor = self._actor(entity_type, entity_id)
        sent = self._post(actor, command, metadata, command_id, correlation_id, expected_revision)
        if timeout is None:  # the common case, without a coroutine more per command
            return await sent.future  # type: ignore[no-any-return]
        return await wait_command(actor, sent, timeout)  # type: ignore[no-any-return]

    def _post(
        self,
        actor: EntityActor,
        command: Any,
        metadata: Mapping[str, str] | None,
        command_id: str | None,
        correlation_id: str | None,
        expected_revision: int | None,
        creates_with: str | None = None,
        addressed_by: str | None = None,
        must_create: bool = False,
    ) -> Message:
        """Puts a command in the actor's mailbox; its future gets the reply."""
        command_id = command_id or uuid7()
        future: asyncio.Future[Reply[Any]] = asyncio.get_running_loop().create_future()
        message = Message(
            command, future, command_id, correlation_id or command_id,
            dict(metadata) if metadata else None, expected_revision, creates_with, addressed_by,
            must_create,
        )  # fmt: skip
        actor.enqueue(message)
        return message

    async def get_state(
        self,
        entity_type: str,
        entity_id: str,
        *,
        timeout: float | None = None,
        at_revision: int | None = None,
        at_time: datetime | None = None,
    ) -> tuple[Any, int]:
        """The entity's (state, revision), after every command sent to it before this call.

        With `at_revision` or `at_time` (an aware datetime), the state as it was then, rebuilt
        from the nearest earlier snapshot beside the live entity, which it leaves untouched.
        """
        check_timeout(timeout)
        if (
            self._router is not None
            and (shard := self._remote_shard(entity_type, entity_id)) is not None
        ):
            query = StateMessage(entity_type, entity_id, timeout, at_revision, at_time)
            state_and_revision: tuple[Any, int] = tuple(await self._remote(shard, query))
            return state_and_revision
        if at_revision is not None or at_time is not None:
            kind = self._kind(entity_type)
            check_entity_id(entity_id)
            rebuild = state_at(
                kind, persistence_id_of(entity_type, entity_id), entity_id,
                at_revision=at_revision, at_time=at_time,
            )  # fmt: skip
            if timeout is None:
                return await rebuild
            try:
                async with asyncio.timeout(timeout):
                    return await rebuild
            except TimeoutError:
                raise CommandTimeout(
                    f"rebuilding {entity_type!r}/{entity_id!r} took longer than {timeout}s"
                ) from None
        future = self._query_here(entity_type, entity_id)
        persistence_id = persistence_id_of(entity_type, entity_id)
        state: tuple[Any, int] = await wait_reply(future, timeout, persistence_id)
        return state

    def _kind(self, entity_type: str) -> EntityKind:
        if not self._running:
            raise EngineNotStarted("the engine is not running: call start() or use `async with`")
        kind = self._kinds.get(entity_type)
        if kind is None:
            raise UnknownEntityType(
                f"unknown entity type {entity_type!r}; registered: "
                + (", ".join(repr(name) for name in self._kinds) or "none")
            )
        return kind

    def _actor(self, entity_type: str, entity_id: str) -> EntityActor:
        kind = self._kind(entity_type)
        check_entity_id(entity_id)
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

    def statistics(self) -> EngineStatistics:
        """Entities, mailboxes, commands by outcome, append latency and projections, read
        from tallies the runtime keeps anyway (see `EngineStatistics`). On a cluster driver,
        only the driver's own figures: each shard's are in `cluster_status()`."""
        return engine_statistics(self)
