"""The right to be forgotten: `Engine.erase_entity`, by crypto-shredding.

The entity's live actor is stopped first (commands waiting for it fail with `EntityErased`;
the one it is running finishes), then its data key is deleted from the store's key table.
From then on its events read as tombstones (`ErasedEvent`), and commands, `get_state` and
recovery fail with `EntityErased`. See `EncryptedStore` for what erasure does in the store.
"""

from __future__ import annotations

import asyncio
import sys
from typing import TYPE_CHECKING

from ._engine_checks import check_entity_id
from .errors import EntityErased, EventActorsError
from .records import persistence_id_of
from .stores.protocols import Store

if TYPE_CHECKING:
    from ._runtime.entity import EntityActor
    from ._runtime.kinds import EntityKind
    from .cluster.config import RayCluster
    from .stores.encrypted import EncryptedStore


class Erasure:
    """Mixed into `Engine`."""

    store: Store
    cluster: RayCluster | None
    _entities: dict[str, EntityActor]

    def _kind(self, entity_type: str) -> EntityKind:
        raise NotImplementedError

    async def erase_entity(self, entity_type: str, entity_id: str) -> None:
        """Erases an entity for good: deletes its data key, then its snapshots and state.

        Its events stay in the log, so positions and projection offsets hold: readers get a
        tombstone envelope for each (same metadata, `payload == b""`, `event` an
        `ea.ErasedEvent`). Commands to it, `get_state` and its recovery raise
        `ea.EntityErased`, and its stream can never be written again. Other entities' data
        is untouched. Needs an `ea.EncryptedStore`. Erasing twice is harmless.
        """
        store = _encrypted(self.store)
        kind = self._kind(entity_type)
        check_entity_id(entity_id)
        if self.cluster is not None:
            raise EventActorsError(
                "erase_entity is not available in cluster mode, where the entity lives in a "
                "shard process: call `await engine.store.erase(persistence_id)`; the shard "
                "sees the erasure when it next recovers the entity"
            )
        persistence_id = persistence_id_of(entity_type, entity_id)
        await self._stop_for_erasure(kind, persistence_id)
        await store.erase(persistence_id)
        # An actor spawned while the key was being erased recovered with the key: stop it too.
        await self._stop_for_erasure(kind, persistence_id)

    async def _stop_for_erasure(self, kind: EntityKind, persistence_id: str) -> None:
        """Takes the entity's actor out of the engine: waiting commands fail, the running
        one finishes, and its state leaves memory. The next command spawns a new actor,
        whose recovery meets the erasure."""
        actor = self._entities.pop(persistence_id, None)
        kind.idle.pop(persistence_id, None)
        if actor is None:
            return
        task = actor.task
        if task is not None and task is asyncio.current_task():
            self._entities[persistence_id] = actor
            raise EventActorsError(
                f"{persistence_id!r} cannot erase itself from its own command handler: "
                "erase it from outside the entity (another entity, or a task of its own)"
            )
        actor.refuse_waiting(
            EntityErased(
                f"{persistence_id!r} is being erased; this command was not run",
                persistence_id=persistence_id,
            )
        )
        if task is not None:
            await asyncio.wait({task})  # the command in hand ends; its reply stands
        actor.state = None
        actor.recovered = False


def _encrypted(store: Store) -> EncryptedStore:
    # Looked up, not imported: without the module loaded, no store can be an EncryptedStore,
    # and the engine does not need the cryptography package.
    module = sys.modules.get("eventactors.stores.encrypted")
    if module is None or not isinstance(store, module.EncryptedStore):
        raise EventActorsError(
            "erase_entity needs encryption: erasure deletes the entity's data key "
            "(crypto-shredding), so the engine's store must be an ea.EncryptedStore, "
            f"not {type(store).__name__}"
        )
    encrypted: EncryptedStore = store
    return encrypted
