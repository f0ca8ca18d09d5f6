"""Argument checks of the `KeyStore` methods, shared by every backend."""

from __future__ import annotations

from collections.abc import Sequence


def check_persistence_ids(persistence_ids: Sequence[str]) -> list[str]:
    if isinstance(persistence_ids, str | bytes):
        raise TypeError("persistence_ids must be a collection of stream names, not one string")
    names = list(persistence_ids)
    for name in names:
        check_persistence_id(name)
    return names


def check_persistence_id(persistence_id: str) -> str:
    if not isinstance(persistence_id, str) or not persistence_id:
        raise ValueError(f"a data key belongs to a non-empty stream name, got {persistence_id!r}")
    return persistence_id


def check_wrapped_key(persistence_id: str, wrapped_key: bytes) -> bytes:
    check_persistence_id(persistence_id)
    if not isinstance(wrapped_key, bytes) or not wrapped_key:
        raise TypeError(
            f"the wrapped data key of stream {persistence_id!r} must be non-empty bytes, "
            f"got {type(wrapped_key).__qualname__}"
        )
    return wrapped_key
