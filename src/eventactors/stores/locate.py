"""Opening a store from where it lives: a file path or a PostgreSQL URL, as tools take them."""

from __future__ import annotations

from pathlib import Path

from .protocols import Store


def open_store(location: str | Path, *, schema: str = "eventactors") -> Store:
    """A `PostgresStore` for a postgres:// or postgresql:// URL, else a `SQLiteStore` on the
    file at `location`."""
    if str(location).startswith(("postgres://", "postgresql://")):
        from .postgres import PostgresStore

        return PostgresStore(str(location), schema=schema)
    from .sqlite import SQLiteStore

    return SQLiteStore(location)
