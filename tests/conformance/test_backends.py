"""The store contract (eventactors.testing.conformance) against every backend we ship.

Each class supplies only `open_store`: stores on the empty backing data of one test.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio
from postgres_support import DSN, drop_schema, new_schema_name

import eventactors as ea
from eventactors.testing.conformance import OpenStore, StoreContract


class TestMemoryStore(StoreContract):
    @pytest.fixture
    def open_store(self) -> OpenStore:
        # The data lives in the object, so "another store on the same data" is the same object.
        store = ea.MemoryStore()
        return lambda: store


class TestSQLiteStore(StoreContract):
    @pytest.fixture
    def open_store(self, tmp_path: Path) -> OpenStore:
        return lambda: ea.SQLiteStore(tmp_path / "conformance.db")


class TestPostgresStore(StoreContract):
    @pytest_asyncio.fixture
    async def open_store(self) -> AsyncIterator[OpenStore]:
        # A schema of its own per test, dropped afterwards: nothing depends on earlier runs.
        schema = new_schema_name()
        try:
            yield lambda: ea.PostgresStore(DSN, schema=schema)
        finally:
            await drop_schema(schema)
