"""A bank with an hour of history, on a real store, for the console's tests.

The earlier events are appended with back-dated timestamps (as an import would write them),
so the throughput chart has more than one bucket; the rest go through the engine, with the
balances projection running, so that the lag page has real offsets.
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


@dataclass(frozen=True)
class Seeded:
    head: int
    lagging_position: int


async def seed_bank(store: ea.Store) -> Seeded:
    engine = await build_engine(store)
    now = datetime.now(UTC)
    for number, owner in enumerate(OWNERS, start=1):
        history: list[tuple[object, datetime]] = [(Opened(owner), now - timedelta(minutes=55))]
        for step in range(number + 2):
            minutes_ago = 50 - step * 5 - number
            event: object = Deposited(1000 * (number + step)) if step % 3 != 2 else Withdrawn(700)
            history.append((event, now - timedelta(minutes=minutes_ago)))
        await _append_history(store, f"acc-{number}", history)
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
        head = await store.head_position()
        await _caught_up(store, "balances", head)
        lagging = max(1, head - 7)
        await store.save_offset(LAGGING, lagging)
    return Seeded(head=head, lagging_position=lagging)


async def _append_history(
    store: ea.Store, entity_id: str, events: list[tuple[object, datetime]]
) -> None:
    serializer = store.serializer
    persistence_id = persistence_id_of("account", entity_id)
    records = [
        ea.EventRecord(
            event_id=uuid7(),
            persistence_id=persistence_id,
            entity_type="account",
            entity_id=entity_id,
            sequence_number=number,
            event_type=serializer.type_name(type(event)),
            payload=serializer.encode(event),
            timestamp=moment,
            metadata={"channel": "import"},
            command_id=uuid7(),
        )
        for number, (event, moment) in enumerate(events, start=1)
    ]
    await store.append(persistence_id, records, 0)


async def _caught_up(store: ea.Store, projection: str, head: int, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        [offset] = await inspection.projection_offsets(store, [projection])
        if offset.position >= head:
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"{projection} stayed at {offset.position}, head {head}")
        await asyncio.sleep(0.01)
