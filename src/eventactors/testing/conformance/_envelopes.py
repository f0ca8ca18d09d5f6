"""What the EventStore contract checks of envelopes."""

from __future__ import annotations

import itertools

import eventactors as ea


def sequences(envelopes: list[ea.EventEnvelope]) -> list[int]:
    return [envelope.sequence_number for envelope in envelopes]


def event_ids(envelopes: list[ea.EventEnvelope] | list[ea.EventRecord]) -> list[str]:
    return [envelope.event_id for envelope in envelopes]


def positions(envelopes: list[ea.EventEnvelope]) -> list[int]:
    return [envelope.global_position for envelope in envelopes]


def strictly_increasing(values: list[int]) -> bool:
    return all(a < b for a, b in itertools.pairwise(values))


async def _none() -> None:
    return None
