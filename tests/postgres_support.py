"""The real local PostgreSQL for tests: each test gets a schema of its own, dropped after.

Tests that need PostgreSQL fail (they never skip) when it is not reachable: CI must have it.
"""

from __future__ import annotations

import os
import uuid

import asyncpg

DSN = os.environ.get("EVENTACTORS_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/test")


def new_schema_name() -> str:
    return f"t_{uuid.uuid4().hex[:20]}"


async def drop_schema(schema: str) -> None:
    connection = await asyncpg.connect(DSN, timeout=10)
    try:
        await connection.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
    finally:
        await connection.close()
