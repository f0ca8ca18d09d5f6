"""Gap-free global order on PostgreSQL: a reader following read_all never skips an event,
however concurrent writers' transactions interleave and commit."""

from __future__ import annotations

import asyncio
import random
import time
from datetime import UTC, datetime

import msgspec
from postgres_support import DSN

import eventactors as ea
from eventactors._ids import uuid7

WRITERS = 8
EVENTS_PER_WRITER = 300
STREAMS_PER_WRITER = 4


class Tick(msgspec.Struct, frozen=True):
    writer: int
    n: int


def record(stream: str, sequence: int, event: Tick) -> ea.EventRecord:
    return ea.EventRecord(
        event_id=uuid7(),
        persistence_id=stream,
        entity_type="tick",
        entity_id=stream.partition("|")[2],
        sequence_number=sequence,
        event_type="Tick",
        payload=msgspec.json.encode(event),
        timestamp=datetime.now(UTC),
    )


async def writer(number: int, schema: str, rng: random.Random) -> list[str]:
    """Appends EVENTS_PER_WRITER events in batches of 1-4 over its own streams."""
    store = ea.PostgresStore(DSN, schema=schema, max_connections=2)
    sequences = dict.fromkeys((f"tick|w{number}-s{k}" for k in range(STREAMS_PER_WRITER)), 0)
    written: list[str] = []
    try:
        while len(written) < EVENTS_PER_WRITER:
            stream = rng.choice(list(sequences))
            size = min(rng.randint(1, 4), EVENTS_PER_WRITER - len(written))
            first = sequences[stream]
            batch = [
                record(stream, first + i + 1, Tick(number, len(written) + i)) for i in range(size)
            ]
            await store.append(stream, batch, first)
            sequences[stream] += size
            written.extend(r.event_id for r in batch)
    finally:
        await store.close()
    return written


async def test_a_reader_following_read_all_sees_every_event_once_in_order(pg_schema, capsys):
    reader = ea.PostgresStore(DSN, schema=pg_schema)
    await reader.highest_sequence_number("warm-up")  # creates the schema before writers race
    rng = random.Random(2026)
    total = WRITERS * EVENTS_PER_WRITER
    seen: list[ea.EventEnvelope] = []
    started = time.perf_counter()
    writers = asyncio.ensure_future(
        asyncio.gather(*(writer(n, pg_schema, random.Random(rng.random())) for n in range(WRITERS)))
    )
    position = 0
    while True:  # follow the log while the writers write, then until it is drained
        page = await reader.read_all(after_position=position, limit=rng.randint(1, 50))
        if page:
            position = page[-1].global_position
            seen.extend(page)
        elif writers.done():
            break
        else:
            await reader.wait_for_events(position, timeout=0.2)
    written = await writers
    elapsed = time.perf_counter() - started
    await reader.close()

    expected_ids = {event_id for batch in written for event_id in batch}
    seen_ids = [envelope.event_id for envelope in seen]
    assert len(expected_ids) == total
    assert len(seen_ids) == len(set(seen_ids)) == total, "an event was skipped or seen twice"
    assert set(seen_ids) == expected_ids
    positions = [envelope.global_position for envelope in seen]
    assert positions == sorted(positions) and len(set(positions)) == total
    for stream in {envelope.persistence_id for envelope in seen}:
        numbers = [e.sequence_number for e in seen if e.persistence_id == stream]
        assert numbers == list(range(1, len(numbers) + 1)), f"{stream} out of order"
    with capsys.disabled():
        print(
            f"\n[gap test] {WRITERS} writers, {total} events in {elapsed:.2f}s "
            f"({total / elapsed:,.0f} events/s), reader saw each exactly once, in order"
        )
