"""Sealing what `EncryptedStore` writes and opening what it reads, row by row.

Opening never fails a whole page for one bad row: an event whose payload cannot be opened
(a wrong master key, a ciphertext moved from another row) comes back still sealed, and its
`event` raises `SerializationError` naming the stream, as an undecodable event does. A reader
that filters events out never fails on them.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from operator import attrgetter
from typing import Any

import msgspec

from ..erased import ErasedEvent
from ..errors import SerializationError
from ..records import CommandRecord, EventEnvelope, EventRecord, PayloadRow
from ._key_ring import ERASED, KeyState, entity_erased, usable
from ._payload_cipher import (
    AESGCM,
    InvalidTag,
    command_aad,
    event_aad,
    is_sealed,
    open_sealed,
    seal,
)

Decode = Callable[[EventEnvelope], Any]

# An envelope is rebuilt from all its fields, read in one call: as `dataclasses.replace`
# would, so fields added to EventEnvelope are carried over, at about half its cost.
_FIELDS = tuple(f.name for f in dataclasses.fields(EventEnvelope) if f.init)
_values_of = attrgetter(*_FIELDS)
_PAYLOAD = _FIELDS.index("payload")
_DECODE = _FIELDS.index("_decode")
_EVENT = _FIELDS.index("_event")
#: The `_event` of an envelope whose `event` is not decoded yet.
UNDECODED = next(f.default for f in dataclasses.fields(EventEnvelope) if f.name == "_event")


def rebuilt(
    envelope: EventEnvelope, payload: bytes, decode: Decode, event: Any = UNDECODED
) -> EventEnvelope:
    """A new envelope: for stores whose reads may hand out the envelopes they keep."""
    values = list(_values_of(envelope))
    values[_PAYLOAD] = payload
    values[_DECODE] = decode
    values[_EVENT] = event
    return EventEnvelope(*values)


def changed_in_place(
    envelope: EventEnvelope, payload: bytes, decode: Decode, event: Any = UNDECODED
) -> EventEnvelope:
    """The same envelope, changed: for stores that build new envelopes for every read, where
    no one else holds it yet (a tenth of the cost of a new one)."""
    object.__setattr__(envelope, "payload", payload)
    object.__setattr__(envelope, "_decode", decode)
    object.__setattr__(envelope, "_event", event)
    return envelope


Rebuild = Callable[[EventEnvelope, bytes, Decode, Any], EventEnvelope]


def seal_record(key: AESGCM, record: EventRecord) -> EventRecord:
    aad = event_aad(
        record.persistence_id, record.sequence_number, record.event_type, record.event_version
    )
    return msgspec.structs.replace(record, payload=seal(key, record.payload, aad))


def seal_command(key: AESGCM, command: CommandRecord) -> CommandRecord:
    aad = command_aad(command.persistence_id, command.command_id, command.command_type)
    return msgspec.structs.replace(command, payload=seal(key, command.payload, aad))


def open_envelope(
    envelope: EventEnvelope, state: KeyState, decode: Decode, rebuild: Rebuild = rebuilt
) -> EventEnvelope:
    """The envelope with its plaintext payload, a tombstone, or one whose `event` raises."""
    if state is ERASED:
        return tombstone(envelope, rebuild)
    payload = envelope.payload
    if not is_sealed(payload):  # written before encryption was turned on
        return rebuild(envelope, payload, decode, UNDECODED)
    try:
        key = usable(state, envelope.persistence_id)
        aad = envelope_aad(envelope)
        return rebuild(envelope, open_sealed(key, payload, aad), decode, UNDECODED)
    except InvalidTag:
        error = unopenable(envelope.persistence_id, envelope.sequence_number, envelope.event_type)
        error = SerializationError(f"{error} (global position {envelope.global_position})")
    except SerializationError as exc:
        error = SerializationError(
            f"{exc} (event {envelope.event_type!r}, sequence {envelope.sequence_number}, "
            f"global position {envelope.global_position})"
        )
    return rebuild(envelope, payload, _failing(error), UNDECODED)


def open_page(
    page: list[EventEnvelope],
    states: dict[str, KeyState],
    decode: Decode,
    rebuild: Rebuild,
) -> list[EventEnvelope]:
    """`open_envelope` of every envelope, with the common case (a sealed payload, its key at
    hand, envelopes the store built for this read) done inline: a projection catching up
    spends its time here."""
    if rebuild is not changed_in_place:
        return [open_envelope(e, states[e.persistence_id], decode, rebuild) for e in page]
    opened: list[EventEnvelope] = []
    change = object.__setattr__
    for envelope in page:
        key = states[envelope.persistence_id]
        payload = envelope.payload
        if type(key) is AESGCM and is_sealed(payload):
            aad = event_aad(
                envelope.persistence_id,
                envelope.sequence_number,
                envelope.event_type,
                envelope.event_version,
            )
            try:
                change(envelope, "payload", open_sealed(key, payload, aad))
            except InvalidTag:
                opened.append(open_envelope(envelope, key, decode, rebuild))  # says why
                continue
            change(envelope, "_decode", decode)  # `_event` is unset: the store just built it
            opened.append(envelope)
        else:
            opened.append(open_envelope(envelope, key, decode, rebuild))
    return opened


def envelope_aad(envelope: EventEnvelope) -> bytes:
    """The associated data an event's payload was sealed with: where it lives, and what."""
    return event_aad(
        envelope.persistence_id,
        envelope.sequence_number,
        envelope.event_type,
        envelope.event_version,
    )


def tombstone(envelope: EventEnvelope, rebuild: Rebuild = rebuilt) -> EventEnvelope:
    """What readers see of an erased entity's event: its metadata, no payload, and an
    `ErasedEvent` as its event."""
    erased = ErasedEvent(envelope.event_type, envelope.persistence_id, envelope.sequence_number)
    return rebuild(envelope, b"", lambda _: erased, erased)


def open_payloads(rows: list[PayloadRow], persistence_id: str, state: KeyState) -> list[PayloadRow]:
    """The (sequence_number, event_type, payload, event_version) rows of
    `read_stream_payloads`, opened; raises at the first that cannot be (recovery decodes
    every row anyway)."""
    if state is ERASED:
        raise entity_erased(persistence_id)
    opened: list[PayloadRow] = []
    for row in rows:
        number, event_type, payload, version = row
        if not is_sealed(payload):  # written before encryption was turned on
            opened.append(row)
            continue
        key = state if type(state) is AESGCM else usable(state, persistence_id)
        try:
            aad = event_aad(persistence_id, number, event_type, version)
            plaintext = open_sealed(key, payload, aad)
        except InvalidTag:
            raise unopenable(persistence_id, number, event_type) from None
        opened.append((number, event_type, plaintext, version))
    return opened


def open_command(command: CommandRecord, state: KeyState) -> CommandRecord:
    """A command-log entry with its plaintext payload; an erased entity's has none."""
    if state is ERASED:
        return msgspec.structs.replace(command, payload=b"")
    if not is_sealed(command.payload):
        return command
    key = usable(state, command.persistence_id)
    aad = command_aad(command.persistence_id, command.command_id, command.command_type)
    try:
        return msgspec.structs.replace(command, payload=open_sealed(key, command.payload, aad))
    except InvalidTag:
        raise SerializationError(
            f"cannot open the payload of command {command.command_id!r} "
            f"({command.command_type!r}) of stream {command.persistence_id!r}: it was not "
            "sealed for this entry, or it was altered"
        ) from None


def unopenable(persistence_id: str, sequence_number: int, event_type: str) -> SerializationError:
    return SerializationError(
        f"cannot open the payload of {event_type!r} (stream {persistence_id!r}, sequence "
        f"{sequence_number}): it was not sealed for this row, or it was altered"
    )


def _failing(error: SerializationError) -> Decode:
    message = str(error)

    def fail(envelope: EventEnvelope) -> Any:
        raise SerializationError(message)

    return fail
