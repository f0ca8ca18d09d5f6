"""The serializer `EncryptedStore` gives the store it wraps: payloads are opaque bytes.

The wrapped store then keeps every payload as a BLOB (bytea), never as JSON text, and hands
it back as it was: it never tries to decode ciphertext. The real serializer stays with the
`EncryptedStore`, where the engine registers its types.
"""

from __future__ import annotations

from typing import Any

from ..errors import SerializationError


class OpaqueSerializer:
    is_text = False

    def supports(self, cls: type) -> bool:
        return cls is bytes

    def register(self, cls: type, name: str | None = None) -> str:
        raise SerializationError(
            "this store is wrapped by an EncryptedStore: register types on the "
            "EncryptedStore's serializer, not the wrapped store's"
        )

    def is_registered(self, cls: type) -> bool:
        return False

    def type_name(self, cls: type) -> str:
        raise SerializationError(
            f"type {cls.__qualname__} is not registered: the wrapped store of an "
            "EncryptedStore stores opaque bytes"
        )

    def encode(self, value: Any) -> bytes:
        if type(value) is not bytes:
            raise SerializationError(
                f"the wrapped store of an EncryptedStore stores sealed bytes only, not "
                f"{type(value).__qualname__}: write through the EncryptedStore"
            )
        return value

    def decode(self, type_name: str, payload: bytes, version: int | None = None) -> bytes:
        return bytes(payload)
