"""One NATS connection and its JetStream context, and the check that the stream can take the
publisher's messages.

Each partition of the publisher owns its connection. A failed page closes the connection it
used (a hung server looks connected until its acks time out), and with a shared connection
that would cut short the pages other partitions have in flight.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

try:
    import nats.errors
    import nats.js.errors
    from nats.aio.client import Client
    from nats.js import JetStreamContext
    from nats.js.api import StorageType, StreamConfig, StreamInfo
except ImportError as exc:  # pragma: no cover - exercised in a subprocess without nats-py
    raise ImportError(
        "eventactors.publishers.nats needs nats-py, an optional extra: "
        "pip install 'eventactors[nats]'",
        name=exc.name,
    ) from exc

from ._nats_options import Settings
from ._nats_types import Counters, PublisherUnavailable, StreamMismatch

log = logging.getLogger("eventactors.publishers.nats")

#: A re-publication later than this after the first is stored twice: warned about below it.
MIN_DUPLICATE_WINDOW = 5.0

# Errors that say "not now" rather than "never": the connection or JetStream is away.
TRANSIENT = (
    nats.errors.NoServersError,
    nats.errors.ConnectionClosedError,
    nats.errors.ConnectionDrainingError,
    nats.errors.ConnectionReconnectingError,
    nats.errors.OutboundBufferLimitError,
    nats.errors.StaleConnectionError,
    nats.errors.NoRespondersError,
    nats.js.errors.NoStreamResponseError,  # no stream answers: JetStream down or starting
    nats.js.errors.ServiceUnavailableError,  # 503: JetStream not ready
    TimeoutError,  # nats.errors.TimeoutError is one
    OSError,
)


class Connection:
    """Connects on first use, and again after `reset()`; `closed` for good by `close()`."""

    def __init__(self, settings: Settings, counters: Counters) -> None:
        self._settings = settings
        self._counters = counters
        self._nc: Client | None = None
        self._js: JetStreamContext | None = None
        self._lock = asyncio.Lock()  # `connect()` may race the partition's first page
        self._client_error: BaseException | None = None
        self._closed = False
        #: Has connected at least once; `statistics().connected` looks only at these.
        self.used = False

    @property
    def connected(self) -> bool:
        return self._nc is not None and self._nc.is_connected

    async def jetstream(self) -> JetStreamContext:
        """The JetStream context, connecting and checking the stream first if needed."""
        if self._js is not None and self.connected:
            return self._js
        async with self._lock:
            if self._closed:
                raise PublisherUnavailable("the NATS publisher is closed")
            if self._js is not None and self.connected:
                return self._js
            await self.reset()
            nc = Client()
            self._client_error = None
            settings = self._settings
            try:
                await self._connect(nc)
                js = nc.jetstream(timeout=settings.ack_timeout)
                concerns = await check_stream(js, settings)
            except BaseException as exc:
                with contextlib.suppress(Exception):
                    await nc.close()
                if isinstance(exc, TRANSIENT):
                    raise self.unavailable(exc) from exc
                raise
            for concern in concerns.difference(self._counters.concerns):
                log.warning("NATS publisher: %s", concern)  # once per publisher
            self._counters.concerns.update(concerns)
            self._nc, self._js = nc, js
            self.used = True
            self._counters.connections += 1
            return js

    async def _connect(self, nc: Client) -> None:
        settings = self._settings
        try:
            await nc.connect(
                list(settings.servers),
                **{
                    "name": "eventactors-publisher",
                    "connect_timeout": settings.connect_timeout,
                    # A lost connection is closed, not buffered for a reconnect: the
                    # projection retries the page on a new one, from what was not acked.
                    "allow_reconnect": False,
                    "max_reconnect_attempts": 1,  # one more try per server, first time
                    "reconnect_time_wait": 0.1,
                    "error_cb": self._on_client_error,
                    **settings.connect_options,
                },
            )
        except nats.errors.Error as exc:  # such as a server that closes during the handshake
            raise self.unavailable(exc) from exc

    def unavailable(self, error: BaseException) -> PublisherUnavailable:
        """The error the projection runner waits out, saying why NATS is away."""
        cause = error
        if isinstance(error, nats.errors.NoServersError) and self._client_error is not None:
            cause = self._client_error  # says why: refused, timed out, bad credentials
        if isinstance(error, nats.js.errors.NoStreamResponseError):
            stream = self._settings.stream
            detail = f"no JetStream stream captures its subjects; was {stream!r} deleted?"
        elif isinstance(
            error, nats.js.errors.ServiceUnavailableError | nats.errors.NoRespondersError
        ):
            detail = "JetStream does not answer; is it enabled (nats-server -js) and ready?"
        else:
            detail = f"{type(cause).__name__}: {str(cause) or 'no detail'}"
        return PublisherUnavailable(
            f"NATS at {', '.join(self._settings.servers)} is unavailable ({detail}); the "
            "projection retries"
        )

    async def _on_client_error(self, error: Exception) -> None:
        self._client_error = error
        log.debug("NATS client error: %r", error)

    async def reset(self) -> None:
        """Closes the connection after a failure; the next `jetstream()` makes a new one."""
        nc, self._nc, self._js = self._nc, None, None
        if nc is not None:
            with contextlib.suppress(Exception):
                await nc.close()
            await asyncio.sleep(0)  # lets the cancelled reader and flusher tasks finish

    async def close(self) -> None:
        async with self._lock:
            self._closed = True
            await self.reset()


async def check_stream(js: JetStreamContext, settings: Settings) -> set[str]:
    """Creates the stream if allowed and missing; refuses one that cannot serve, and
    returns what is risky about it."""
    name, prefix = settings.stream, settings.subject_prefix
    try:
        try:
            info = await js.stream_info(name)
        except nats.js.errors.NotFoundError:
            if not settings.create_stream:
                raise StreamMismatch(
                    f"JetStream stream {name!r} does not exist: create it to capture "
                    f"'{prefix}.>', or pass create_stream=True"
                ) from None
            info = await js.add_stream(
                name=name,
                subjects=[f"{prefix}.>"],
                storage=StorageType.FILE,
                duplicate_window=settings.duplicate_window,
            )
            log.info("created JetStream stream %s for %s.>", name, prefix)
    except nats.js.errors.APIError as exc:
        if isinstance(exc, TRANSIENT):
            raise
        raise StreamMismatch(
            f"JetStream refused stream {name!r} for '{prefix}.>': "
            f"{exc.description or type(exc).__name__} (code {exc.code}, err_code {exc.err_code})"
        ) from exc
    return check_config(info, prefix)


def check_config(info: StreamInfo, prefix: str) -> set[str]:
    config: StreamConfig = info.config
    subjects = list(config.subjects or [])
    if not any(captures(subject, prefix) for subject in subjects):
        raise StreamMismatch(
            f"JetStream stream {config.name!r} captures {subjects}, not the publisher's "
            f"subjects '{prefix}.<entity_type>.<entity_id>'"
        )
    if config.no_ack:
        raise StreamMismatch(
            f"JetStream stream {config.name!r} has no_ack set: it never acknowledges a "
            "message, so the publisher could never commit an offset; clear no_ack"
        )
    concerns = set()
    if config.storage == StorageType.MEMORY:
        concerns.add(
            f"JetStream stream {config.name} keeps its messages in memory: a restart of "
            "nats-server loses events whose offsets the publisher has already committed"
        )
    window = config.duplicate_window or 0.0
    if window < MIN_DUPLICATE_WINDOW:
        concerns.add(
            f"JetStream stream {config.name} has a duplicate window of {window:g}s: a page "
            "re-published after a crash longer than that is stored twice"
        )
    return concerns


def captures(stream_subject: str, prefix: str) -> bool:
    """Whether a stream subject (maybe with wildcards) captures every `<prefix>.<a>.<b>`."""
    target = [*prefix.split("."), "*", "*"]
    pattern = stream_subject.split(".")
    for index, token in enumerate(pattern):
        if index >= len(target):
            return False
        if token == ">":
            return True
        if token != "*" and (target[index] == "*" or token != target[index]):
            return False
    return len(pattern) == len(target)
