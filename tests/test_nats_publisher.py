"""The JetStream publisher against a real nats-server (a private one per module, on a free
port with its own storage): every event published once, in order per entity, with its
headers; across a SIGKILLed process; through a NATS outage, even one longer than the
duplicate window; with one partition's connection hung; with an event JetStream refuses;
with ids too long for a subject; and bad input or a bad stream refused clearly."""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import os
import re
import signal
import subprocess
import sys
from asyncio.subprocess import PIPE
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import msgspec
import nats
import pytest
from nats.js.api import StorageType
from nats_support import (
    NatsServer,
    Note,
    NoteBehavior,
    StallingProxy,
    all_events,
    check_stream,
    free_port,
    names,
    partition_of,
    published_as,
    read_stream,
    start_server,
    wait_out_duplicate_window,
)
from waits import wait_until

import eventactors as ea
from eventactors.publishers.nats import (
    JetStreamPublisher,
    PublisherUnavailable,
    PublishRejected,
    StreamMismatch,
    decode_token,
    encode_token,
)

CHILD = Path(__file__).with_name("nats_publisher_child.py")


@pytest.fixture(scope="module")
def nats_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NatsServer]:
    server = start_server(tmp_path_factory.mktemp("nats"))
    yield server
    server.stop()


def no_other_tasks() -> list[asyncio.Task[Any]]:
    return [task for task in asyncio.all_tasks() if task is not asyncio.current_task()]


# -- 1. every event, in order per entity, with its headers --------------------------------


@pytest.mark.parametrize("partitions", [1, 3])
async def test_publishes_every_event_once_in_order_with_headers(
    nats_server: NatsServer, partitions: int
) -> None:
    stream, prefix = names()
    engine = ea.Engine()
    engine.register("note.book", NoteBehavior)  # a '.' in the type: escaped in the subject
    entities = ["plain-1", "dots.and spaces", "wild*card>", "ünïcode/ß", "100%", "x"]
    async with JetStreamPublisher(nats_server.url, stream=stream, subject_prefix=prefix) as pub:
        async with engine:
            for entity in entities[:3]:  # history, published on attach
                await engine.send("note.book", entity, Note("before"))  # no metadata
            await pub.attach(engine, batch_size=7, partitions=partitions)

            async def write(entity: str) -> None:
                for i in range(12):
                    await engine.send(
                        "note.book", entity, Note(f"{entity} {i}"),
                        metadata={"who": "ann", "odd": " line\r\nbreak %"},
                        correlation_id=f"corr {entity}",
                    )  # fmt: skip

            await asyncio.gather(*(write(entity) for entity in entities))
            status = await engine.wait_for_projection("nats-publisher", timeout=30)
            assert status.lag == 0 and status.last_error is None
            envelopes = await all_events(engine.store)
        messages = await read_stream(nats_server.url, stream)
        check_stream(messages, envelopes, pub)
        statistics = pub.statistics()
        assert statistics.published == len(envelopes) == 3 + 12 * len(entities)
        used = {partition_of(f"note.book|{entity}", partitions) for entity in entities}
        assert (statistics.duplicates, statistics.connections) == (0, len(used))  # one each

        by_id = {envelope.event_id: envelope for envelope in envelopes}
        for message in messages:
            headers = {key: decode_token(v) for key, v in (message.headers or {}).items()}
            envelope = by_id[headers["Nats-Msg-Id"]]
            assert message.data == envelope.payload == msgspec.json.encode(envelope.event)
            assert headers["EventActors-Persistence-Id"] == envelope.persistence_id
            assert headers["EventActors-Entity-Type"] == "note.book"
            assert headers["EventActors-Entity-Id"] == envelope.entity_id
            assert int(headers["EventActors-Sequence-Number"]) == envelope.sequence_number
            assert int(headers["EventActors-Global-Position"]) == envelope.global_position
            assert headers["EventActors-Event-Type"] == "Noted"
            assert headers["EventActors-Event-Version"] == "1"
            assert headers["EventActors-Timestamp"] == envelope.timestamp.isoformat()
            assert headers["EventActors-Command-Id"] == envelope.command_id
            assert headers["EventActors-Correlation-Id"] == envelope.correlation_id
            metadata = json.loads(headers.get("EventActors-Metadata", "{}"))
            assert metadata == dict(envelope.metadata)
            assert json.loads(headers["EventActors-Tags"]) == ["notes", "a tag"]
            assert headers["Content-Type"] == "application/json"
            _, type_token, id_token = message.subject.split(".")
            assert (decode_token(type_token), decode_token(id_token)) == (
                "note.book",
                envelope.entity_id,
            )
    assert no_other_tasks() == []  # the connection and its tasks are gone


def test_tokens_are_reversible_and_valid_in_subjects() -> None:
    for text in ["a.b", "*", ">", " x\ty\n", "%2E", "ü/ß", "a|b", "~_-", "~" + "a" * 64]:
        token = encode_token(text)
        assert decode_token(token) == text
        assert not set(token) & set(".*> \t\r\n")
        assert not token.startswith("~")  # only a hashed token does
    assert encode_token("acc-1_x~") == "acc-1_x~"  # common ids stay readable


def test_a_token_too_long_for_a_subject_is_hashed() -> None:
    for text in ["é" * 520, "\U0001f600" * 1024, "x" * 1025, "." * 400]:
        token = encode_token(text)
        assert token == "~" + hashlib.sha256(text.encode()).hexdigest()
        with pytest.raises(ValueError, match=r"hashed subject token .* EventActors-Entity-Id"):
            decode_token(token)
    assert decode_token(encode_token("x" * 1024)) == "x" * 1024  # the longest kept as is
    with pytest.raises(ValueError, match="subject_prefix is over 1022 bytes"):
        JetStreamPublisher(subject_prefix="p" * 1023)


# -- 2. a SIGKILLed process, restarted on the same SQLite file ----------------------------


async def stream_count(url: str, stream: str) -> int:
    nc = await nats.connect(url)
    try:
        return (await nc.jetstream().stream_info(stream)).state.messages
    except nats.js.errors.NotFoundError:
        return 0
    finally:
        await nc.close()


async def run_child(*command: str) -> tuple[int | None, str, str]:
    process = await asyncio.create_subprocess_exec(*command, stdout=PIPE, stderr=PIPE)
    async with asyncio.timeout(60):
        stdout, stderr = await process.communicate()
    return process.returncode, stdout.decode(), stderr.decode()


async def test_sigkill_mid_publishing_then_restart(nats_server: NatsServer, tmp_path: Path) -> None:
    stream, prefix = names()
    db = str(tmp_path / "events.db")
    arguments = [sys.executable, str(CHILD), db, nats_server.url, stream, prefix]
    # First, SIGKILL from outside at whatever moment the publisher is in.
    child = await asyncio.create_subprocess_exec(*arguments, "write", stderr=PIPE)
    try:
        for _ in range(300):  # up to 30 s
            in_stream = await stream_count(nats_server.url, stream)
            if in_stream >= 200 or child.returncode is not None:
                break
            await asyncio.sleep(0.1)
    finally:
        child.send_signal(signal.SIGKILL)
        _, first_stderr = await child.communicate()
    assert child.returncode == -signal.SIGKILL and in_stream >= 200, first_stderr.decode()
    # Restarted, it resumes; then it dies after a page is in JetStream, before its offset.
    killed, _, stderr = await run_child(*arguments, "write", "5")
    assert killed == -signal.SIGKILL, stderr

    store = ea.SQLiteStore(db)
    try:
        offset = await store.get_offset("nats-publisher") or 0
        backlog = len([e for e in await all_events(store) if e.global_position > offset])
    finally:
        await store.close()
    drained, stdout, stderr = await run_child(*arguments, "drain")
    assert drained == 0, stderr
    statistics = json.loads(stdout.strip().splitlines()[-1])

    store = ea.SQLiteStore(db)
    try:
        envelopes = await all_events(store)
    finally:
        await store.close()
    messages = await read_stream(nats_server.url, stream)
    probe = JetStreamPublisher(nats_server.url, stream=stream, subject_prefix=prefix)
    check_stream(messages, envelopes, probe)  # none missing, none stored twice, in order
    # The last restart re-published every event after the stored offset; the page that was
    # acknowledged before the kill came back, and JetStream dropped it by its message ids.
    assert statistics["published"] + statistics["duplicates"] == backlog
    assert statistics["duplicates"] >= 1
    print(
        f"\n{len(envelopes)} events persisted, {backlog} after the offset at the last restart: "
        f"{statistics['published']} published then, {statistics['duplicates']} re-published "
        "and dropped by JetStream as duplicates"
    )


# -- 3. NATS away, then back -------------------------------------------------------------


async def test_outage_then_catch_up(tmp_path: Path) -> None:
    server = start_server(tmp_path / "nats")
    stream, prefix = names()
    try:
        engine = ea.Engine()
        engine.register("note", NoteBehavior)
        publisher = JetStreamPublisher(server.url, stream=stream, subject_prefix=prefix)
        async with publisher, engine:
            await publisher.attach(engine, batch_size=10, partitions=2)
            for i in range(20):
                await engine.send("note", f"n{i % 4}", Note(f"up {i}"))
            await engine.wait_for_projection("nats-publisher", timeout=20)

            server.stop()
            for i in range(30):  # commands keep being accepted
                reply = await engine.send("note", f"n{i % 4}", Note(f"down {i}"), timeout=5)
                assert reply.revision == 5 + i // 4 + 1
            await wait_until(
                lambda: server.url in (engine.projection_status("nats-publisher").last_error or ""),
                timeout=10,
            )
            status = engine.projection_status("nats-publisher")
            assert status.state is ea.ProjectionState.RUNNING and status.lag > 0
            assert f"NATS at {server.url} is unavailable" in (status.last_error or "")

            server.start()
            status = await engine.wait_for_projection("nats-publisher", timeout=30)
            assert status.lag == 0 and status.state is ea.ProjectionState.RUNNING
            envelopes = await all_events(engine.store)
            assert publisher.statistics().connections >= 2
        messages = await read_stream(server.url, stream)
        check_stream(messages, envelopes, publisher)
    finally:
        server.stop()
    assert no_other_tasks() == []


async def test_a_retry_after_an_outage_longer_than_the_duplicate_window(tmp_path: Path) -> None:
    """The server stops mid-page (one entity's 400 events, one chain), and stays away for
    longer than the stream's duplicate window: the retry sends only what JetStream has not
    acknowledged, so nothing is stored twice and the entity's order holds."""
    server = start_server(tmp_path / "nats")
    proxy = StallingProxy(server.port)  # keeps the publisher out while the server is back
    await proxy.start()
    stream, prefix = names()
    try:
        engine = ea.Engine()
        engine.register("note", NoteBehavior)
        publisher = JetStreamPublisher(
            proxy.url, stream=stream, subject_prefix=prefix, duplicate_window=1.0
        )
        async with publisher, engine:
            await publisher.connect()
            for i in range(400):
                await engine.send("note", "A", Note(f"a {i}"))
            await engine.send("note", "B", Note("b"))
            await publisher.attach(engine, batch_size=500)
            await wait_until(lambda: publisher.statistics().published >= 100, timeout=10)
            server.stop()  # mid-page; the ack of the event in flight may be lost
            proxy.refuse()
            server.start()
            await wait_out_duplicate_window(
                server.url, f"{prefix}probe"
            )  # from now: after every ack
            assert publisher.statistics().published < 401
            proxy.admit()
            status = await engine.wait_for_projection("nats-publisher", timeout=30)
            assert status.lag == 0 and status.state is ea.ProjectionState.RUNNING
            envelopes = await all_events(engine.store)
            statistics = publisher.statistics()
        messages = await read_stream(server.url, stream)
        check_stream(messages, envelopes, publisher)  # 401 messages, A's in order
        assert (statistics.published, statistics.duplicates, statistics.pages) == (401, 0, 1)
    finally:
        await proxy.close()
        server.stop()
    assert no_other_tasks() == []


async def test_a_hung_partition_does_not_hold_up_the_others(nats_server: NatsServer) -> None:
    """One partition's connection hangs (its acks never come): it resets and retries on its
    own, while the other partition, on its own connection, publishes everything."""
    stream, prefix = names()
    x = next(f"x{i}" for i in range(100) if partition_of(f"note|x{i}", 2) == 0)
    y = next(f"y{i}" for i in range(100) if partition_of(f"note|y{i}", 2) == 1)
    proxy = StallingProxy(nats_server.port)
    await proxy.start()
    engine = ea.Engine()
    engine.register("note", NoteBehavior)
    publisher = JetStreamPublisher(proxy.url, stream=stream, subject_prefix=prefix, ack_timeout=0.5)
    try:
        async with publisher, engine:
            await publisher.connect()  # the stream exists before the hang
            for i in range(30):
                await engine.send("note", x, Note(f"x {i}"))
                await engine.send("note", y, Note(f"y {i}"))
            proxy.stall(f" {publisher.subject_for('note', x)} ".encode())
            await publisher.attach(engine, partitions=2)
            head = await engine.store.head_position()
            hung, free = "nats-publisher/slices-0-511", "nats-publisher/slices-512-1023"
            await wait_until(lambda: engine.projection_status(free).position == head, timeout=10)
            assert engine.projection_status(hung).position < head and proxy.stalled >= 1
            await wait_until(lambda: proxy.stalled >= 2, timeout=10)  # reset, then hung again
            assert engine.projection_status(hung).position < head

            proxy.release()
            status = await engine.wait_for_projection("nats-publisher", timeout=30)
            assert status.lag == 0 and status.state is ea.ProjectionState.RUNNING
            envelopes = await all_events(engine.store)
        messages = await read_stream(nats_server.url, stream)
        check_stream(messages, envelopes, publisher)
        assert publisher.statistics().published == 60
    finally:
        await proxy.close()
    assert no_other_tasks() == []


# -- 4. bad input -------------------------------------------------------------------------


async def test_unreachable_server_is_a_clear_error() -> None:
    url = f"nats://127.0.0.1:{free_port()}"
    publisher = JetStreamPublisher(url, connect_timeout=1)
    expected = f"NATS at {re.escape(url)} is unavailable"
    with pytest.raises(PublisherUnavailable, match=expected) as raised:
        await publisher.connect()  # fail fast, for who wants it at startup
    assert "Connect call failed" in str(raised.value)

    engine = ea.Engine()  # attached, the engine stays up and the status says why it lags
    engine.register("note", NoteBehavior)
    async with engine:
        await publisher.attach(engine)
        await engine.send("note", "n1", Note("hello"))
        await wait_until(
            lambda: url in (engine.projection_status("nats-publisher").last_error or "")
        )
        status = engine.projection_status("nats-publisher")
        assert status.state is ea.ProjectionState.RUNNING and status.lag == 1
        assert f"StoreUnavailable: NATS at {url} is unavailable" in (status.last_error or "")
        await engine.send("note", "n1", Note("still taking commands"))
        async with asyncio.timeout(5):
            await publisher.close()  # the retrying projection stops at once
        with pytest.raises(KeyError, match="no projection named 'nats-publisher'"):
            engine.projection_status("nats-publisher")
        await engine.send("note", "n1", Note("and after"))
    print(f"\nlast_error: {status.last_error}")
    assert no_other_tasks() == []


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"subject_prefix": "a..b"}, "invalid subject_prefix 'a..b'"),
        ({"subject_prefix": "events.*"}, "invalid subject_prefix 'events.\\*'"),
        ({"subject_prefix": "events.>"}, "invalid subject_prefix"),
        ({"subject_prefix": "my events"}, "invalid subject_prefix"),
        ({"subject_prefix": "$JS.events"}, "reserved"),
        ({"subject_prefix": ""}, "subject_prefix must be a non-empty string"),
        ({"stream": "a.b"}, "invalid stream name 'a.b'"),
        ({"ack_timeout": 0}, "ack_timeout must be a positive number"),
        ({"connect_options": {"servers": ["nats://x"]}}, "servers as the first argument"),
        ({"duplicate_window": None}, "duplicate_window must be a positive number"),
        ({"connect_timeout": float("nan")}, "connect_timeout must be a positive number"),
        ({"on_rejected": "drop"}, "on_rejected must be 'fail' or 'skip'"),
        ({"dead_letter": print}, "dead_letter is called for skipped events"),
    ],
)
def test_bad_options_are_refused(options: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        JetStreamPublisher("nats://127.0.0.1:4222", **options)


@pytest.mark.parametrize(
    "url", ["http://127.0.0.1:4222", "nats://", "127.0.0.1:4222", "nats://h:x"]
)
def test_bad_server_urls_are_refused(url: str) -> None:
    with pytest.raises(ValueError, match="invalid NATS server URL"):
        JetStreamPublisher(url)


async def test_stream_that_does_not_fit(
    nats_server: NatsServer, caplog: pytest.LogCaptureFixture
) -> None:
    stream, prefix = names()
    async with JetStreamPublisher(
        nats_server.url, stream=stream, subject_prefix=prefix, create_stream=False
    ) as publisher:
        with pytest.raises(StreamMismatch, match=f"stream '{stream}' does not exist"):
            await publisher.connect()
        assert f"stream '{stream}' does not exist" in (publisher.statistics().last_error or "")
    nc = await nats.connect(nats_server.url)
    js = nc.jetstream()
    try:
        await js.add_stream(name=stream, subjects=[f"{prefix}.other.*"])
        async with JetStreamPublisher(
            nats_server.url, stream=stream, subject_prefix=prefix
        ) as publisher:
            with pytest.raises(StreamMismatch, match="not the publisher's subjects"):
                await publisher.connect()
        await js.delete_stream(stream)

        # A stream that never acknowledges: the offset could never move.
        await js.add_stream(name=stream, subjects=[f"{prefix}.>"], no_ack=True)
        async with JetStreamPublisher(
            nats_server.url, stream=stream, subject_prefix=prefix
        ) as publisher:
            with pytest.raises(StreamMismatch, match="has no_ack set: it never acknowledges"):
                await publisher.connect()
        await js.delete_stream(stream)

        # In memory, with a short duplicate window: it serves, with a warning for each.
        await js.add_stream(
            name=stream, subjects=[f"{prefix}.>"], storage=StorageType.MEMORY,
            duplicate_window=1.0,
        )  # fmt: skip
        with caplog.at_level(logging.WARNING, logger="eventactors.publishers.nats"):
            async with JetStreamPublisher(
                nats_server.url, stream=stream, subject_prefix=prefix
            ) as publisher:
                await publisher.connect()
        assert "keeps its messages in memory" in caplog.text
        assert "duplicate window of 1s" in caplog.text
        await js.delete_stream(stream)
    finally:
        await nc.close()


async def test_a_stream_jetstream_will_not_create_is_recorded(nats_server: NatsServer) -> None:
    """JetStream refuses a second stream on the same subjects: a StreamMismatch saying so,
    in the publisher's statistics and in the projection's status."""
    stream, prefix = names()
    nc = await nats.connect(nats_server.url)
    try:
        await nc.jetstream().add_stream(name=f"{stream}OLD", subjects=[f"{prefix}.>"])
        publisher = JetStreamPublisher(nats_server.url, stream=stream, subject_prefix=prefix)
        expected = f"JetStream refused stream '{stream}' for '{prefix}.>': subjects overlap"
        with pytest.raises(StreamMismatch, match=re.escape(expected)):
            await publisher.connect()
        assert expected in (publisher.statistics().last_error or "")

        engine = ea.Engine()
        engine.register("note", NoteBehavior)
        publisher = JetStreamPublisher(nats_server.url, stream=stream, subject_prefix=prefix)
        async with publisher, engine:
            await publisher.attach(engine, policy=ea.fail())
            await engine.send("note", "n1", Note("hello"))
            await wait_until(
                lambda: (
                    engine.projection_status("nats-publisher").state is ea.ProjectionState.FAILED
                )
            )
            assert expected in (engine.projection_status("nats-publisher").last_error or "")
            last_error = publisher.statistics().last_error or ""
            assert last_error.startswith("StreamMismatch: ") and expected in last_error
        await nc.jetstream().delete_stream(f"{stream}OLD")
    finally:
        await nc.close()


async def test_a_server_without_jetstream(tmp_path: Path) -> None:
    server = start_server(tmp_path, jetstream=False)
    try:
        async with JetStreamPublisher(server.url) as publisher:
            with pytest.raises(PublisherUnavailable, match=r"JetStream does not answer; is it"):
                await publisher.connect()
    finally:
        server.stop()


async def test_an_event_jetstream_refuses_goes_to_the_policy(nats_server: NatsServer) -> None:
    stream, prefix = names()
    engine = ea.Engine(max_event_bytes=None)  # the event must be bigger than NATS takes
    engine.register("note", NoteBehavior)
    async with JetStreamPublisher(nats_server.url, stream=stream, subject_prefix=prefix) as pub:
        await pub.attach(engine, policy=ea.fail())
        async with engine:
            await engine.send("note", "big", Note("x" * 2_000_000))  # over max_payload (1 MB)
            await wait_until(
                lambda: (
                    engine.projection_status("nats-publisher").state is ea.ProjectionState.FAILED
                )
            )
            error = engine.projection_status("nats-publisher").last_error or ""
            assert "PublishRejected: JetStream refused event" in error
            assert "note|big #1" in error and "MaxPayloadError" in error


async def test_a_refused_event_is_skipped_alone(nats_server: NatsServer) -> None:
    """With on_rejected="skip", only the refused event is dead-lettered: the rest of its
    entity's events and the other entities' are published, and the projection goes on."""
    stream, prefix = names()
    dead: list[tuple[str, int, str]] = []

    def dead_letter(envelope: ea.EventEnvelope, error: PublishRejected) -> None:
        dead.append((envelope.entity_id, envelope.sequence_number, str(error)))

    engine = ea.Engine(max_event_bytes=None)  # the event must be bigger than NATS takes
    engine.register("note", NoteBehavior)
    publisher = JetStreamPublisher(
        nats_server.url, stream=stream, subject_prefix=prefix, on_rejected="skip",
        dead_letter=dead_letter,
    )  # fmt: skip
    async with publisher, engine:
        with pytest.raises(ValueError, match="policy cannot skip: the runner would drop"):
            await publisher.attach(engine, policy=ea.retry_then_skip(0))
        await engine.send("note", "big", Note("x" * 2_000_000))  # over max_payload (1 MB)
        await engine.send("note", "big", Note("small, fine"))
        await engine.send("note", "ok", Note("fine"))
        await publisher.attach(engine)
        status = await engine.wait_for_projection("nats-publisher", timeout=10)
        assert status.lag == 0 and status.state is ea.ProjectionState.RUNNING
        statistics = publisher.statistics()
    assert [(entity, number) for entity, number, _ in dead] == [("big", 1)]
    assert "MaxPayloadError" in dead[0][2]
    messages = await read_stream(nats_server.url, stream)
    assert published_as(messages) == [("big", 2), ("ok", 1)]
    assert (statistics.published, statistics.skipped, statistics.duplicates) == (2, 1, 0)
    assert "PublishRejected: JetStream refused event" in (statistics.last_error or "")


async def test_an_entity_id_too_long_for_a_subject(nats_server: NatsServer) -> None:
    """A legal id of 520 'é' escapes to over 3 KiB: its subject carries a hashed token,
    the header the id, and every other entity is published as usual."""
    stream, prefix = names()
    long_id = "é" * 520
    engine = ea.Engine()
    engine.register("note", NoteBehavior)
    publisher = JetStreamPublisher(nats_server.url, stream=stream, subject_prefix=prefix)
    async with publisher, engine:
        await publisher.attach(engine)
        await engine.send("note", long_id, Note("legal id, 520 characters"))
        for i in range(3):
            await engine.send("note", f"ok-{i}", Note("fine"))
        await engine.send("note", long_id, Note("again"))
        status = await engine.wait_for_projection("nats-publisher", timeout=10)
        assert status.lag == 0 and status.last_error is None
        envelopes = await all_events(engine.store)
    messages = await read_stream(nats_server.url, stream)
    check_stream(messages, envelopes, publisher)
    digest = hashlib.sha256(long_id.encode()).hexdigest()
    assert publisher.subject_for("note", long_id) == f"{prefix}.note.~{digest}"
    assert published_as(messages) == [(long_id, 1), ("ok-0", 1), ("ok-1", 1), ("ok-2", 1),
                                      (long_id, 2)]  # fmt: skip
    with pytest.raises(ValueError, match="cannot be decoded; read the EventActors-Entity-Id"):
        decode_token(messages[0].subject.split(".")[-1])


def test_the_package_imports_without_nats_py() -> None:
    """Importing `eventactors.publishers` never needs nats-py; its names, forwarded from
    the canonical `eventactors.publishers.nats`, name the extra."""
    script = (
        "import sys; sys.modules['nats'] = None\n"
        "import eventactors.publishers as p\n"
        "for name in ('JetStreamPublisher', 'decode_token'):\n"
        "    try:\n"
        "        getattr(p, name)\n"
        "    except ImportError as error:\n"
        "        print(error)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60,
        env={**os.environ, "PYTHONWARNINGS": "error"}, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert result.stdout.count("pip install 'eventactors[nats]'") == 2


def test_one_import_path() -> None:
    import eventactors.publishers as package
    import eventactors.publishers.nats as canonical

    for name in canonical.__all__:
        assert getattr(package, name) is getattr(canonical, name)
    assert not hasattr(package, "__all__")
