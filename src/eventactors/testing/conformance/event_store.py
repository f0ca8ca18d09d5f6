"""The EventStore contract: append, read_stream, read_all, deletion, persistence_ids."""

from __future__ import annotations

from .event_reads import EventReadContract
from .event_writes import EventWriteContract


class EventStoreContract(EventReadContract, EventWriteContract):
    """Needs `EventStore`: its reads and its writes."""
