"""Durable-state entities: recover the latest state, decide the next one, write, reply."""

from __future__ import annotations

from datetime import UTC, datetime
from time import perf_counter
from typing import Any

from ..behavior import DurableStateBehavior
from ..records import ACCEPTED, Reply, StateRecord
from ..stores._common import encode_state
from .command_log import command_entry
from .entity import EntityActor, Message
from .payload_limit import too_large


class DurableStateEntity(EntityActor):
    __slots__ = ()

    behavior: DurableStateBehavior[Any]

    async def recover(self) -> None:
        record = await self.kind.store.get_state(self.persistence_id)
        if record is None:
            self.state, self.revision = self.behavior.initial_state(), 0
        else:
            self.state, self.revision = record.state, record.revision

    async def handle(self, message: Message) -> Reply[Any]:
        try:
            new_state = await self.decide(message)
        except BaseException:
            # The handler holds the live state object and may have changed it in place
            # before failing; re-read the stored state (one cheap read) before the next command.
            self.recovered = False
            raise
        if new_state is None:
            return await self.accepted_without_change(message)
        if type(new_state) is not self.kind.state_type:
            raise self.invalid_result(
                new_state,
                f"return a new {self.kind.state_type.__qualname__}, or None for no change",
            )
        revision = self.revision + 1
        record = StateRecord(
            self.persistence_id, revision, self.kind.state_type_name, new_state, datetime.now(UTC)
        )
        started = perf_counter()
        try:
            if self.kind.max_event_bytes is not None:
                self._check_size(new_state)
            claim = self.claim_for(new_state, message)
            command = None
            if self.kind.command_log:
                command = command_entry(self, message, ACCEPTED, revision=revision)
            await self.kind.store.upsert_state(
                self.persistence_id, revision, record, command=command, claim=claim
            )
        except BaseException:
            self.recovered = False
            raise
        self.kind.recorder.appended(self.kind.name, 0, perf_counter() - started)
        self.state, self.revision = new_state, revision
        return Reply(new_state, revision, ())

    def _check_size(self, state: Any) -> None:
        """The store encodes the state itself; this encodes it once more, to refuse one over
        `max_event_bytes` before the write, with the same error as an oversized event."""
        limit = self.kind.max_event_bytes
        size = len(encode_state(self.kind.serializer, state, self.persistence_id))
        if limit is not None and size > limit:
            too_large("state", self.kind.state_type_name, self.persistence_id, size, limit)
