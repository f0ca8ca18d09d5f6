"""Reading an entity's past: its stored events and its command log."""

from __future__ import annotations

from collections.abc import AsyncIterator

import msgspec

from ._engine_checks import check_entity_id, check_revision
from ._runtime.command_log import decode_command
from ._runtime.history import stream_events
from ._runtime.kinds import EntityKind
from .records import CommandRecord, EventEnvelope, persistence_id_of
from .serialization import Serializer
from .stores.protocols import Store


class History:
    """Mixed into `Engine`: `events` and `command_log`."""

    store: Store
    serializer: Serializer

    def _kind(self, entity_type: str) -> EntityKind:
        raise NotImplementedError

    def events(
        self,
        entity_type: str,
        entity_id: str,
        *,
        from_sequence: int = 1,
        to_sequence: int | None = None,
        page_size: int = 500,
    ) -> AsyncIterator[EventEnvelope]:
        """An entity's stored events in order, as envelopes: `async for e in engine.events()`."""
        kind = self._kind(entity_type)
        check_entity_id(entity_id)
        check_revision(from_sequence, "from_sequence")
        if to_sequence is not None:
            check_revision(to_sequence, "to_sequence")
        if isinstance(page_size, bool) or not isinstance(page_size, int) or page_size < 1:
            raise ValueError(f"page_size must be an int >= 1, got {page_size!r}")
        return stream_events(
            kind, persistence_id_of(entity_type, entity_id), from_sequence, to_sequence, page_size
        )

    async def command_log(
        self, entity_type: str, entity_id: str, *, limit: int | None = None
    ) -> list[CommandRecord]:
        """The commands an entity handled, oldest first, with their outcomes: the audit
        trail of a type registered with `command_log=True`."""
        kind = self._kind(entity_type)
        if not kind.command_log:
            raise ValueError(
                f"entity type {entity_type!r} keeps no command log: register it with "
                "command_log=True"
            )
        check_entity_id(entity_id)
        if limit is not None:
            check_revision(limit, "limit")
        entries = await self.store.read_commands(
            persistence_id_of(entity_type, entity_id), limit=limit
        )
        return [
            msgspec.structs.replace(entry, command=decode_command(self.serializer, entry))
            for entry in entries
        ]
