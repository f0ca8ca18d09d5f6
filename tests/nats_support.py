"""For the publisher's tests: a private nats-server per test (module), on a free port with its
own storage directory, so the tests never depend on or pollute a shared server; a proxy in
front of one, for faults a server cannot be asked for; an entity to publish; and reading a
stream back, with the checks on what it holds."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import subprocess
import time
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import msgspec
import nats
from nats.aio.msg import Msg

import eventactors as ea
from eventactors._slices import slice_of, slice_ranges
from eventactors.publishers.nats import JetStreamPublisher, decode_token

NATS_SERVER = "/usr/sbin/nats-server"


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


def names() -> tuple[str, str]:
    """A stream and a subject prefix of the test's own."""
    tag = uuid.uuid4().hex[:10]
    return f"T{tag}", f"t{tag}"


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


def partition_of(persistence_id: str, partitions: int) -> int:
    """Which of the projection's `partitions` an entity's events go to."""
    ranges = slice_ranges(partitions)
    return next(i for i, part in enumerate(ranges) if slice_of(persistence_id) in part)


def published_as(messages: list[Msg]) -> list[tuple[str, int]]:
    return [
        (
            decode_token((message.headers or {})["EventActors-Entity-Id"]),
            int((message.headers or {})["EventActors-Sequence-Number"]),
        )
        for message in messages
    ]


async def all_events(store: ea.Store) -> list[ea.EventEnvelope]:
    events: list[ea.EventEnvelope] = []
    while page := await store.read_all(events[-1].global_position if events else 0, 1000):
        events.extend(page)
    return events


async def wait_out_duplicate_window(url: str, subject: str) -> None:
    """Returns once a message sent now would no longer be recognised as a duplicate by a
    stream with a 1 s duplicate window: JetStream's own clock says when it has passed."""
    nc = await nats.connect(url)
    try:
        js = nc.jetstream()
        stream = f"PROBE{uuid.uuid4().hex[:8]}"
        await js.add_stream(name=stream, subjects=[subject], duplicate_window=1.0)
        await js.publish(subject, b"", headers={"Nats-Msg-Id": "probe"})
        for _ in range(200):  # 10 s at most
            ack = await js.publish(subject, b"", headers={"Nats-Msg-Id": "probe"})
            if not ack.duplicate:
                break
            await asyncio.sleep(0.05)
        else:
            raise AssertionError("the duplicate window never passed")
        await js.delete_stream(stream)
    finally:
        await nc.close()


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@dataclass
class NatsServer:
    """A nats-server process with JetStream; `stop()` and `start()` again keep its port and
    its stored streams, as a restarted production server would."""

    port: int
    store_dir: Path
    jetstream: bool = True
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"nats://127.0.0.1:{self.port}"

    def start(self, timeout: float = 10.0) -> None:
        command = [NATS_SERVER, "-a", "127.0.0.1", "-p", str(self.port)]
        if self.jetstream:
            command += ["-js", "-sd", str(self.store_dir)]
        self.process = subprocess.Popen(
            command,
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        deadline = time.monotonic() + timeout
        while True:  # the client port opens once JetStream is set up
            if self.process.poll() is not None:
                raise RuntimeError(f"nats-server exited with {self.process.returncode}")
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                return
            except OSError:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"nats-server not listening within {timeout}s") from None
                time.sleep(0.02)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=10)
        self.process = None


def start_server(store_dir: Path, *, jetstream: bool = True) -> NatsServer:
    server = NatsServer(free_port(), store_dir, jetstream)
    server.start()
    return server


async def read_stream(url: str, stream: str, *, timeout: float = 10.0) -> list[Msg]:
    """Every message the stream holds, in stream order, through an ordered consumer."""
    nc = await nats.connect(url)
    try:
        js = nc.jetstream()
        info = await js.stream_info(stream)
        subject = info.config.subjects[0] if info.config.subjects else ">"
        sub = await js.subscribe(subject, stream=stream, ordered_consumer=True)
        messages: list[Msg] = []
        try:
            async with asyncio.timeout(timeout):
                while len(messages) < info.state.messages:
                    messages.append(await sub.next_msg(timeout=timeout))
        finally:
            await sub.unsubscribe()
        return messages
    finally:
        await nc.close()


@dataclass(eq=False)
class _Link:
    """One client connection through the proxy."""

    writers: tuple[asyncio.StreamWriter, asyncio.StreamWriter]
    cut: asyncio.Event = field(default_factory=asyncio.Event)
    stalled: bool = False


class StallingProxy:
    """A TCP proxy in front of a nats-server, for two faults.

    `stall(marker)`: a connection that sends `marker` (a subject between spaces, say) stops
    carrying bytes both ways, as a connection to a hung server does, while the proxy's other
    connections carry on; `release()` cuts the stalled ones. `refuse()` closes every
    connection and each new one at once, as a server that is down does; `admit()` ends it.
    """

    def __init__(self, upstream_port: int) -> None:
        self.upstream_port = upstream_port
        self.port = 0
        self.stalled = 0  # connections stalled so far
        self._marker: bytes | None = None
        self._refusing = False
        self._links: set[_Link] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        self._server: asyncio.Server | None = None

    @property
    def url(self) -> str:
        return f"nats://127.0.0.1:{self.port}"

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    def stall(self, marker: bytes) -> None:
        self._marker = marker

    def release(self) -> None:
        self._marker = None
        for link in list(self._links):
            if link.stalled:
                link.cut.set()

    def refuse(self) -> None:
        self._refusing = True
        for link in list(self._links):
            link.cut.set()

    def admit(self) -> None:
        self._refusing = False

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
        for link in list(self._links):
            link.cut.set()
        if self._tasks:  # each ends once its link is cut
            await asyncio.wait(self._tasks, timeout=10)

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        try:
            if self._refusing:
                return
            try:
                upstream = await asyncio.open_connection("127.0.0.1", self.upstream_port)
            except OSError:
                return  # the server is down: so is this connection
            link = _Link((writer, upstream[1]))
            self._links.add(link)
            pumps = [
                asyncio.ensure_future(self._pump(reader, upstream[1], link, outbound=True)),
                asyncio.ensure_future(self._pump(upstream[0], writer, link, outbound=False)),
                asyncio.ensure_future(link.cut.wait()),
            ]
            try:
                await asyncio.wait(pumps, return_when=asyncio.FIRST_COMPLETED)
            finally:
                for pump in pumps:
                    pump.cancel()
                await asyncio.gather(*pumps, return_exceptions=True)
                self._links.discard(link)
                upstream[1].close()
        finally:
            writer.close()
            self._tasks.discard(task)

    async def _pump(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        link: _Link,
        *,
        outbound: bool,
    ) -> None:
        tail = b""
        with contextlib.suppress(OSError):
            while data := await reader.read(65536):
                marker = self._marker
                if outbound and marker is not None and not link.stalled:
                    if marker in tail + data:
                        link.stalled = True
                        self.stalled += 1
                    tail = data[-len(marker) :]
                if link.stalled:
                    await link.cut.wait()  # the bytes go nowhere, like a hung server's
                    return
                writer.write(data)
                await writer.drain()
