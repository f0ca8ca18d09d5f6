"""eventactors.testing.conformance from a store author's side: a store of one's own proves
itself with a five-line class, a store that implements only some protocols runs only their
parts, and a broken store fails, with pytest's own explanation of each failed assert."""

from __future__ import annotations

import re
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

import eventactors as ea
from eventactors.testing.conformance import (
    EventStoreContract,
    LogFollowingContract,
    OpenStore,
    SequenceAtContract,
    SnapshotStoreContract,
    StoreContract,
)


class SharedMemoryStore:
    """A third-party store: not a MemoryStore, but one over the MemoryStore kept in a dict that
    every store object opened on it shares, so each call of `open_store` gives a new object."""

    def __init__(self, shelf: dict[str, ea.MemoryStore]) -> None:
        self._data = shelf.setdefault("data", ea.MemoryStore())
        self.serializer = self._data.serializer

    def __getattr__(self, name: str) -> Any:
        return getattr(self._data, name)


class TestSharedMemoryStore(StoreContract):
    @pytest.fixture
    def open_store(self) -> OpenStore:
        shelf: dict[str, ea.MemoryStore] = {}
        return lambda: SharedMemoryStore(shelf)


class EventsAndSnapshotsOnly:
    """A store that keeps events and snapshots, and nothing else."""

    def __init__(self) -> None:
        data = ea.MemoryStore()
        self.serializer = data.serializer
        for protocol in (ea.EventStore, ea.SnapshotStore):
            for name in vars(protocol):
                if not name.startswith("_"):
                    setattr(self, name, getattr(data, name))
        self.close = data.close


class TestEventsAndSnapshotsOnly(
    EventStoreContract, LogFollowingContract, SequenceAtContract, SnapshotStoreContract
):
    @pytest.fixture
    def open_store(self) -> OpenStore:
        store = EventsAndSnapshotsOnly()
        return lambda: store


def test_the_partial_store_is_only_an_event_and_snapshot_store():
    store = EventsAndSnapshotsOnly()

    assert isinstance(store, ea.EventStore)
    assert isinstance(store, ea.SnapshotStore)
    assert not isinstance(store, ea.StateStore)
    assert not isinstance(store, ea.OffsetStore)
    assert not isinstance(store, ea.CommandLogStore)


def test_the_whole_contract_runs_every_test_of_every_part():
    parts = StoreContract.__mro__  # the parts, and the parts they are made of
    names = [name for part in parts for name in vars(part) if name[:5] == "test_"]

    assert len(names) == len(set(names)), "a part's test hides another's of the same name"
    assert set(names) == {name for name in dir(StoreContract) if name.startswith("test_")}
    assert len(names) == 124


def test_an_open_store_that_is_not_a_fixture_is_refused_when_the_class_is_made():
    with pytest.raises(TypeError, match=r"TestForgot\.open_store must be a pytest fixture"):

        class TestForgot(StoreContract):
            def open_store(self) -> OpenStore:
                return ea.MemoryStore


def test_importing_eventactors_testing_imports_no_pytest():
    code = (
        "import sys, eventactors.testing\n"
        "assert 'pytest' not in sys.modules, 'pytest imported'\n"
        "assert 'eventactors.testing.conformance' not in sys.modules\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


BROKEN = """
import pytest

import eventactors as ea
from eventactors.testing.conformance import EventStoreContract, OffsetStoreContract


class LosesTheLastEvent(ea.MemoryStore):
    async def read_stream(self, persistence_id, from_sequence=1, to_sequence=None, limit=None):
        read = await super().read_stream(persistence_id, from_sequence, to_sequence, limit)
        return read[:-1]


class TestLosesTheLastEvent(EventStoreContract):
    @pytest.fixture
    def open_store(self):
        store = LosesTheLastEvent()
        return lambda: store


class TestForgotOpenStore(OffsetStoreContract):
    pass
"""


def test_a_broken_store_fails_the_contract(tmp_path: Path):
    # pytest-asyncio's default (strict) mode, as a project without asyncio_mode = auto has.
    (tmp_path / "pytest.ini").write_text(
        "[pytest]\nasyncio_default_fixture_loop_scope = function\nfilterwarnings = error\n"
    )
    (tmp_path / "test_broken_store.py").write_text(textwrap.dedent(BROKEN))

    run = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-rfE",
            "-p",
            "no:randomly",
            "-p",
            "no:cacheprovider",
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )

    output = run.stdout + run.stderr
    assert run.returncode == 1, output
    summary = output.strip().splitlines()[-1]
    counts = {kind: int(n) for n, kind in re.findall(r"(\d+) (failed|passed|errors?)", summary)}
    # Reads of whole streams fail; reads that cannot see the loss (empty streams) still pass.
    assert counts.get("failed", 0) >= 20, summary
    assert counts.get("passed", 0) > 0, summary
    # The asserts inside the package are rewritten, so a failure shows the values compared.
    failure = "TestLosesTheLastEvent::test_read_stream_returns_the_whole_stream_in_order"
    assert f"FAILED test_broken_store.py::{failure}" in output
    assert "assert [1, 2, 3, 4, 5, 6] == [1, 2, 3, 4, 5, 6, ...]" in output
    assert "Right contains one more item: 7" in output
    # A class without open_store errors in every test, saying what to define.
    errors = counts.get("errors", counts.get("error", 0))
    assert errors == 9, summary
    assert output.count("TestForgotOpenStore defines no `open_store` fixture") >= errors
