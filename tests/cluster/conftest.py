"""Cluster tests run on one local Ray, started once per test session with 2 CPUs, and on the
real PostgreSQL. Each test gets its own Ray namespace (so its own shard actors) and its own
schema; its actors are ended and its schema dropped afterwards."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
import ray
from cluster_behaviors import register
from postgres_support import DSN, drop_schema, new_schema_name

import eventactors as ea
from eventactors.cluster.ray_actors import named_actors

TESTS = Path(__file__).resolve().parent.parent

MakeEngine = Callable[..., ea.Engine]


@pytest.fixture(scope="session")
def ray_cluster() -> Iterator[None]:
    # Shard processes import the test behaviors by module name: give them the tests folder.
    ray.init(
        num_cpus=2,
        include_dashboard=False,
        log_to_driver=False,
        logging_level="ERROR",
        runtime_env={"env_vars": {"PYTHONPATH": str(TESTS)}},
    )
    yield
    ray.shutdown()


@pytest_asyncio.fixture
async def cluster_app(ray_cluster: None) -> AsyncIterator[Any]:
    """`app.engine(num_shards=4, **register_options)` makes engines of one application:
    its own namespace and schema. Every engine made is stopped, then the cluster is."""
    app = ClusterApp()
    try:
        yield app
    finally:
        await app.close()


class ClusterApp:
    def __init__(self) -> None:
        self.schema = new_schema_name()
        self.namespace = f"test-{uuid.uuid4().hex[:12]}"
        self.engines: list[ea.Engine] = []

    def store(self) -> ea.PostgresStore:
        return ea.PostgresStore(DSN, schema=self.schema)

    def cluster(self, num_shards: int = 4) -> ea.RayCluster:
        return ea.RayCluster(num_shards=num_shards, namespace=self.namespace)

    def engine(self, num_shards: int = 4, **register_options: Any) -> ea.Engine:
        engine = ea.Engine(store=self.store(), cluster=self.cluster(num_shards))
        self.engines.append(register(engine, **register_options))
        return engine

    async def close(self) -> None:
        try:
            for engine in self.engines:
                await engine.stop()
            if self.engines:
                stopper = register(ea.Engine(store=self.store(), cluster=self.engines[0].cluster))
                await stopper.stop_cluster()
                for _ in range(100):  # ray.kill is asynchronous: the names go within moments
                    if not named_actors(self.cluster()):
                        break
                    await asyncio.sleep(0.1)
                assert named_actors(self.cluster()) == [], "stop_cluster left actors behind"
        finally:
            await drop_schema(self.schema)
