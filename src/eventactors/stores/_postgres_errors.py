"""Mapping asyncpg's errors onto the framework's: conflicts, bad data, an unreachable server."""

from __future__ import annotations

import asyncpg

from ..errors import (
    ConcurrencyError,
    EventActorsError,
    SerializationError,
    StoreUnavailable,
    WriteRefused,
)

_UNAVAILABLE: tuple[type[BaseException], ...] = (
    asyncpg.PostgresConnectionError,  # class 08: the connection failed or was lost
    asyncpg.InterfaceError,  # the client's connection is closed or unusable
    asyncpg.InternalClientError,  # the protocol state broke when the connection was lost
    asyncpg.exceptions.OperatorInterventionError,  # class 57: shutdown, restart, cancel
    asyncpg.exceptions.InsufficientResourcesError,  # class 53: disk full, too many connections
    asyncpg.exceptions.InvalidAuthorizationSpecificationError,
    asyncpg.exceptions.InvalidCatalogNameError,  # no such database
    asyncpg.exceptions.ReadOnlySQLTransactionError,  # a standby, or a read-only server
    asyncpg.exceptions.IdleInTransactionSessionTimeoutError,
    asyncpg.exceptions.LockNotAvailableError,  # lock_timeout while setting up the schema
    OSError,  # refused, reset, unreachable
    TimeoutError,
)
_CONFLICTS: tuple[type[BaseException], ...] = (
    asyncpg.UniqueViolationError,
    asyncpg.exceptions.DeadlockDetectedError,
    asyncpg.exceptions.SerializationError,
)


# Data that cannot be stored: refused by the server, or by asyncpg while encoding it (its
# client-side DataError is also an InterfaceError, but the connection is fine).
_BAD_DATA: tuple[type[BaseException], ...] = (
    asyncpg.exceptions.UntranslatableCharacterError,
    asyncpg.DataError,
    asyncpg.exceptions._base.DataError,
)


# The database's own rules (constraints, triggers raising errors) refusing a write.
_REFUSALS: tuple[type[BaseException], ...] = (
    asyncpg.IntegrityConstraintViolationError,
    asyncpg.exceptions.RaiseError,
)


# Errors after which a connection must not be reused: its protocol state may be broken.
CONNECTION_BROKEN: tuple[type[BaseException], ...] = (
    asyncpg.InterfaceError,
    asyncpg.InternalClientError,
    asyncpg.PostgresConnectionError,
    asyncpg.exceptions.OperatorInterventionError,
    OSError,
)


def translate_error(exc: BaseException, where: str) -> BaseException:
    """The framework's error for `exc`, with `where` (server and schema, never a password)."""
    if isinstance(exc, EventActorsError):
        return exc
    error: BaseException
    if isinstance(exc, _CONFLICTS):
        error = ConcurrencyError(f"conflicting write in {where}: {exc}")
    elif isinstance(exc, _BAD_DATA):
        error = SerializationError(f"{where} refused the data: {exc}")
    elif isinstance(exc, _REFUSALS):
        error = WriteRefused(f"{where} refused the write: {type(exc).__name__}: {exc}")
    elif isinstance(exc, _UNAVAILABLE):
        error = StoreUnavailable(f"{where} is unavailable: {type(exc).__name__}: {exc}")
    else:
        return exc
    error.__cause__ = exc
    return error
