"""Reading events written by older definitions of their types: versions, upcasters, aliases.

An event class declares its version with `__event_version__` (1 when unset); every stored
event carries the version that wrote it. Reading an older event runs the chain of upcasters
registered for its type, from the stored version to the current one, before decoding, so
replay, projections, `events()` and time travel all see today's class. Events are never
rewritten in the store: history stays as it was written.

A renamed class keeps its history readable by listing its old names in `__type_aliases__`;
upcasters are looked up under the stored name first, then under the class's current name.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import msgspec

from .errors import SerializationError

Upcast = Callable[[Any], Any]
F = TypeVar("F", bound=Upcast)

_upcasters: dict[tuple[str, int], Upcast] = {}


def upcaster(event_type: str | type, from_version: int) -> Callable[[F], F]:
    """Registers a function turning a payload of `event_type` at `from_version` into one at
    `from_version + 1`; the functions for consecutive versions chain.

    The function receives the stored payload as plain data (dicts, lists, strings, numbers)
    for the JSON serializer, or as bytes for a binary one, and returns the same kind.
    `event_type` is the stored type name or the event class (a protobuf class is named by
    its full proto name, as `ProtobufSerializer` stores it).
    """
    name = _type_name(event_type)
    if not isinstance(from_version, int) or isinstance(from_version, bool) or from_version < 1:
        raise ValueError(f"from_version must be an int >= 1, got {from_version!r}")

    def register(function: F) -> F:
        if not callable(function):
            raise TypeError(f"an upcaster must be callable, got {function!r}")
        known = _upcasters.get((name, from_version))
        if known is not None and _qualified(known) != _qualified(function):
            raise ValueError(
                f"an upcaster for {name!r} from version {from_version} is already registered: "
                f"{_qualified(known)}"
            )
        _upcasters[(name, from_version)] = function
        return function

    return register


def unregister_upcaster(event_type: str | type, from_version: int) -> None:
    """Removes a registration (tests that register throwaway upcasters clean up with it)."""
    _upcasters.pop((_type_name(event_type), from_version), None)


def event_version(cls: type) -> int:
    """The current version of an event class: `__event_version__`, or 1."""
    version = getattr(cls, "__event_version__", 1)
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise SerializationError(
            f"{cls.__qualname__}.__event_version__ must be an int >= 1, got {version!r}"
        )
    return version


def type_aliases(cls: type) -> tuple[str, ...]:
    """The former type names of a renamed class, from its own `__type_aliases__`."""
    aliases = cls.__dict__.get("__type_aliases__", ())
    if isinstance(aliases, str) or not all(isinstance(alias, str) and alias for alias in aliases):
        raise SerializationError(
            f"{cls.__qualname__}.__type_aliases__ must be a tuple of non-empty type names, "
            f"got {aliases!r}"
        )
    return tuple(aliases)


def upcast(
    stored_name: str,
    current_name: str,
    stored_version: int,
    current_version: int,
    payload: bytes,
    is_text: bool,
) -> bytes:
    """The payload brought from `stored_version` to `current_version` by the registered chain."""
    if stored_version > current_version:
        raise SerializationError(
            f"cannot decode {stored_name!r} version {stored_version}: the registered class "
            f"is version {current_version}, older than the code that wrote the event"
        )
    try:
        data: Any = msgspec.json.decode(payload) if is_text else payload
    except msgspec.DecodeError as exc:
        raise SerializationError(
            f"cannot decode {stored_name!r} version {stored_version} to upcast it: {exc}"
        ) from exc
    for version in range(stored_version, current_version):
        function = _upcasters.get((stored_name, version)) or _upcasters.get((current_name, version))
        if function is None:
            raise SerializationError(
                f"cannot decode {stored_name!r} version {stored_version}: the class is "
                f"version {current_version} and no upcaster from version {version} is "
                f"registered (@ea.upcaster({current_name!r}, from_version={version}))"
            )
        try:
            data = function(data)
        except Exception as exc:
            raise SerializationError(
                f"upcaster {_qualified(function)} of {stored_name!r} from version {version} "
                f"failed: {type(exc).__name__}: {exc}"
            ) from exc
    if not is_text:
        if not isinstance(data, bytes):
            raise SerializationError(
                f"upcasters of {stored_name!r} must return bytes for a binary serializer, "
                f"got {type(data).__name__}"
            )
        return data
    try:
        return msgspec.json.encode(data)
    except (TypeError, msgspec.EncodeError) as exc:
        raise SerializationError(
            f"upcasters of {stored_name!r} returned data that is not JSON: {exc}"
        ) from exc


def _type_name(event_type: str | type) -> str:
    if isinstance(event_type, type):
        from .serialization import default_type_name  # serialization imports this module

        descriptor = getattr(event_type, "DESCRIPTOR", None)  # a protobuf message class
        full_name = getattr(descriptor, "full_name", None)
        if isinstance(full_name, str) and full_name:
            return full_name  # the name ProtobufSerializer stores it under
        return default_type_name(event_type)
    if isinstance(event_type, str) and event_type:
        return event_type
    raise TypeError(f"event_type must be an event class or a type name, got {event_type!r}")


def _qualified(function: Upcast) -> str:
    module = getattr(function, "__module__", "?")
    return f"{module}.{getattr(function, '__qualname__', repr(function))}"
