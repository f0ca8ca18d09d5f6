"""A child process for the publisher's restart test: an engine on an SQLite file with the
JetStream publisher attached.

Usage: nats_publisher_child.py <sqlite-path> <nats-url> <stream> <prefix> write|drain [n]
`write` persists a backlog, then attaches the publisher and keeps sending commands to
several entities until it is killed; with `n`, it SIGKILLs itself instead of committing the
publisher's n-th offset, once that page is in JetStream. `drain` publishes what is left,
then prints the publisher's statistics as JSON and exits.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import os
import signal
import sys

from behaviors_for_tests import Add, TallyBehavior

import eventactors as ea
from eventactors.publishers.nats import JetStreamPublisher

ENTITIES = 10
BACKLOG = 40  # commands per entity


class KillAtCommit:
    """The engine's offsets, except that the n-th save kills the process before it is made:
    the page was acknowledged by JetStream, its offset is not stored."""

    def __init__(self, store: ea.Store, n: int) -> None:
        self.store, self.n, self.saves = store, n, 0

    async def get_offset(self, projection: str) -> int | None:
        return await self.store.get_offset(projection)

    async def save_offset(self, projection: str, position: int) -> None:
        self.saves += 1
        if self.saves == self.n:
            os.kill(os.getpid(), signal.SIGKILL)
        await self.store.save_offset(projection, position)

    async def reset_offset(self, projection: str, position: int = 0) -> None:
        await self.store.reset_offset(projection, position)


async def main(path: str, url: str, stream: str, prefix: str, mode: str, kill_at: int) -> None:
    engine = ea.Engine(store=ea.SQLiteStore(path))
    engine.register("tally", TallyBehavior)
    async with JetStreamPublisher(url, stream=stream, subject_prefix=prefix) as publisher:
        async with engine:
            if mode == "drain":
                await publisher.attach(engine, batch_size=500)
                await engine.wait_for_projection("nats-publisher", timeout=60)
            else:  # a backlog first, so the publisher is busy when the kill comes

                async def write(entity: str, commands: int | None) -> None:
                    n = 0
                    while commands is None or n < commands:
                        n += 1
                        await engine.send("tally", entity, Add(n))

                await asyncio.gather(*(write(f"t{i}", BACKLOG) for i in range(ENTITIES)))
                offsets = KillAtCommit(engine.store, kill_at) if kill_at else None
                await publisher.attach(engine, batch_size=25, offset_store=offsets)
                await asyncio.gather(*(write(f"t{i}", None) for i in range(ENTITIES)))
        print(json.dumps(dataclasses.asdict(publisher.statistics())), flush=True)


if __name__ == "__main__":
    path, url, stream, prefix, mode = sys.argv[1:6]
    asyncio.run(main(path, url, stream, prefix, mode, int(sys.argv[6]) if sys.argv[6:] else 0))
