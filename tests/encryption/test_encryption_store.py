"""EncryptedStore on its own: payloads bound to their rows, a wrong master key, plaintext
written before encryption, what it refuses to wrap, pickling, and keys created by racing
store objects."""

from __future__ import annotations

import asyncio
import pickle
import sqlite3
from datetime import UTC, datetime
from pathlib import Path

import asyncpg
import msgspec
import pytest
from encryption_behaviors import Profile, SetProfile, Write, Written, notebook_engine
from encryption_support import KEY, OTHER_KEY
from postgres_support import DSN

import eventactors as ea
from eventactors.stores._payload_cipher import MAGIC
from eventactors.stores.protocols import OffsetListing
from eventactors.testing.conformance import Kit

pytestmark = pytest.mark.timeout(60)


async def _copy_column(backend, table: str, key: str, source: tuple, target: tuple) -> None:
    """Copies the payload of one row into another, behind the store's back."""
    if backend.name == "sqlite":
        with sqlite3.connect(backend.where) as connection:
            connection.execute(
                f"UPDATE ea_{table} SET payload = (SELECT payload FROM ea_{table} "
                f"WHERE persistence_id = ? AND {key} = ?) WHERE persistence_id = ? AND {key} = ?",
                (*source, *target),
            )
        return
    connection = await asyncpg.connect(DSN, timeout=10)
    try:
        t = f'"{backend.where}".ea_{table}'
        await connection.execute(
            f"UPDATE {t} SET payload_bytes = (SELECT payload_bytes FROM {t} "
            f"WHERE persistence_id = $1 AND {key} = $2) WHERE persistence_id = $3 AND {key} = $4",
            *source,
            *target,
        )
    finally:
        await connection.close()


async def test_a_payload_copied_to_another_row_does_not_open(durable_backend):
    engine = notebook_engine(durable_backend.encrypted())
    async with engine:
        await engine.send("notebook", "a", Write("alpha"))
        await engine.send("notebook", "a", Write("beta"))
        await engine.send("notebook", "b", Write("gamma"))
        await engine.send("profile", "p", SetProfile("ann"))
        await engine.send("profile", "q", SetProfile("bob"))
    await _copy_column(
        durable_backend, "events", "sequence_number", ("notebook|a", 1), ("notebook|a", 2)
    )
    await _copy_column(
        durable_backend, "events", "sequence_number", ("notebook|a", 1), ("notebook|b", 1)
    )
    await _copy_column(
        durable_backend, "durable_state", "revision", ("profile|p", 1), ("profile|q", 1)
    )

    store = durable_backend.encrypted()
    engine = notebook_engine(store)
    async with engine:
        first, second = await store.read_stream("notebook|a")
        assert first.event == Written("alpha")  # the original row still opens
        with pytest.raises(ea.SerializationError, match=r"'notebook\|a', sequence 2"):
            second.event  # noqa: B018
        log = await store.read_all()  # one bad row does not fail the page
        with pytest.raises(ea.SerializationError, match=r"stream 'notebook\|b'"):
            log[2].event  # noqa: B018
        with pytest.raises(ea.SerializationError, match=r"'notebook\|a', sequence 2"):
            await store.read_stream_payloads("notebook|a")
        with pytest.raises(ea.SerializationError, match=r"'notebook\|b'"):
            await engine.get_state("notebook", "b")  # recovery
        with pytest.raises(ea.SerializationError, match=r"'profile\|q'"):
            await engine.get_state("profile", "q")
        assert await engine.get_state("profile", "p") == (Profile("ann"), 1)


async def _set_event_version(backend, persistence_id: str, sequence: int, version: int) -> None:
    """Changes an event's version behind the store's back, leaving its payload as it is."""
    if backend.name == "sqlite":
        with sqlite3.connect(backend.where) as connection:
            connection.execute(
                "UPDATE ea_events SET event_version = ? "
                "WHERE persistence_id = ? AND sequence_number = ?",
                (version, persistence_id, sequence),
            )
        return
    connection = await asyncpg.connect(DSN, timeout=10)
    try:
        await connection.execute(
            f'UPDATE "{backend.where}".ea_events SET event_version = $1 '
            "WHERE persistence_id = $2 AND sequence_number = $3",
            version,
            persistence_id,
            sequence,
        )
    finally:
        await connection.close()


class Versioned(msgspec.Struct, frozen=True):
    """An event type at its second version."""

    __type_name__ = "encryption_tests.Versioned"
    __event_version__ = 2
    text: str


async def test_an_event_whose_version_was_changed_does_not_open(durable_backend):
    """The version is part of what a payload is sealed for: a row whose version was changed
    would otherwise be upcast as the other version of its type."""
    store = durable_backend.encrypted()
    store.serializer.register(Versioned)
    kit = Kit(store)
    records = [
        kit.record("notebook|v", n, Versioned(f"v2 text {n}"), event_version=2) for n in (1, 2)
    ]
    await store.append("notebook|v", records, 0)
    await _set_event_version(durable_backend, "notebook|v", 1, 1)

    store = durable_backend.encrypted()
    store.serializer.register(Versioned)
    first, second = await store.read_stream("notebook|v")
    assert (first.event_version, second.event_version) == (1, 2)
    with pytest.raises(ea.SerializationError, match=r"'notebook\|v', sequence 1\)"):
        first.event  # noqa: B018
    assert second.event == Versioned("v2 text 2")
    [tampered, intact] = await store.read_all()  # one bad row does not fail the page
    with pytest.raises(ea.SerializationError, match=r"'notebook\|v', sequence 1"):
        tampered.event  # noqa: B018
    assert intact.event == Versioned("v2 text 2")
    with pytest.raises(ea.SerializationError, match=r"'notebook\|v', sequence 1"):
        await store.read_stream_payloads("notebook|v")  # recovery
    await _set_event_version(durable_backend, "notebook|v", 1, 2)  # as it was sealed: opens
    assert [e.event for e in await store.read_stream("notebook|v")] == [
        Versioned("v2 text 1"),
        Versioned("v2 text 2"),
    ]


async def test_a_wrong_master_key_is_an_error_naming_the_stream_not_a_tombstone(
    durable_backend,
):
    engine = notebook_engine(durable_backend.encrypted(), snapshot_every=1, command_log=True)
    async with engine:
        await engine.send("notebook", "n", Write("alpha"))
        await engine.send("profile", "p", SetProfile("ann"))

    store = durable_backend.encrypted(OTHER_KEY)
    engine = notebook_engine(store, command_log=True)
    async with engine:
        envelope = (await store.read_all())[0]
        with pytest.raises(
            ea.SerializationError, match=r"data key of stream 'notebook\|n': the master key"
        ):
            envelope.event  # noqa: B018
        with pytest.raises(ea.SerializationError, match=r"data key of stream 'notebook\|n'"):
            await engine.get_state("notebook", "n")
        with pytest.raises(ea.SerializationError, match="master key"):
            await store.load_snapshot("notebook|n")
        with pytest.raises(ea.SerializationError, match=r"data key of stream 'profile\|p'"):
            await engine.get_state("profile", "p")
        with pytest.raises(ea.SerializationError, match="master key"):
            await store.read_commands("notebook|n")
        with pytest.raises(ea.SerializationError, match="master key"):
            await engine.send("notebook", "n", Write("more"))  # nothing written with it
    assert await durable_backend.encrypted().highest_sequence_number("notebook|n") == 1


async def test_plaintext_from_before_encryption_is_read_as_before(durable_backend):
    engine = notebook_engine(durable_backend.plain(), snapshot_every=2, command_log=True)
    async with engine:
        for text in ("one", "two", "three"):
            await engine.send("notebook", "n", Write(text))
        await engine.send("profile", "p", SetProfile("ann"))
        await engine.send("notebook", "old", Write("old"))

    store = durable_backend.encrypted()
    engine = notebook_engine(store, snapshot_every=2, command_log=True)
    async with engine:
        assert (await engine.get_state("notebook", "n"))[0].pages == ("one", "two", "three")
        assert await engine.get_state("profile", "p") == (Profile("ann"), 1)
        await engine.send("notebook", "n", Write("four"))  # snapshot 4, sealed
        await engine.send("profile", "p", SetProfile("ann lee"))
        raw = await store.inner.read_stream("notebook|n")
        assert [e.payload.startswith(MAGIC) for e in raw] == [False, False, False, True]
        log = await engine.command_log("notebook", "n")
        assert [entry.command.text for entry in log] == ["one", "two", "three", "four"]
        # Erasure covers the entity's plaintext events too, as far as readers see; the
        # plaintext itself stays in the database (see docs/encryption.md).
        await engine.erase_entity("notebook", "old")
        assert isinstance((await store.read_stream("notebook|old"))[0].event, ea.ErasedEvent)

    engine = notebook_engine(durable_backend.encrypted(), snapshot_every=2)
    async with engine:
        state, revision = await engine.get_state("notebook", "n")
        assert (state.pages, revision) == (("one", "two", "three", "four"), 4)
        assert await engine.get_state("profile", "p") == (Profile("ann lee"), 2)


async def test_what_cannot_be_wrapped(tmp_path: Path):
    used = ea.SQLiteStore(tmp_path / "used.db")
    await used.head_position()
    with pytest.raises(ValueError, match="already been used"):
        ea.EncryptedStore(used, KEY)
    await used.close()
    store = ea.EncryptedStore(ea.MemoryStore(), KEY)
    with pytest.raises(ValueError, match="already wrapped"):
        ea.EncryptedStore(store, KEY)
    with pytest.raises(ValueError, match="already wrapped"):
        ea.EncryptedStore(store.inner, KEY)
    for key in ("a string", b"short", KEY + b"!"):
        with pytest.raises(ValueError, match="master_key must be 32 random bytes"):
            ea.EncryptedStore(ea.MemoryStore(), key)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="wraps a store"):
        ea.EncryptedStore(object(), KEY)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="key_cache_size"):
        ea.EncryptedStore(ea.MemoryStore(), KEY, key_cache_size=0)
    with pytest.raises(ValueError, match="key_cache_ttl"):
        ea.EncryptedStore(ea.MemoryStore(), KEY, key_cache_ttl=-1)
    with pytest.raises(ea.SerializationError, match="register types on the EncryptedStore"):
        store.inner.serializer.register(Written)
    with pytest.raises(ea.SerializationError, match="sealed bytes only"):
        await store.inner.save_snapshot(
            ea.Snapshot("a|b", 1, "Profile", Profile("plain"), datetime.now(UTC))
        )


async def test_it_offers_the_protocols_of_the_store_it_wraps(tmp_path: Path):
    sqlite = ea.EncryptedStore(ea.SQLiteStore(tmp_path / "x.db"), KEY)
    memory = ea.EncryptedStore(ea.MemoryStore(), KEY)
    for store in (sqlite, memory):
        assert isinstance(store, ea.Store) and isinstance(store, OffsetListing)
        assert isinstance(store.inner, ea.KeyStore)
    assert isinstance(sqlite, ea.TransactionalOffsetStore)
    assert not isinstance(memory, ea.TransactionalOffsetStore)
    assert sqlite.path == str(tmp_path / "x.db")
    assert sqlite.write_statistics().appends == 0
    await sqlite.close()


async def test_the_data_key_methods_of_the_wrapped_store_are_not_passed_on(backend):
    """A key deleted behind the key ring's back would leave the wrapper reading and writing
    the stream with the key it holds: the wrapper is not a KeyStore, and erases with erase."""
    store = backend.encrypted()
    store.serializer.register(Written)
    kit = Kit(store)
    await store.append("notebook|k", [kit.record("notebook|k", 1, Written("a"))], 0)
    assert not isinstance(store, ea.KeyStore) and isinstance(store.inner, ea.KeyStore)
    for name in ("load_data_keys", "create_data_key", "erase_data_key"):
        assert not hasattr(store, name)
        with pytest.raises(AttributeError, match=f"keeps its data keys to itself.*{name}"):
            getattr(store, name)
    assert store.write_statistics == store.inner.write_statistics  # the rest is passed on
    await store.erase("notebook|k")
    assert isinstance((await store.read_stream("notebook|k"))[0].event, ea.ErasedEvent)
    with pytest.raises(ea.EntityErased):
        await store.append("notebook|k", [kit.record("notebook|k", 2, Written("b"))], 1)


async def test_a_transactional_projection_commits_through_the_wrapper(durable_backend):
    store = durable_backend.encrypted()
    engine = notebook_engine(store)
    if durable_backend.name == "sqlite":

        def handler(envelopes, connection):
            connection.execute("CREATE TABLE IF NOT EXISTS pages (text TEXT)")
            connection.executemany(
                "INSERT INTO pages VALUES (?)", [(e.event.text,) for e in envelopes]
            )

    else:
        table = f'"{durable_backend.where}".pages'

        async def handler(envelopes, connection):
            await connection.execute(f"CREATE TABLE IF NOT EXISTS {table} (text text)")
            await connection.executemany(
                f"INSERT INTO {table} VALUES ($1)", [(e.event.text,) for e in envelopes]
            )

    await engine.add_projection("pages", handler, transactional=True)
    async with engine:
        await engine.send("notebook", "n", Write("alpha"))
        await engine.send("notebook", "n", Write("beta"))
        await engine.wait_for_projection("pages", timeout=10)
        assert await store.get_offset("pages") == await store.head_position()
    assert "alpha" in await durable_backend.raw_text()  # the read model is the app's own


async def test_it_pickles_as_its_configuration_over_a_database_store(tmp_path: Path):
    store = ea.EncryptedStore(ea.SQLiteStore(tmp_path / "p.db"), KEY, key_cache_ttl=5)
    store.serializer.register(Written)
    kit = Kit(store)
    await store.append("notebook|n", [kit.record("notebook|n", 1, Written("alpha"))], 0)
    await store.close()
    copy = pickle.loads(pickle.dumps(store))
    assert isinstance(copy, ea.EncryptedStore) and copy is not store
    copy.serializer.register(Written)
    assert [e.event for e in await copy.read_stream("notebook|n")] == [Written("alpha")]
    await copy.close()
    with pytest.raises(TypeError, match="cannot be pickled"):
        pickle.dumps(ea.EncryptedStore(ea.MemoryStore(), KEY))


async def test_racing_first_writes_of_two_store_objects_agree_on_one_key(durable_backend):
    first, second = durable_backend.encrypted(), durable_backend.encrypted()
    for store in (first, second):
        store.serializer.register(Written)
        store.serializer.register(Write)
    kit = Kit(first)
    names = [f"notebook|n{index}" for index in range(20)]

    def command(name: str) -> ea.CommandRecord:
        return ea.CommandRecord(
            command_id=f"c-{name}", persistence_id=name, entity_type="notebook",
            entity_id=name.partition("|")[2], command_type="Write",
            payload=second.serializer.encode(Write("asked")), timestamp=datetime.now(UTC),
            outcome=ea.REJECTED,
        )  # fmt: skip

    await asyncio.gather(
        *(first.append(name, [kit.record(name, 1, Written("told"))], 0) for name in names),
        *(second.record_command(command(name)) for name in names),
    )
    for name in names:  # each reads what the other sealed
        assert [e.event for e in await second.read_stream(name)] == [Written("told")]
        assert [c.payload for c in await first.read_commands(name)] == [
            b'{"text":"asked","note":""}'
        ]
    stored = await first.inner.load_data_keys(names)
    assert sorted(stored) == sorted(names) and all(stored.values())


async def test_key_store_semantics(backend):
    keys = backend.plain()
    assert await keys.load_data_keys(["a|1"]) == {}
    first, second = b"k1" * 20, b"k2" * 20
    results = await asyncio.gather(
        keys.create_data_key("a|1", first), keys.create_data_key("a|1", second)
    )
    assert results[0] == results[1] in (first, second)  # one wins, both are told which
    assert await keys.create_data_key("a|1", second) == results[0]
    await keys.erase_data_key("a|1")
    await keys.erase_data_key("a|2")  # never had a key: erased all the same
    await keys.erase_data_key("a|2")
    assert await keys.load_data_keys(["a|1", "a|2", "a|3"]) == {"a|1": None, "a|2": None}
    assert await keys.create_data_key("a|1", first) is None  # erasure is final
    assert await keys.create_data_key("a|2", first) is None
    many = [f"b|{index}" for index in range(1200)]  # more than one query's worth
    for name in many[::100]:
        await keys.create_data_key(name, first)
    assert sorted(await keys.load_data_keys(many)) == sorted(many[::100])
    with pytest.raises(TypeError, match="not one string"):
        await keys.load_data_keys("a|1")
    with pytest.raises(TypeError, match="non-empty bytes"):
        await keys.create_data_key("a|4", b"")


async def test_checks_that_look_at_the_backend_look_through_the_wrapper(tmp_path: Path):
    with pytest.raises(ValueError, match=r"not ea\.MemoryStore"):
        ea.Engine(store=ea.EncryptedStore(ea.MemoryStore(), KEY), cluster=ea.RayCluster())
    engine = ea.Engine(store=ea.EncryptedStore(ea.SQLiteStore(tmp_path / "t.db"), KEY))

    async def handler(envelopes, connection):
        pass

    with pytest.raises(TypeError, match="must be a plain function"):
        await engine.add_projection("async", handler, transactional=True)


def test_nonces_are_never_shared_by_threads_or_a_forked_child():
    import subprocess
    import sys
    import threading

    from eventactors.stores._payload_cipher import _nonces

    drawn: dict[str, list[bytes]] = {"main": [], "thread": []}
    thread = threading.Thread(
        target=lambda: drawn["thread"].extend(_nonces.next() for _ in range(5000))
    )
    thread.start()
    drawn["main"].extend(_nonces.next() for _ in range(5000))
    thread.join()
    assert len(set(drawn["main"]) | set(drawn["thread"])) == 10_000

    script = (
        "import os, sys\n"
        "from eventactors.stores._payload_cipher import _nonces\n"
        "_nonces.next()\n"  # the pool is filled before the fork
        "pid = os.fork()\n"
        "sys.stdout.write(('child ' if pid == 0 else 'parent ') + _nonces.next().hex() + '\\n')\n"
        "sys.stdout.flush()\n"
        "os._exit(0) if pid == 0 else os.waitpid(pid, 0)\n"
    )
    lines = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True, timeout=30
    ).stdout.split()
    drawn_after_fork = dict(zip(lines[::2], lines[1::2], strict=True))
    assert drawn_after_fork.keys() == {"child", "parent"}
    assert drawn_after_fork["child"] != drawn_after_fork["parent"]


def test_recovery_rows_keep_the_fields_after_the_payload():
    """`read_stream_payloads` rows may grow (an event version after the payload): opening
    them keeps whatever follows the payload."""
    from eventactors.stores._envelope_cipher import open_payloads
    from eventactors.stores._payload_cipher import AESGCM, event_aad, seal

    key = AESGCM(AESGCM.generate_key(bit_length=256))
    sealed = seal(key, b'{"text":"a"}', event_aad("notebook|n", 1, "Written", 2))
    rows = [(1, "Written", sealed, 2), (2, "Written", b'{"text":"plain"}', 1)]
    assert open_payloads(rows, "notebook|n", key) == [
        (1, "Written", b'{"text":"a"}', 2),
        (2, "Written", b'{"text":"plain"}', 1),
    ]
