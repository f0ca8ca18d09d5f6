"""UUIDv7 generation (RFC 9562): time-ordered ids, so event ids sort by creation time."""

from __future__ import annotations

import os
import random
import threading
import time

_lock = threading.Lock()
_last_ms = 0
_counter = 0
# Ids need uniqueness, not secrecy: a PRNG seeded from the OS is ample and avoids a system
# call per id (ids are made twice per command). Reseeded in a forked child, so that parent
# and child never draw the same sequence.
_random = random.Random(os.urandom(32))
os.register_at_fork(after_in_child=lambda: _random.seed(os.urandom(32)))


def uuid7() -> str:
    """A UUIDv7 string; ids made in the same millisecond by this process still sort in order.

    The 12-bit `rand_a` field holds a counter seeded randomly each millisecond (RFC 9562 method 1);
    if it overflows, the timestamp is advanced by one millisecond rather than breaking the order.
    """
    global _last_ms, _counter
    with _lock:
        now_ms = time.time_ns() // 1_000_000
        if now_ms > _last_ms:
            _last_ms = now_ms
            _counter = _random.getrandbits(11)
        else:
            _counter += 1
            if _counter > 0xFFF:
                _last_ms += 1
                _counter = 0
        ms, counter = _last_ms, _counter
        rand_b = _random.getrandbits(62)
    value = (ms << 80) | (0x7 << 76) | (counter << 64) | (0b10 << 62) | rand_b
    hex_ = f"{value:032x}"
    return f"{hex_[:8]}-{hex_[8:12]}-{hex_[12:16]}-{hex_[16:20]}-{hex_[20:]}"
