"""The JetStream publisher against a real nats-server (a private one per module, on a free
port with its own storage): every event published once, in order per entity, with its
headers; across a SIGKILLed process; through a NATS outage; and bad input refused clearly."""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import subprocess
import sys
import uuid
from asyncio.subprocess import PIPE
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import msgspec
import nats
import pytest
from nats.aio.msg import Msg
from nats_support import NatsServer, free_port, read_stream, start_server
from waits import wait_until

import eventactors as ea
from eventactors.publishers import decode_token, encode_token
from eventactors.publishers.nats import (
    JetStreamPublisher,
    PublisherUnavailable,
    StreamMismatch,
)

CHILD = Path(__file__).with_name("nats_publisher_child.py")


class Note(msgspec.Struct, frozen=True):
    text: str


class Noted(msgspec.Struct, frozen=True):
    text: str


class Notes(msgspec.Struct, frozen=True):
    count: int = 0


class NoteBehavior(ea.EventSourcedBehavior[Notes]):
    events = (Noted,)

    def initial_state(self) -> Notes:
        return Notes()

    def handle_command(self, state: Notes, command: Note) -> Noted:
        return Noted(command.text)

    def handle_event(self, state: Notes, event: Noted) -> Notes:
        return Notes(state.count + 1)

    def tags_for(self, event: Any) -> Iterable[str]:
        return ("notes", "a tag")


@pytest.fixture(scope="module")
def nats_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NatsServer]:
    server = start_server(tmp_path_factory.mktemp("nats"))
    yield server
    server.stop()


def names() -> tuple[str, str]:
    """A stream and a subject prefix of the test's own."""
    tag = uuid.uuid4().hex[:10]
    return f"T{tag}", f"t{tag}"


def no_other_tasks() -> list[asyncio.Task[Any]]:
    return [task for task in asyncio.all_tasks() if task is not asyncio.current_task()]


def check_stream(
    messages: list[Msg], envelopes: list[ea.EventEnvelope], publisher: JetStreamPublisher
) -> None:
    """Each event exactly once, on its entity's subject, in sequence order per entity."""
    ids = [message.headers["Nats-Msg-Id"] for message in messages if message.headers]
    assert len(ids) == len(messages) == len(envelopes)
    assert sorted(ids) == sorted(envelope.event_id for envelope in envelopes)
    by_id = {envelope.event_id: envelope for envelope in envelopes}
    seen: dict[str, list[int]] = {}
    for message in messages:
        envelope = by_id[(message.headers or {})["Nats-Msg-Id"]]
        assert message.subject == publisher.subject_for(envelope.entity_type, envelope.entity_id)
        seen.setdefault(message.subject, []).append(envelope.sequence_number)
    for subject, sequence in seen.items():
        assert sequence == list(range(1, len(sequence) + 1)), subject


async def all_events(store: ea.Store) -> list[ea.EventEnvelope]:
    events: list[ea.EventEnvelope] = []
    while page := await store.read_all(events[-1].global_position if events else 0, 1000):
        events.extend(page)
    return events


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
            await pub.attach(engine, batch_size=7, partitions=partitions)  # sharing a connection

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
        assert (statistics.duplicates, statistics.connections) == (0, 1)

        by_id = {envelope.event_id: envelope for envelope in envelopes}
        for message in messages:
            headers = {key: decode_token(value) for key, value in message.headers.items()}
            envelope = by_id[headers["Nats-Msg-Id"]]
            assert message.data == envelope.payload == msgspec.json.encode(envelope.event)
            assert headers["EventActors-Persistence-Id"] == envelope.persistence_id
            assert headers["EventActors-Entity-Type"] == "note.book"
            assert headers["EventActors-Entity-Id"] == envelope.entity_id
            assert int(headers["EventActors-Sequence-Number"]) == envelope.sequence_number
            assert int(headers["EventActors-Global-Position"]) == envelope.global_position
            assert headers["EventActors-Event-Type"] == "Noted"
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
    for text in ["a.b", "*", ">", " x\ty\n", "%2E", "ü/ß", "a|b", "~_-"]:
        token = encode_token(text)
        assert decode_token(token) == text
        assert not set(token) & set(".*> \t\r\n")
    assert encode_token("acc-1_x~") == "acc-1_x~"  # common ids stay readable


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
        _, stderr = await child.communicate()
    assert child.returncode == -signal.SIGKILL and in_stream >= 200, stderr.decode()
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


async def test_stream_that_does_not_fit(nats_server: NatsServer) -> None:
    stream, prefix = names()
    async with JetStreamPublisher(
        nats_server.url, stream=stream, subject_prefix=prefix, create_stream=False
    ) as publisher:
        with pytest.raises(StreamMismatch, match=f"stream '{stream}' does not exist"):
            await publisher.connect()
    nc = await nats.connect(nats_server.url)
    try:
        await nc.jetstream().add_stream(name=stream, subjects=[f"{prefix}.other.*"])
        async with JetStreamPublisher(
            nats_server.url, stream=stream, subject_prefix=prefix
        ) as publisher:
            with pytest.raises(StreamMismatch, match="not the publisher's subjects"):
                await publisher.connect()
        await nc.jetstream().delete_stream(stream)
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
    engine = ea.Engine()
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


def test_the_package_imports_without_nats_py() -> None:
    """`eventactors.publishers` never needs nats-py; its `nats` module names the extra."""
    script = (
        "import sys; sys.modules['nats'] = None\n"
        "import eventactors.publishers as p\n"
        "assert p.decode_token(p.encode_token('a.b')) == 'a.b'\n"
        "try:\n"
        "    p.JetStreamPublisher\n"
        "except ImportError as error:\n"
        "    print(error)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60,
        env={**os.environ, "PYTHONWARNINGS": "error"}, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "pip install 'eventactors[nats]'" in result.stdout
