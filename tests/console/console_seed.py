"""A bank with an hour of history, on a real store, for the console's tests.

The earlier events are appended with back-dated timestamps in time order (as an import
would write them), so the throughput chart has more than one bucket; then some go through
the engine, with the balances projection running, so that the lag page has real offsets;
last come streams the engine would not write: a long one, one of an unregistered event type,
and one with a blank entity id.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from eventactors_examples.bank.app import build_engine
from eventactors_examples.bank.domain import Deposit, Deposited, Open, Opened, Withdraw, Withdrawn

import eventactors as ea
from eventactors import inspection
from eventactors._ids import uuid7
from eventactors.records import persistence_id_of

#: An owner name that is an attack on any page that forgets to escape it.
XSS_OWNER = '<script>window.pwned=1</script><img src=x onerror="window.pwned=2">'
OWNERS = ["Ann Lee", "Bo Chen", "Cara Diaz", "Dev Patel", "Eli Novak", "Fay Okafor"]
LAGGING = "audit-export"  # a projection whose offset stays behind
#: A projection name that would end the lag chart's JSON block if it were not escaped.
XSS_PROJECTION = "</script><script>window.pwned=4</script>"
LONG_STREAM = 123  # events of account|bob: more than one timeline page
UNKNOWN_TYPE = "LegacyFrozen"  # the only event of account|raw, registered by no behavior


@dataclass(frozen=True)
class Seeded:
    head: int
    lagging_position: int
    balances_position: int
    timestamps: tuple[datetime, ...]  # of every event, in log order


async def seed_bank(store: ea.Store) -> Seeded:
    """Seeds the bank on `store`, and closes it."""
    try:
        return await _seed(store)
    finally:
        await store.close()


async def _seed(store: ea.Store) -> Seeded:
    engine = await build_engine(store)
    now = datetime.now(UTC)
    history: list[tuple[str, object, datetime]] = []
    for number, owner in enumerate(OWNERS, start=1):
        history.append((f"acc-{number}", Opened(owner), now - timedelta(minutes=55)))
        for step in range(number + 2):
            minutes_ago = 50 - step * 5 - number
            event: object = Deposited(1000 * (number + step)) if step % 3 != 2 else Withdrawn(700)
            history.append((f"acc-{number}", event, now - timedelta(minutes=minutes_ago)))
    for entity_id, event, moment in sorted(history, key=lambda entry: entry[2]):
        await _append(store, entity_id, [(event, moment)])
    async with engine:
        await engine.send(
            "account", "acc-1", Deposit(300), timeout=10.0,
            metadata={"channel": "teller", "branch": "north"},
            correlation_id="corr-ann-300",
        )  # fmt: skip
        await engine.send("account", "acc-2", Withdraw(1500), timeout=10.0)
        with contextlib.suppress(ea.Rejected):  # refused: nothing is written
            await engine.send("account", "acc-3", Withdraw(10**9), timeout=10.0)
        await engine.send("account", "mallory", Open(XSS_OWNER), timeout=10.0)
        await engine.send("account", "mallory", Deposit(42), timeout=10.0)
        await engine.send("account", "acc-cmd", Open("Gil Ruiz"), timeout=10.0)
        await engine.send("account", "acc-cmd", Deposit(500), timeout=10.0)
        balances = await store.head_position()
        await _caught_up(store, "balances", balances)
    later = datetime.now(UTC)
    bob = [(Opened("Bob Stone"), later)]
    bob += [(Deposited(n), later + timedelta(milliseconds=n)) for n in range(2, LONG_STREAM + 1)]
    await _append(store, "bob", bob)
    await _append(store, "raw", [(RawEvent(UNKNOWN_TYPE, b'{"reason": "audit"}'), later)])
    await _append(store, "", [(Opened("Nobody"), later)])
    head = await store.head_position()
    lagging = max(1, head - 7)
    await store.save_offset(LAGGING, lagging)
    await store.save_offset(XSS_PROJECTION, head)
    timestamps = tuple(envelope.timestamp for envelope in await store.read_all(0, head + 1))
    return Seeded(head, lagging, balances, timestamps)


@dataclass(frozen=True)
class RawEvent:
    """An event as stored bytes under a type name no behavior registers."""

    event_type: str
    payload: bytes


async def _append(store: ea.Store, entity_id: str, events: list[tuple[object, datetime]]) -> None:
    """Appends events as an import would, bypassing the engine (and its entity id checks)."""
    serializer = store.serializer
    persistence_id = persistence_id_of("account", entity_id)
    highest = await store.highest_sequence_number(persistence_id)
    records = [
        ea.EventRecord(
            event_id=uuid7(),
            persistence_id=persistence_id,
            entity_type="account",
            entity_id=entity_id,
            sequence_number=number,
            event_type=(
                event.event_type if isinstance(event, RawEvent)
                else serializer.type_name(type(event))
            ),
            payload=event.payload if isinstance(event, RawEvent) else serializer.encode(event),
            timestamp=moment,
            metadata={"channel": "import"},
            command_id=uuid7(),
        )
        for number, (event, moment) in enumerate(events, start=highest + 1)
    ]  # fmt: skip
    await store.append(persistence_id, records, highest)


async def _caught_up(store: ea.Store, projection: str, head: int, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        [offset] = await inspection.projection_offsets(store, [projection])
        if offset.position >= head:
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"{projection} stayed at {offset.position}, head {head}")
        await asyncio.sleep(0.01)
