"""Natural identifiers: the business keys (an email, an ISBN and copy number) that address an
entity besides its generated id.

An entity type's `identifiers` callable derives the keys from the entity's state. Its key
names are fixed when the type is registered, by calling it on the initial state. A key set
is stored in canonical form (JSON, keys sorted), unique per entity type.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import msgspec

from .errors import InvalidIdentifiers

IdentifiersOf = Callable[[Any], Mapping[str, Any]]

_encoder = msgspec.json.Encoder(order="sorted")
MAX_VALUE_LENGTH = 1024
#: The stored key set, in UTF-8 bytes: under PostgreSQL's limit on a unique index's entry.
MAX_CANONICAL_BYTES = 2000


class IdentifierSpec:
    """One entity type's identifiers callable and the key names it returns."""

    __slots__ = ("entity_type", "names", "of")

    def __init__(self, entity_type: str, of: IdentifiersOf, initial_state: Any) -> None:
        if not callable(of):
            raise TypeError(f"identifiers must be a callable of the state, got {of!r}")
        self.entity_type = entity_type
        self.of = of
        probe = of(initial_state)
        if not isinstance(probe, Mapping) or not probe:
            raise TypeError(
                f"identifiers of {entity_type!r} must return a non-empty mapping of key names "
                f"to values, got {probe!r} for the initial state"
            )
        for name in probe:
            if not isinstance(name, str) or not name:
                raise TypeError(f"identifier key names must be non-empty str, got {name!r}")
        self.names: tuple[str, ...] = tuple(sorted(probe))

    def canonical(self, keys: object) -> str:
        """The stored form of caller-given keys; `InvalidIdentifiers` names what is wrong."""
        if not isinstance(keys, Mapping):
            raise InvalidIdentifiers(
                f"identifiers of {self.entity_type!r} must be a mapping such as "
                f"{ {name: '...' for name in self.names} }, got {type(keys).__qualname__}"
            )
        unknown = sorted(str(name) for name in keys if name not in self.names)
        missing = [name for name in self.names if name not in keys]
        if unknown or missing:
            problems = []
            if unknown:
                problems.append(f"unknown key {', '.join(map(repr, unknown))}")
            if missing:
                problems.append(f"missing key {', '.join(map(repr, missing))}")
            raise InvalidIdentifiers(
                f"identifiers of {self.entity_type!r}: {' and '.join(problems)}; its keys are "
                + ", ".join(map(repr, self.names))
            )
        for name in self.names:
            _check_value(self.entity_type, name, keys[name])
        canonical = _encoder.encode({name: keys[name] for name in self.names})
        if len(canonical) > MAX_CANONICAL_BYTES:
            raise InvalidIdentifiers(
                f"identifiers of {self.entity_type!r} take {len(canonical)} bytes of UTF-8 "
                f"together; the limit is {MAX_CANONICAL_BYTES}"
            )
        return canonical.decode()

    def of_state(self, state: Any) -> str | None:
        """The canonical keys the state holds, or None while any of them is unset (an empty
        string or None): an entity that has not been created yet holds no keys."""
        keys = self.of(state)
        if not isinstance(keys, Mapping) or any(keys.get(name) in ("", None) for name in keys):
            return None
        return self.canonical(keys)


def _check_value(entity_type: str, name: str, value: object) -> None:
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise InvalidIdentifiers(
            f"identifier {name!r} of {entity_type!r} must be a str or an int, got "
            f"{type(value).__qualname__} {value!r}"
        )
    if isinstance(value, str) and (not value.strip() or len(value) > MAX_VALUE_LENGTH):
        raise InvalidIdentifiers(
            f"identifier {name!r} of {entity_type!r} must be a non-blank str of at most "
            f"{MAX_VALUE_LENGTH} characters, got {value!r}"
        )
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            raise InvalidIdentifiers(
                f"identifier {name!r} of {entity_type!r} is not valid Unicode text "
                f"(a lone surrogate?): {value!r}"
            ) from None
