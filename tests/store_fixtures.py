"""Fixtures shared by engine-level tests that must run on every durable store.

Loaded as a plugin (`-p store_fixtures` in pytest's options), so that no two conftest modules
compete for one name.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable

import pytest
import pytest_asyncio
from postgres_support import DSN, drop_schema, new_schema_name

import eventactors as ea

OpenStore = Callable[[], ea.Store]


@pytest_asyncio.fixture(params=["sqlite", "postgres"])
async def open_durable_store(request: pytest.FixtureRequest, tmp_path) -> AsyncIterator[OpenStore]:
    """Opens store objects on one fresh database: an SQLite file, or a PostgreSQL schema."""
    if request.param == "sqlite":
        yield lambda: ea.SQLiteStore(tmp_path / "engine.db")
        return
    schema = new_schema_name()
    try:
        yield lambda: ea.PostgresStore(DSN, schema=schema)
    finally:
        await drop_schema(schema)


@pytest_asyncio.fixture
async def pg_schema() -> AsyncIterator[str]:
    """A PostgreSQL schema of this test's own, dropped afterwards."""
    schema = new_schema_name()
    try:
        yield schema
    finally:
        await drop_schema(schema)
