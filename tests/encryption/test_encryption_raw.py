"""THE RAW DATABASE TEST: with encryption, no plaintext of a payload is anywhere in the
database: not in the SQLite file or its WAL, not in any PostgreSQL row. The same writes
without encryption leave every marker readable, so the test can fail."""

from __future__ import annotations

import pytest
from encryption_behaviors import NotebookBehavior, ProfileBehavior, SetProfile, Write

import eventactors as ea

pytestmark = pytest.mark.timeout(60)

# One marker per place a payload goes, found nowhere else: so the plaintext run shows that
# each place really carries its own.
EVENT = "evt-marker-7f3a91d2"  # in an event (of an entity without snapshots or command log)
COMMAND = "cmd-marker-c41d07e9"  # in a command's note: the command log only
SNAPSHOT_TEXT = "snap-marker-5b28c6aa"
SNAPSHOT = SNAPSHOT_TEXT[::-1]  # the state's mirrored text: snapshots only
STATE = "state-marker-93bb2e40"  # durable state only
MARKERS = {"event": EVENT, "command": COMMAND, "snapshot": SNAPSHOT, "state": STATE}


def engine_on(store: ea.Store) -> ea.Engine:
    engine = ea.Engine(store=store)
    engine.register("notebook", NotebookBehavior)
    engine.register("diary", NotebookBehavior, snapshot_every=1, command_log=True)
    engine.register("profile", ProfileBehavior)
    return engine


async def write_markers(engine: ea.Engine) -> None:
    await engine.send("notebook", "n", Write(EVENT))
    await engine.send("diary", "d", Write(SNAPSHOT_TEXT, note=COMMAND))
    await engine.send("profile", "p", SetProfile(STATE))


def found(raw: str) -> set[str]:
    """The places whose marker is in `raw`, as text or as hex (PostgreSQL shows bytea so)."""
    return {
        place for place, marker in MARKERS.items() if marker in raw or marker.encode().hex() in raw
    }


@pytest.mark.parametrize("encrypted", [True, False], ids=["encrypted", "plaintext"])
async def test_no_plaintext_of_a_payload_is_in_the_raw_database(durable_backend, encrypted):
    store = durable_backend.encrypted() if encrypted else durable_backend.plain()
    engine = engine_on(store)
    async with engine:
        await write_markers(engine)
        assert (await engine.get_state("diary", "d"))[0].mirrored == SNAPSHOT  # all stored
        assert (await store.load_snapshot("diary|d")).state.mirrored == SNAPSHOT
        while_running = await durable_backend.raw_text()  # SQLite: in the WAL by now
    at_rest = await durable_backend.raw_text()  # SQLite: checkpointed into the file

    expected = set() if encrypted else set(MARKERS)
    assert found(while_running) == expected
    assert found(at_rest) == expected
    # The metadata stays readable, so ordering, offsets and filters work.
    assert "diary|d" in at_rest and "Written" in at_rest


async def test_an_erased_key_leaves_the_sqlite_file(tmp_path):
    path = tmp_path / "erased.db"
    store = ea.EncryptedStore(ea.SQLiteStore(path), bytes(32))
    engine = engine_on(store)
    async with engine:
        await write_markers(engine)
        (wrapped,) = (await store.inner.load_data_keys(["notebook|n"])).values()
        await engine.erase_entity("notebook", "n")
    raw = path.read_bytes()
    assert not path.with_name("erased.db-wal").exists()  # checkpointed and removed on close
    assert wrapped not in raw  # overwritten, not just marked: nothing left to unwrap
    reader = ea.SQLiteStore(path)
    (other,) = (await reader.load_data_keys(["diary|d"])).values()
    await reader.close()
    assert other in raw  # the test can fail: the other entities' keys are there
