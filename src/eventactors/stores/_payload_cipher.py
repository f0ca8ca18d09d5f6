"""The sealed-payload format: AES-GCM with a random nonce, bound to where the payload lives.

    sealed = MAGIC + nonce (12 random bytes) + AES-GCM ciphertext and tag (16 bytes)

Random 96-bit nonces are safe for far more payloads than one entity's key ever seals.

MAGIC starts with a NUL byte, which neither JSON text nor a valid protobuf message (field
number 0 does not exist) can start with: a payload without it is plaintext, written before
encryption was turned on, and is read as before.

The associated data (authenticated, not stored) names the row a payload belongs to: its
stream, and its sequence number, type and event version (or revision, or command id). A
ciphertext copied to another row, or a row whose type or version was changed, fails to open
instead of decoding (or being upcast) as something it is not.

What it cannot do is tell a payload that was never sealed from one whose seal was removed:
a payload without MAGIC is read as plaintext written before encryption was turned on, so
someone who can write the database can still add rows, or replace a payload, in plaintext
(see docs/encryption.md).
"""

from __future__ import annotations

import os
import threading

import msgspec
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

__all__ = [
    "AESGCM",
    "InvalidTag",
    "command_aad",
    "event_aad",
    "is_sealed",
    "key_aad",
    "open_sealed",
    "seal",
    "snapshot_aad",
    "state_aad",
]

MAGIC = b"\x00EAE1"  # an encrypted payload, format 1
KEY_MAGIC = b"\x00EAK1"  # a data key wrapped under the master key, format 1
NONCE_SIZE = 12
_HEADER = len(MAGIC) + NONCE_SIZE

_encode_aad = msgspec.msgpack.Encoder().encode  # unambiguous, whatever the names contain


class _Nonces:
    """Random nonces, drawn from the OS a few thousand at a time.

    `os.urandom` lets go of the interpreter lock for its system call, and then waits for it
    behind the store's threads: tens of microseconds per event. Drawing in bulk keeps the
    nonces exactly as random. Each thread has its own pool, and a forked child starts with
    none: two processes or threads never hand out the same bytes.
    """

    _BATCH = NONCE_SIZE * 4096

    def __init__(self) -> None:
        self._local = threading.local()
        os.register_at_fork(after_in_child=self._forget)

    def _forget(self) -> None:
        self._local = threading.local()

    def next(self) -> bytes:
        local = self._local
        pool: bytes = getattr(local, "pool", b"")
        at: int = getattr(local, "at", 0)
        if at + NONCE_SIZE > len(pool):
            local.pool = pool = os.urandom(self._BATCH)
            at = 0
        local.at = at + NONCE_SIZE
        return pool[at : at + NONCE_SIZE]


_nonces = _Nonces()


def is_sealed(payload: bytes) -> bool:
    return payload[:5] == MAGIC


def seal(key: AESGCM, plaintext: bytes, aad: bytes, magic: bytes = MAGIC) -> bytes:
    nonce = _nonces.next()
    return magic + nonce + key.encrypt(nonce, plaintext, aad)


def open_sealed(key: AESGCM, sealed: bytes, aad: bytes) -> bytes:
    """The plaintext; `InvalidTag` if the key or the associated data is not the sealer's,
    or the bytes were altered."""
    return key.decrypt(sealed[len(MAGIC) : _HEADER], sealed[_HEADER:], aad)


def event_aad(
    persistence_id: str, sequence_number: int, event_type: str, event_version: int
) -> bytes:
    return _encode_aad(("event", persistence_id, sequence_number, event_type, event_version))


def snapshot_aad(persistence_id: str, sequence_number: int, state_type: str) -> bytes:
    return _encode_aad(("snapshot", persistence_id, sequence_number, state_type))


def state_aad(persistence_id: str, revision: int, state_type: str) -> bytes:
    return _encode_aad(("state", persistence_id, revision, state_type))


def command_aad(persistence_id: str, command_id: str, command_type: str) -> bytes:
    return _encode_aad(("command", persistence_id, command_id, command_type))


def key_aad(persistence_id: str) -> bytes:
    return _encode_aad(("data key", persistence_id))
