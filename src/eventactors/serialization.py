"""Turning events and states into stored bytes and back, by stable type names.

Stored rows name their type with a stable string (the class name, or `__type_name__` when a
class sets one), never a Python import path, so that modules can move without breaking history.
The default serializer writes JSON through msgspec, readable by a person in the database.
Nothing here ever unpickles or evaluates stored data.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Protocol, runtime_checkable

import msgspec

from .errors import SerializationError
from .upcasting import event_version, upcast


def default_type_name(cls: type) -> str:
    """`cls.__type_name__` when the class sets one (for renamed classes), else its name."""
    name = cls.__dict__.get("__type_name__")
    return name if isinstance(name, str) and name else cls.__name__


@runtime_checkable
class Serializer(Protocol):
    """Encodes registered types to bytes and decodes them back by type name."""

    @property
    def is_text(self) -> bool:
        """True when payloads are UTF-8 text (JSON), so stores may keep them readable."""
        ...

    def supports(self, cls: type) -> bool:
        """Whether values of `cls` can be encoded by this serializer at all."""
        ...

    def register(self, cls: type, name: str | None = None) -> str:
        """Adds `cls` under `name` (or its default name) and returns the name used."""
        ...

    def is_registered(self, cls: type) -> bool: ...

    def type_name(self, cls: type) -> str:
        """The stable name of a registered class; `SerializationError` if unregistered."""
        ...

    def encode(self, value: Any) -> bytes: ...

    def decode(self, type_name: str, payload: bytes, version: int | None = None) -> Any:
        """The object a payload holds. An event's `version` older than its registered
        class's is first brought up to date by the upcasters (see `eventactors.upcasting`);
        None (states, commands: unversioned) means the class's current definition."""
        ...


class TypeRegistry:
    """A two-way map between stable type names and classes; a name belongs to one class.

    A class may have several names (its current one first, then the aliases it was stored
    under before a rename); it is encoded under its first.
    """

    def __init__(self) -> None:
        self._by_name: dict[str, type] = {}
        self._by_class: dict[type, str] = {}

    def register(self, cls: type, name: str) -> str:
        known = self._by_name.get(name)
        if known is not None and known is not cls:
            raise SerializationError(
                f"type name {name!r} is already taken by {known.__module__}.{known.__qualname__}; "
                f"give {cls.__module__}.{cls.__qualname__} another name with __type_name__"
            )
        self._by_name[name] = cls
        self._by_class.setdefault(cls, name)
        return name

    def name_of(self, cls: type) -> str:
        try:
            return self._by_class[cls]
        except KeyError:
            raise SerializationError(
                f"type {cls.__qualname__} is not registered with the serializer"
            ) from None

    def class_of(self, name: str) -> type:
        try:
            return self._by_name[name]
        except KeyError:
            raise SerializationError(
                f"unknown type {name!r}: no registered class has this name"
            ) from None

    def current(self, name: str) -> tuple[type, str, int]:
        """The class stored under `name`, its current name and its current version."""
        cls = self.class_of(name)
        return cls, self._by_class[cls], event_version(cls)

    def __contains__(self, cls: object) -> bool:
        return cls in self._by_class


class JsonSerializer:
    """msgspec JSON for `msgspec.Struct` and dataclass types; the default serializer."""

    is_text = True

    def __init__(self) -> None:
        self._registry = TypeRegistry()
        self._encoder = msgspec.json.Encoder()
        # by stored name: the decoder, and the current name and version of its class
        self._decoders: dict[str, tuple[msgspec.json.Decoder[Any], str, int]] = {}

    def supports(self, cls: type) -> bool:
        return isinstance(cls, type) and (
            issubclass(cls, msgspec.Struct) or dataclasses.is_dataclass(cls)
        )

    def register(self, cls: type, name: str | None = None) -> str:
        if not self.supports(cls):
            raise SerializationError(
                f"{cls!r} cannot be serialized as JSON: use a msgspec.Struct or a dataclass"
            )
        return self._registry.register(cls, name or default_type_name(cls))

    def is_registered(self, cls: type) -> bool:
        return cls in self._registry

    def type_name(self, cls: type) -> str:
        return self._registry.name_of(cls)

    def encode(self, value: Any) -> bytes:
        try:
            return self._encoder.encode(value)
        except (TypeError, ValueError, OverflowError, msgspec.EncodeError) as exc:
            raise SerializationError(
                f"cannot encode {type(value).__qualname__} as JSON: {exc}"
            ) from exc

    def decode(self, type_name: str, payload: bytes, version: int | None = None) -> Any:
        known = self._decoders.get(type_name)
        if known is None:
            cls, current_name, current_version = self._registry.current(type_name)
            known = (msgspec.json.Decoder(cls), current_name, current_version)
            self._decoders[type_name] = known
        decoder, current_name, current_version = known
        if version is not None and version != current_version:
            payload = upcast(type_name, current_name, version, current_version, payload, True)
        try:
            return decoder.decode(payload)
        # RecursionError: JSON nested deeper than msgspec goes (a hostile or corrupt payload)
        except (msgspec.DecodeError, TypeError, ValueError, RecursionError) as exc:
            raise SerializationError(f"cannot decode {type_name!r}: {exc}") from exc


class ProtobufSerializer:
    """Protocol-buffer messages, named by their full proto name, as Go and Scala peers store them.

    Needs the `protobuf` package (the `eventactors[protobuf]` extra).
    """

    is_text = False

    def __init__(self) -> None:
        try:
            from google.protobuf.message import DecodeError, Message
        except ImportError as exc:  # pragma: no cover - depends on the environment
            raise ImportError(
                "ProtobufSerializer needs the protobuf package: pip install 'eventactors[protobuf]'"
            ) from exc
        self._message_base: type = Message
        self._decode_error: type[Exception] = DecodeError
        self._registry = TypeRegistry()

    def supports(self, cls: type) -> bool:
        return isinstance(cls, type) and issubclass(cls, self._message_base)

    def register(self, cls: type, name: str | None = None) -> str:
        if not self.supports(cls):
            raise SerializationError(f"{cls!r} is not a protobuf message class")
        return self._registry.register(cls, name or str(cls.DESCRIPTOR.full_name))  # type: ignore[attr-defined]

    def is_registered(self, cls: type) -> bool:
        return cls in self._registry

    def type_name(self, cls: type) -> str:
        return self._registry.name_of(cls)

    def encode(self, value: Any) -> bytes:
        if not isinstance(value, self._message_base):
            raise SerializationError(f"{type(value).__qualname__} is not a protobuf message")
        try:
            return bytes(value.SerializeToString())  # type: ignore[attr-defined]
        except Exception as exc:
            raise SerializationError(
                f"cannot encode {type(value).__qualname__} as protobuf: {exc}"
            ) from exc

    def decode(self, type_name: str, payload: bytes, version: int | None = None) -> Any:
        cls, current_name, current_version = self._registry.current(type_name)
        if version is not None and version != current_version:
            payload = upcast(type_name, current_name, version, current_version, payload, False)
        try:
            return cls.FromString(payload)  # type: ignore[attr-defined]
        except (self._decode_error, TypeError, ValueError) as exc:
            raise SerializationError(f"cannot decode {type_name!r}: {exc}") from exc
