"""Addressing entities by their natural keys (an email, an ISBN and copy number) instead of
their generated ids: the engine's side of the identifier map."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from ._engine_checks import check_send_options
from ._ids import uuid7
from ._runtime.entity import EntityActor, KeysMoved
from ._runtime.kinds import EntityKind
from .cluster.wire import SendMessage
from .errors import IdentifierTaken, InvalidIdentifiers
from .records import Reply
from .stores.protocols import Store

#: A creation that loses a race is re-routed to the winner; this bounds the retries, in case
#: the winner keeps changing its keys in between.
MAX_ROUTING_ATTEMPTS = 3


class NaturalKeys:
    """Mixed into `Engine`: `send_by` and `resolve`."""

    store: Store

    def _kind(self, entity_type: str) -> EntityKind:
        raise NotImplementedError

    def _actor(self, entity_type: str, entity_id: str) -> EntityActor:
        raise NotImplementedError

    def _forget(self, persistence_id: str, actor: EntityActor) -> None:
        raise NotImplementedError

    if TYPE_CHECKING:  # provided by ClusterMode, later in Engine's bases

        async def _deliver(self, message: SendMessage) -> Reply[Any]: ...

    async def send_by(
        self,
        entity_type: str,
        identifiers: Mapping[str, Any],
        command: Any,
        *,
        create: bool = False,
        timeout: float | None = None,
        metadata: Mapping[str, str] | None = None,
        command_id: str | None = None,
        correlation_id: str | None = None,
        expected_revision: int | None = None,
    ) -> Reply[Any]:
        """Sends a command to the entity its natural keys name, creating it if none holds
        them; `reply.entity_id` says which entity that was.

        A new entity gets a generated id, and the command must give it exactly these keys:
        they are claimed in the transaction of its first events, under a unique constraint.
        When concurrent callers create with the same keys, one wins and the others' commands
        go on to the winner's entity. With `create=True` the command must create: keys that
        are already held raise `IdentifierTaken`, and nothing is persisted.

        A call counts once in `statistics()`, by how it ends: a creation that lost the race
        and went on to the winner is a retry, not an error.
        """
        kind = self._kind(entity_type)
        if kind.identifiers is None:
            raise InvalidIdentifiers(
                f"entity type {entity_type!r} has no natural identifiers: register it with "
                "identifiers=<a function of the state>"
            )
        keys = kind.identifiers.canonical(identifiers)
        check_send_options(timeout, expected_revision)
        if not isinstance(create, bool):
            raise TypeError(f"create must be True or False, got {create!r}")
        options = (metadata, command_id, correlation_id, expected_revision)
        for attempt in range(1, MAX_ROUTING_ATTEMPTS + 1):
            last = attempt == MAX_ROUTING_ATTEMPTS
            owner = await self.store.find_entity(entity_type, keys)
            if owner is not None:
                if create:
                    kind.counts.error += 1  # no entity ran it: this call's one count
                    raise IdentifierTaken(
                        f"{entity_type!r} identifiers {keys} already belong to entity "
                        f"{owner!r}; nothing was persisted",
                        entity_type=entity_type,
                        owner=owner,
                    )
                message = SendMessage(
                    entity_type, owner, command, timeout, options, addressed_by=keys
                )
                try:
                    reply = await self._deliver(message)
                except KeysMoved:
                    if last:
                        kind.counts.error += 1  # the entities counted only retries
                        raise IdentifierTaken(  # unreachable keys: they keep moving
                            f"{entity_type!r} identifiers {keys} kept changing hands while "
                            "the command was routed; nothing was persisted",
                            entity_type=entity_type,
                        ) from None
                    continue  # the owner gave the keys up meanwhile: look them up again
                return replace(reply, entity_id=owner)
            new_id = uuid7()
            creation = SendMessage(
                entity_type, new_id, command, timeout, options, creates_with=keys,
                must_create=create,
            )  # fmt: skip
            try:
                reply = await self._deliver(creation)
            except IdentifierTaken:
                if create:
                    raise  # the entity counted it: with create=True, this is the answer
                if last:
                    kind.counts.error += 1  # the entity counted a retry
                    raise
                continue  # another caller created it first: the command goes to theirs
            return replace(reply, entity_id=new_id)
        raise AssertionError("unreachable: the last attempt returns or raises")

    def _forget_if_unborn(self, kind: EntityKind, actor: EntityActor) -> None:
        """Drops a creation's actor if the entity never came to exist: at once if it is idle,
        or when its mailbox empties, if its caller stopped waiting while it still ran."""
        if actor.revision != 0:
            return
        if actor.task is not None:
            actor.task.add_done_callback(lambda _: self._forget_if_unborn(kind, actor))
            return
        self._forget(actor.persistence_id, actor)
        kind.idle.pop(actor.persistence_id, None)

    async def resolve(self, entity_type: str, identifiers: Mapping[str, Any]) -> str | None:
        """The id of the entity holding these natural keys, or None."""
        kind = self._kind(entity_type)
        if kind.identifiers is None:
            raise InvalidIdentifiers(f"entity type {entity_type!r} has no natural identifiers")
        return await self.store.find_entity(entity_type, kind.identifiers.canonical(identifiers))
