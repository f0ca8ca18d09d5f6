"""Loading the snapshot recovery starts from, or none when it no longer decodes."""

from __future__ import annotations

import logging
from typing import Any

from ..errors import SerializationError
from ..records import Snapshot
from ..stores.protocols import Store

log = logging.getLogger("eventactors.recovery")


async def usable_snapshot(
    store: Store, persistence_id: str, max_sequence: int | None = None
) -> Snapshot[Any] | None:
    """The newest snapshot, or None when it cannot be decoded.

    A snapshot is only a cache of the events before it: once the state's class has changed
    shape, replaying the events (through their upcasters) rebuilds the state, where failing
    would leave the entity unusable until someone deleted the snapshot by hand. If those
    events were deleted, replay's gap check reports it.
    """
    try:
        return await store.load_snapshot(persistence_id, max_sequence=max_sequence)
    except SerializationError as exc:
        log.warning(
            "ignoring the snapshot of %s, which no longer decodes (%s); replaying its events",
            persistence_id,
            exc,
        )
        return None
