"""The store contract (eventactors.testing.conformance) against EncryptedStore over every
backend: a wrapper must behave as the store it wraps."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio
from encryption_support import KEY
from postgres_support import DSN, drop_schema, new_schema_name

import eventactors as ea
from eventactors.testing.conformance import OpenStore, StoreContract


class TestEncryptedMemoryStore(StoreContract):
    @pytest.fixture
    def open_store(self) -> OpenStore:
        store = ea.EncryptedStore(ea.MemoryStore(), KEY)
        return lambda: store


class TestEncryptedSQLiteStore(StoreContract):
    @pytest.fixture
    def open_store(self, tmp_path: Path) -> OpenStore:
        return lambda: ea.EncryptedStore(ea.SQLiteStore(tmp_path / "conformance.db"), KEY)


class TestEncryptedPostgresStore(StoreContract):
    @pytest_asyncio.fixture
    async def open_store(self) -> AsyncIterator[OpenStore]:
        schema = new_schema_name()
        try:
            yield lambda: ea.EncryptedStore(ea.PostgresStore(DSN, schema=schema), KEY)
        finally:
            await drop_schema(schema)
