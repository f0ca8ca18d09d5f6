"""The engine's cluster mode: entities sharded over Ray actors (see `eventactors.cluster`).

A driver engine hosts no entities: it sends each command to its shard's actor. A shard's own
engine handles its entities here and sends the rest on, so a behavior that calls another
entity through `self.engine` works the same in one process and in a cluster.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from ._engine_checks import check_entity_id, wait_command, wait_reply
from .cluster.config import RayCluster
from .errors import EventActorsError
from .records import EventEnvelope, Reply, persistence_id_of
from .stores.memory import MemoryStore
from .stores.protocols import Store

#: How long one shard or projection actor may take to drain before it is killed.
STOP_TIMEOUT = 30.0

if TYPE_CHECKING:
    from ._runtime.entity import EntityActor
    from ._runtime.kinds import EntityKind
    from ._runtime.message import Message as Sent
    from .cluster.app_spec import AppSpec, Registration
    from .cluster.remote_projections import RemoteProjections
    from .cluster.router import ShardRouter
    from .cluster.wire import Message, SendMessage


def check_cluster_store(cluster: RayCluster | None, store: Store) -> None:
    if cluster is None:
        return
    if not isinstance(cluster, RayCluster):
        raise TypeError(f"cluster must be an ea.RayCluster, got {cluster!r}")
    if isinstance(getattr(store, "inner", store), MemoryStore):  # also inside an EncryptedStore
        raise ValueError(
            "cluster mode needs a store that every shard process can reach: "
            "ea.PostgresStore(dsn) (or ea.SQLiteStore(path) when every shard is on this "
            "machine), not ea.MemoryStore()"
        )


class ClusterMode:
    """Mixed into `Engine`."""

    store: Store
    cluster: RayCluster | None
    max_event_bytes: int | None
    _registrations: list[Registration]
    _hosted_shard: int | None
    _is_host: bool
    _router: ShardRouter | None
    _remote_projections: RemoteProjections | None

    if TYPE_CHECKING:  # provided by Engine and its other bases

        def _kind(self, entity_type: str) -> EntityKind: ...

        def _actor(self, entity_type: str, entity_id: str) -> EntityActor: ...

        def _post(self, actor: EntityActor, command: Any, *options: Any, **more: Any) -> Any: ...

        def _forget_if_unborn(self, kind: EntityKind, actor: EntityActor) -> None: ...

        def _publish(self, envelopes: Sequence[EventEnvelope]) -> None: ...

    def _app_spec(self) -> AppSpec:
        from .cluster.app_spec import AppSpec

        assert self.cluster is not None
        return AppSpec(tuple(self._registrations), self.store, self.cluster, self.max_event_bytes)

    async def _start_cluster(self) -> None:
        """Joins Ray; a driver also creates (or finds) every shard actor."""
        if self.cluster is None:
            return
        from .cluster.router import ShardRouter

        spec = self._app_spec()
        decode = self.store.decode_event  # type: ignore[attr-defined]  # every store has it
        router = ShardRouter(spec, decode, local_shard=self._hosted_shard)
        await router.connect(all_shards=not self._is_host)
        self._router = router
        if self._remote_projections is not None:
            self._remote_projections.spec = spec

    async def _stop_cluster_side(self, drain_timeout: float | None) -> None:
        if self._router is not None:
            await self._router.close(drain_timeout)
            self._router = None

    def _remote_shard(self, entity_type: str, entity_id: str) -> int | None:
        """The shard to send to, or None when the entity lives in this process."""
        router = self._router
        if router is None:
            return None
        self._kind(entity_type)
        check_entity_id(entity_id)
        shard = router.shard_for(persistence_id_of(entity_type, entity_id))
        return None if shard == router.local_shard else shard

    async def _remote(self, shard: int, message: Message) -> Any:
        assert self._router is not None
        future = self._router.submit(shard, message)
        persistence_id = persistence_id_of(message.entity_type, message.entity_id)
        result = await wait_reply(future, message.timeout, persistence_id)
        if isinstance(result, Reply):  # so that subscribe() starts after what it has seen
            self._publish(result.events)
        return result

    async def _deliver(self, message: SendMessage) -> Reply[Any]:
        """Sends to the entity wherever it lives."""
        shard = self._remote_shard(message.entity_type, message.entity_id)
        if shard is not None:
            reply: Reply[Any] = await self._remote(shard, message)
            return reply
        return await self._send_here(message)

    async def _send_here(self, message: SendMessage) -> Reply[Any]:
        """Handles a command of an entity this engine hosts."""
        kind, actor, sent = self._post_here(message)
        return await self._finish_here(kind, actor, sent, message)

    def _post_here(self, message: SendMessage) -> tuple[EntityKind, EntityActor, Sent]:
        """Puts the command in its entity's mailbox, synchronously; `sent.future` gets the
        reply."""
        kind = self._kind(message.entity_type)
        actor = self._actor(message.entity_type, message.entity_id)
        sent: Sent = self._post(
            actor, message.command, *message.options,
            creates_with=message.creates_with, addressed_by=message.addressed_by,
            must_create=message.must_create,
        )  # fmt: skip
        return kind, actor, sent

    async def _finish_here(
        self, kind: EntityKind, actor: EntityActor, sent: Sent, message: SendMessage
    ) -> Reply[Any]:
        try:
            reply: Reply[Any] = await wait_command(actor, sent, message.timeout)
        finally:
            if message.creates_with is not None:
                self._forget_if_unborn(kind, actor)
        return reply

    def _query_here(self, entity_type: str, entity_id: str) -> asyncio.Future[tuple[Any, int]]:
        """Puts a state query in the entity's mailbox, synchronously."""
        from ._runtime.entity import GET_STATE, Message

        actor = self._actor(entity_type, entity_id)
        future: asyncio.Future[tuple[Any, int]] = asyncio.get_running_loop().create_future()
        actor.enqueue(Message(GET_STATE, future))
        return future

    async def stop_cluster(self) -> None:
        """Ends every shard and projection actor of this application's namespace for good,
        each after draining its mailboxes (projections commit their offsets). The data
        stays in the store; the next engine that starts creates the actors again."""
        if self.cluster is None:
            raise EventActorsError("this engine has no cluster to stop")
        from .cluster.ray_actors import ensure_ray, existing_actor, kill, named_actors

        cluster = self.cluster
        ensure_ray(cluster)
        names = named_actors(cluster)
        failures = []
        # Projections first, so that they stop reading before the shards stop writing.
        for name in sorted(names, key=lambda name: not name.startswith("projection-")):
            handle = existing_actor(cluster, name)
            if handle is None:
                continue  # ended meanwhile
            try:
                await asyncio.wait_for(handle.stop.remote(), STOP_TIMEOUT)
            except Exception as error:
                failures.append(f"{name}: {type(error).__name__}: {error}")
            finally:
                kill(handle)
        if self._remote_projections is not None:
            self._remote_projections.forget_all()
        if failures:
            raise EventActorsError(
                "stop_cluster: these actors did not stop cleanly and were killed: "
                + "; ".join(failures)
            )

    async def cluster_status(self) -> list[dict[str, Any]]:
        """Each shard actor's view of itself: shard, pid, live entities, statistics."""
        if self._router is None:
            raise EventActorsError("cluster_status needs a started engine with a cluster")
        router = self._router
        return list(
            await asyncio.gather(
                *(router.handle(shard).status.remote() for shard in range(router.num_shards))
            )
        )
