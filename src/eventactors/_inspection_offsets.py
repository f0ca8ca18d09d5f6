"""Projection offsets against the log's head, read from the store without running anything.

Part of `eventactors.inspection`, which re-exports every public name here. A projection's
state and last error live only in the process that runs it; what any other process can know
is where its offset stands.
"""

from __future__ import annotations

from collections.abc import Sequence

import msgspec

from ._inspection_stores import InspectionError
from .stores.protocols import OffsetListing, Store


class ProjectionOffset(msgspec.Struct, frozen=True):
    """Where a projection's saved offset stands: `lag` events of the log are past it."""

    name: str
    position: int  # the global position it has handled up to (0: never saved)
    head: int  # the log's head when this was read
    lag: int  # head - position, never below 0


async def projection_offsets(
    store: Store, names: Sequence[str] | None = None, *, also: Sequence[str] = ()
) -> list[ProjectionOffset]:
    """Position, head and lag of each projection in name order, against one read of the head.

    Without `names`, of every projection with a saved offset (the store must offer
    `list_offsets`), and of those in `also`; with `names`, of exactly those. A name never
    saved is at position 0."""
    if names is None:
        if not isinstance(store, OffsetListing):
            raise InspectionError(
                f"{type(store).__name__} cannot list its offsets: name the projections"
            )
        saved = await store.list_offsets()
        positions = {name: saved.get(name, 0) for name in sorted({*saved, *also})}
    else:
        positions = {name: await store.get_offset(name) or 0 for name in names}
    head = await store.head_position()
    return [
        ProjectionOffset(name, position, head, max(0, head - position))
        for name, position in positions.items()
    ]
