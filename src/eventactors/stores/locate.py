"""Opening a store from where it lives: a file path or a PostgreSQL URL, as tools take them."""

from __future__ import annotations

from pathlib import Path

from ..serialization import Serializer
from .protocols import Store


def is_dsn(location: str | Path) -> bool:
    """Whether `location` names a PostgreSQL server (a postgres:// or postgresql:// URL)
    rather than an SQLite file: the one test every tool that takes a store location uses."""
    return str(location).startswith(("postgres://", "postgresql://"))


def open_store(
    location: str | Path,
    *,
    schema: str = "eventactors",
    serializer: Serializer | None = None,
    read_only: bool = False,
) -> Store:
    """A `PostgresStore` for a postgres:// or postgresql:// URL, else a `SQLiteStore` on the
    file at `location`; `read_only` opens it for reading only (see the stores)."""
    if is_dsn(location):
        from .postgres import PostgresStore

        return PostgresStore(
            str(location), schema=schema, serializer=serializer, read_only=read_only
        )
    from .sqlite import SQLiteStore

    return SQLiteStore(location, serializer=serializer, read_only=read_only)
