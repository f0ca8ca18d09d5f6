"""Projections in cluster mode: a singleton actor per projection, exactly once in the cluster,
or N slice partitions that together see every event once, each stream in order."""

from __future__ import annotations

import asyncio
import functools
from collections import Counter

import asyncpg
import pytest
import ray
from cluster_behaviors import SEEN_TABLE, Deposit, record_events, register
from postgres_support import DSN

import eventactors as ea
from eventactors.cluster import slice_of, slice_ranges


async def seen_rows(schema: str) -> list[asyncpg.Record]:
    connection = await asyncpg.connect(DSN)
    try:
        return await connection.fetch(
            f'SELECT projection, global_position, persistence_id, sequence FROM "{schema}".seen '
            "ORDER BY id"
        )
    finally:
        await connection.close()


async def prepare(engine: ea.Engine, schema: str) -> None:
    """Creates the read model's table in the app's schema (the store creates the schema)."""
    await engine.store.head_position()
    connection = await asyncpg.connect(DSN)
    try:
        await connection.execute(SEEN_TABLE.format(schema=schema))
    finally:
        await connection.close()


async def write_events(engine: ea.Engine, count: int, entities: int = 40) -> None:
    await asyncio.gather(
        *(engine.send("account", f"p-{i % entities}", Deposit(1)) for i in range(count))
    )


async def test_a_projection_runs_once_in_the_cluster_whoever_adds_it(cluster_app):
    first, second = cluster_app.engine(), cluster_app.engine()
    handler = functools.partial(record_events, cluster_app.schema)
    await prepare(first, cluster_app.schema)
    async with first, second:
        for engine in (first, second):  # both drivers add it: one actor runs it
            await engine.add_projection("seen", handler, transactional=True, batch_size=50)
        await write_events(first, 300)
        status = await first.wait_for_projection("seen", timeout=60)
        assert status.state is ea.ProjectionState.RUNNING
        assert (await second.fetch_projection_status("seen")).position == status.position
        singleton = ray.get_actor("projection-seen", namespace=cluster_app.namespace)
        pid = await singleton.pid.remote()

        # Killed, it comes back (a new process) and resumes from its offset.
        ray.kill(singleton, no_restart=False)
        await write_events(second, 100)
        status = await _wait_after_restart(first, "seen")
        assert await singleton.pid.remote() != pid
        assert await first.is_projection_running("seen")

    rows = await seen_rows(cluster_app.schema)
    positions = [row["global_position"] for row in rows]
    assert positions == list(range(1, 401))  # 400 events, each seen once, in order


async def _wait_after_restart(engine: ea.Engine, name: str) -> ea.ProjectionStatus:
    deadline = asyncio.get_running_loop().time() + 60
    while True:
        try:
            return await engine.wait_for_projection(name, timeout=30)
        except ea.ShardUnavailable:  # the call reached the actor as it died
            assert asyncio.get_running_loop().time() < deadline
            await asyncio.sleep(0.1)


async def test_sliced_partitions_together_see_every_event_exactly_once(cluster_app):
    handler = functools.partial(record_events, cluster_app.schema)
    async with cluster_app.engine() as engine:
        await prepare(engine, cluster_app.schema)
        await write_events(engine, 200)  # before the projection: caught up from the log
        await engine.add_projection(
            "sliced", handler, transactional=True, batch_size=40, partitions=4
        )
        await write_events(engine, 200)  # and live
        status = await engine.wait_for_projection("sliced", timeout=60)
        assert status.events_handled == 400 and status.lag == 0
        assert await engine.is_projection_running("sliced")
        offsets = [
            await engine.store.get_offset(f"sliced/slices-{r.start}-{r.stop - 1}")
            for r in slice_ranges(4)
        ]
        assert all(offset is not None and offset > 0 for offset in offsets)
        pids = {
            await ray.get_actor(
                f"projection-sliced/slices-{r.start}-{r.stop - 1}", namespace=cluster_app.namespace
            ).pid.remote()
            for r in slice_ranges(4)
        }
        assert len(pids) == 4  # four processes
        await engine.remove_projection("sliced")

    rows = await seen_rows(cluster_app.schema)
    assert Counter(row["global_position"] for row in rows) == Counter(range(1, 401))
    streams: dict[str, list[int]] = {}
    for row in rows:
        streams.setdefault(row["persistence_id"], []).append(row["sequence"])
    for sequences in streams.values():  # each stream in order, within its one partition
        assert sequences == list(range(1, len(sequences) + 1))


async def test_partitions_split_a_projection_in_one_process_too(pg_schema):
    engine = register(ea.Engine(store=ea.PostgresStore(DSN, schema=pg_schema)))
    seen: list[tuple[str, int]] = []

    def handler(envelope: ea.EventEnvelope) -> None:
        seen.append((envelope.persistence_id, envelope.global_position))

    async with engine:
        await write_events(engine, 120)
        await engine.add_projection("local", handler, partitions=3)
        status = await engine.wait_for_projection("local", timeout=30)
        assert status.events_handled == 120
        assert engine.projection_status("local").name == "local"
        await engine.remove_projection("local")
    assert sorted(position for _, position in seen) == list(range(1, 121))
    for part in slice_ranges(3):
        assert any(slice_of(pid) in part for pid, _ in seen)


@pytest.mark.parametrize(
    ("options", "named"),
    [
        ({"partitions": 0}, "partitions"),
        ({"partitions": 2000}, "partitions"),
        ({"partitions": 2, "slices": range(0, 10)}, "not both"),
        ({"partitions": 2, "reset": lambda: None}, "reset"),
        ({"slices": range(0, 2000)}, "slices"),
        ({"slices": range(5, 5)}, "slices"),
        ({"slices": [1, 2]}, "slices"),
    ],
)
async def test_bad_partitioning_is_refused_by_name(options, named):
    async with ea.Engine() as engine:
        with pytest.raises((ValueError, TypeError), match=named):
            await engine.add_projection("p", lambda e: None, **options)
