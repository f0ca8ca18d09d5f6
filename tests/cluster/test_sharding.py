"""Shard placement, slices and the cluster's configuration: pure functions, no Ray."""

from __future__ import annotations

import os
import pickle
import subprocess
import sys
from collections import Counter

import pytest

import eventactors as ea
from eventactors.cluster import NUM_SLICES, shard_of, slice_of, slice_ranges

# Pinned: a change here moves every entity of every deployment to another shard.
PINNED = {"account|acc-1": 10, "account|acc-2": 8, "order|2026-000017": 7, "book|ø-é": 15}


def test_placement_is_pinned_so_that_no_release_moves_entities():
    assert {pid: shard_of(pid, 16) for pid in PINNED} == PINNED


def test_placement_is_the_same_in_every_process_whatever_its_hash_seed():
    script = (
        "from eventactors.cluster import shard_of, slice_of;"
        "print([(shard_of(f'account|{i}', 16), slice_of(f'account|{i}')) for i in range(200)])"
    )
    outputs = {
        subprocess.run(
            [sys.executable, "-c", script],
            env={**os.environ, "PYTHONHASHSEED": seed},
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        for seed in ("0", "1", "12345")
    }
    assert len(outputs) == 1
    expected = [(shard_of(f"account|{i}", 16), slice_of(f"account|{i}")) for i in range(200)]
    assert outputs.pop().strip() == str(expected)


@pytest.mark.parametrize("num_shards", [4, 16, 100])
def test_placement_spreads_entities_evenly_over_the_shards(num_shards):
    ids = [f"account|user-{i}" for i in range(20_000)]
    counts = Counter(shard_of(pid, num_shards) for pid in ids)
    assert set(counts) == set(range(num_shards))
    mean = len(ids) / num_shards
    spread = 5 * mean**0.5  # five standard deviations of a fair hash's count
    assert mean - spread < min(counts.values()) <= max(counts.values()) < mean + spread


def test_sequential_ids_spread_over_slices():
    counts = Counter(slice_of(f"order|{i:08d}") for i in range(102_400))
    assert len(counts) == NUM_SLICES
    assert max(counts.values()) < 100 * 1.5


@pytest.mark.parametrize("partitions", [1, 2, 3, 4, 7, 1024])
def test_slice_ranges_cover_every_slice_exactly_once(partitions):
    ranges = slice_ranges(partitions)
    assert len(ranges) == partitions
    covered = [s for part in ranges for s in part]
    assert covered == list(range(NUM_SLICES))


@pytest.mark.parametrize("bad", [0, -1, 1025, 2.0, True, "4"])
def test_slice_ranges_refuse_a_partition_count_that_does_not_fit(bad):
    with pytest.raises((ValueError, TypeError), match="partitions"):
        slice_ranges(bad)


@pytest.mark.parametrize(
    ("options", "named"),
    [
        ({"num_shards": 0}, "num_shards"),
        ({"num_shards": True}, "num_shards"),
        ({"num_shards": 1.5}, "num_shards"),
        ({"num_shards": 100_001}, "num_shards"),
        ({"max_batch": 0}, "max_batch"),
        ({"namespace": ""}, "namespace"),
        ({"namespace": "a b"}, "namespace"),
        ({"address": ""}, "address"),
        ({"max_restarts": -2}, "max_restarts"),
        ({"actor_options": "SPREAD"}, "actor_options"),
    ],
)
def test_a_bad_cluster_setting_is_named(options, named):
    with pytest.raises((ValueError, TypeError), match=named):
        ea.RayCluster(**options)


def test_cluster_mode_refuses_a_store_that_lives_in_one_process():
    with pytest.raises(ValueError, match="every shard process can reach"):
        ea.Engine(store=ea.MemoryStore(), cluster=ea.RayCluster())
    with pytest.raises(TypeError, match="RayCluster"):
        ea.Engine(store=ea.SQLiteStore("x.db"), cluster={"num_shards": 4})  # type: ignore[arg-type]


def test_a_store_pickles_as_its_configuration_never_its_connections(tmp_path):
    sqlite = ea.SQLiteStore(tmp_path / "a.db", synchronous="NORMAL", busy_timeout=2.0)
    copy = pickle.loads(pickle.dumps(sqlite))
    assert copy is not sqlite and copy.path == sqlite.path
    assert copy._options == sqlite._options
    postgres = ea.PostgresStore("postgresql://127.0.0.1/test", schema="s1", max_connections=3)
    copy = pickle.loads(pickle.dumps(postgres))
    assert (copy.dsn, copy.schema, copy._options) == (postgres.dsn, "s1", postgres._options)


def test_importing_eventactors_does_not_import_ray():
    script = "import sys, eventactors; print('ray' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert result.stdout.strip() == "False"
