"""Fixtures of the encryption tests: a backend (see `encryption_support.Backend`) per test."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio
from encryption_support import Backend
from postgres_support import DSN, drop_schema, new_schema_name

import eventactors as ea


async def _backend(name: str, tmp_path: Path) -> AsyncIterator[Backend]:
    if name == "memory":
        memory = ea.MemoryStore()
        backend = Backend(name, lambda: memory, None)
    elif name == "sqlite":
        path = tmp_path / "encrypted.db"
        backend = Backend(name, lambda: ea.SQLiteStore(path), str(path))
    else:
        schema = new_schema_name()
        backend = Backend(name, lambda: ea.PostgresStore(DSN, schema=schema), schema)
    try:
        yield backend
    finally:
        await backend.close_all()
        if name == "postgres":
            await drop_schema(backend.where)


@pytest_asyncio.fixture(params=["memory", "sqlite", "postgres"])
async def backend(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Backend]:
    async for opened in _backend(request.param, tmp_path):
        yield opened


@pytest_asyncio.fixture(params=["sqlite", "postgres"])
async def durable_backend(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Backend]:
    """A backend where several store objects (processes) share the data."""
    async for opened in _backend(request.param, tmp_path):
        yield opened
