"""Opening the store a tool names, read-only by default, and failing in one line when it is
missing, unreachable or not an eventactors store.

Part of `eventactors.inspection`, which re-exports every public name here. A tool opens a
store that an application may be running on, so it must never prepare, migrate or create
one: the read-only stores check the schema instead of ensuring it.
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlsplit

from .errors import EventActorsError
from .serialization import JsonSerializer, Serializer
from .stores.locate import is_dsn, open_store
from .stores.protocols import Store

#: The serializers a tool can name (`--serializer`): how the store's payloads were written.
SERIALIZERS = ("json", "protobuf")


class InspectionError(EventActorsError):
    """What a tool reports in one line: a missing store, an unreachable server, a bad app."""


def one_line(exc: BaseException) -> str:
    """An exception's message on one line (a KeyError's key unquoted), or its type's name."""
    text = str(exc.args[0]) if isinstance(exc, KeyError) and exc.args else str(exc)
    return " ".join(text.split()) or type(exc).__name__


def serializer_named(name: str) -> Serializer:
    """A fresh serializer of the kind `name` names (see `SERIALIZERS`)."""
    if name == "json":
        return JsonSerializer()
    if name == "protobuf":
        from .serialization import ProtobufSerializer

        try:
            return ProtobufSerializer()
        except ImportError as exc:
            raise InspectionError(one_line(exc)) from None
    raise InspectionError(f"a serializer is one of {', '.join(SERIALIZERS)}, got {name!r}")


def open_existing_store(
    location: str,
    *,
    schema: str = "eventactors",
    read_only: bool = True,
    serializer: Serializer | None = None,
) -> Store:
    """`open_store`, except that a missing SQLite file or a malformed URL is an error, and
    the store is read-only unless asked otherwise. Nothing is reached yet: stores connect on
    first use (see `check_reachable`)."""
    location = str(location)
    if is_dsn(location):
        _check_dsn(location)
    elif "://" in location:
        raise InspectionError(
            f"a store is an SQLite file path or a postgresql:// URL, got {location!r}"
        )
    elif not Path(location).is_file():
        raise InspectionError(f"no such store: {location}")
    try:
        return open_store(location, schema=schema, serializer=serializer, read_only=read_only)
    except ValueError as exc:  # a bad schema name
        raise InspectionError(str(exc)) from None


def _check_dsn(dsn: str) -> None:
    """Refuses a URL whose port is not a port, before a driver fails on it less clearly."""
    try:
        urlsplit(dsn).port  # noqa: B018 - parsing the port is the check
    except ValueError as exc:
        raise InspectionError(f"bad store location {redacted(dsn)}: {exc}") from None


def redacted(dsn: str) -> str:
    """The URL without its password, for messages."""
    scheme, _, rest = dsn.partition("://")
    netloc, slash, path = rest.partition("/")
    userinfo, at, host = netloc.rpartition("@")
    if at and ":" in userinfo:
        userinfo = userinfo.split(":", 1)[0] + ":***"
    return f"{scheme}://{userinfo}{at}{host}{slash}{path}"


async def check_reachable(store: Store) -> None:
    """Fails fast, in one line, on a store that cannot be read or holds no event log. A
    read-only store is never given one; a writable store would create it, so tools that write
    check with a read-only store first (see `open_checked`)."""
    try:
        await store.head_position()
    except Exception as exc:  # the first contact can fail in any driver's own way
        where = getattr(store, "path", None) or repr(store)
        message = one_line(exc)
        if not isinstance(exc, EventActorsError):
            message = f"cannot read the store {where}: {type(exc).__name__}: {message}"
        raise InspectionError(message) from None


async def open_checked(
    location: str,
    *,
    schema: str = "eventactors",
    read_only: bool = True,
    serializer: Serializer | None = None,
) -> Store:
    """An existing store, checked with a read-only store first; then, unless `read_only`,
    opened again for writing (which never has an event log to create)."""
    store = open_existing_store(location, schema=schema, read_only=True, serializer=serializer)
    try:
        await check_reachable(store)
    except BaseException:
        await store.close()
        raise
    if read_only:
        return store
    await store.close()
    return open_existing_store(location, schema=schema, read_only=False, serializer=serializer)
