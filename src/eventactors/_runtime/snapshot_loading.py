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
    """The newest snapshot, or None when it cannot be decoded but the events can replace it.

    A snapshot is only a cache of the events before it: once the state's class has changed
    shape, replaying the events (through their upcasters) rebuilds the state, where failing
    would leave the entity unusable until someone deleted the snapshot by hand. When those
    events were deleted, the snapshot's own error stands: it says what is wrong (a changed
    class, a wrong encryption key), where replay could only report the gap.
    """
    try:
        return await store.load_snapshot(persistence_id, max_sequence=max_sequence)
    except SerializationError as exc:
        first = await store.read_stream_payloads(persistence_id, 1, 1)
        if not first or first[0][0] != 1:
            raise
        log.warning(
            "ignoring the snapshot of %s, which no longer decodes (%s); replaying its events",
            persistence_id,
            exc,
        )
        return None
