"""A private nats-server per test (module), on a free port with its own storage directory,
so the tests never depend on or pollute a shared server; and reading a stream back."""

from __future__ import annotations

import asyncio
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import nats
from nats.aio.msg import Msg

NATS_SERVER = "/usr/sbin/nats-server"


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
