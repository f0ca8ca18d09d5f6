"""What a reader sees in place of an erased entity's event.

Crypto-shredding (`Engine.erase_entity`) deletes the entity's data key; its events stay in
the log, ciphertext no one can read. Readers of the log (`read_all`, `read_stream`,
`engine.events()`, projections, subscriptions) still get one envelope per event, with every
stored field as it was, so that positions, offsets and sequence numbers keep working; only
the payload is gone, and `envelope.event` is an `ErasedEvent` instead of an error.
"""

from __future__ import annotations

import msgspec


class ErasedEvent(msgspec.Struct, frozen=True):
    """The `event` of a tombstone envelope: an event of an erased entity.

    A tombstone envelope keeps the event's metadata (event id, positions, sequence number,
    `event_type`, timestamp, tags, metadata, command and correlation ids) and has
    `payload == b""`. A projection that must skip erased data tests
    `isinstance(envelope.event, ea.ErasedEvent)`.
    """

    event_type: str  # the type name of the event that was erased
    persistence_id: str
    sequence_number: int
