"""Stable partitioning of persistence ids: shards for the cluster, slices for projections.

Python's `hash()` of a str changes with every process (PYTHONHASHSEED), so placement uses a
keyed-nothing BLAKE2b digest: the same id lands on the same shard in every process, on every
machine, in every release. As in Akka's `eventsBySlices`, the id space is cut into 1024 slices;
a projection partition owns a contiguous range of them.
"""

from __future__ import annotations

from hashlib import blake2b
from itertools import pairwise

#: Fixed forever: offsets of sliced projections are stored per slice range.
NUM_SLICES = 1024


def stable_hash(persistence_id: str) -> int:
    """A 64-bit hash of the id that every process agrees on."""
    digest = blake2b(persistence_id.encode("utf-8", "surrogatepass"), digest_size=8).digest()
    return int.from_bytes(digest, "big")


def slice_of(persistence_id: str) -> int:
    """The slice (0..1023) an entity's events belong to."""
    return stable_hash(persistence_id) % NUM_SLICES


def shard_of(persistence_id: str, num_shards: int) -> int:
    """The shard (0..num_shards-1) that hosts the entity."""
    return stable_hash(persistence_id) % num_shards


def slice_ranges(partitions: int) -> list[range]:
    """`partitions` contiguous slice ranges that together cover every slice once."""
    if isinstance(partitions, bool) or not isinstance(partitions, int):
        raise TypeError(f"partitions must be an int, got {partitions!r}")
    if not 1 <= partitions <= NUM_SLICES:
        raise ValueError(f"partitions must be between 1 and {NUM_SLICES}, got {partitions}")
    bounds = [index * NUM_SLICES // partitions for index in range(partitions + 1)]
    return [range(low, high) for low, high in pairwise(bounds)]
