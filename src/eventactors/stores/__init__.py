"""The store backends and the protocols they implement (re-exported by `eventactors`)."""

from typing import TYPE_CHECKING, Any

from .protocols import KeyStore as KeyStore

if TYPE_CHECKING:
    from .encrypted import EncryptedStore as EncryptedStore


def __getattr__(name: str) -> Any:
    """`EncryptedStore` loads on first use, so that cryptography stays an optional extra."""
    if name == "EncryptedStore":
        from .encrypted import EncryptedStore

        return EncryptedStore
    raise AttributeError(f"module 'eventactors.stores' has no attribute {name!r}")


__all__ = ["EncryptedStore", "KeyStore"]
