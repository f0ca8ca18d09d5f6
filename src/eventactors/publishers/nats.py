"""Forwarding every persisted event to NATS JetStream, as a projection with a stored offset.

The publisher is a batched projection: a page of events is published, every message is
acknowledged by JetStream (its PubAck), and only then does the runner commit the page's
offset. A crash before that commit re-publishes the page after the restart: at-least-once.
Each message carries `Nats-Msg-Id: <event_id>`, so within the stream's duplicate window
JetStream drops those re-publications, and the stream holds each event once.

Order per entity: the messages of one subject are sent one at a time, each after the
previous one's ack, while different subjects of a page go out concurrently. Pipelining one
subject would be faster, but when a message in the middle is lost and the ones after it are
stored, its retry lands after them (JetStream numbers messages as they arrive), and the
entity's stream would be out of order.

NATS being down is not the handler's fault: `PublisherUnavailable` is a `StoreUnavailable`,
which the projection runner retries with capped backoff for as long as it lasts (a finite
policy would give up, and skipping would lose events for the broker), and which a stop
interrupts. The projection's failure policy applies to what JetStream refuses outright
(`PublishRejected`, such as a message over the server's size limit).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Iterable, Mapping, Sequence
from types import TracebackType
from typing import Any

try:
    import nats.errors
    import nats.js.errors
    from nats.aio.client import Client
    from nats.js import JetStreamContext
    from nats.js.api import StorageType
except ImportError as exc:  # pragma: no cover - exercised in a subprocess without nats-py
    raise ImportError(
        "eventactors.publishers.nats needs nats-py, an optional extra: "
        "pip install 'eventactors[nats]'",
        name=exc.name,
    ) from exc

from ..engine import Engine
from ..errors import EventActorsError
from ..projections import FailurePolicy, retry
from ..records import EventEnvelope
from ..stores.protocols import OffsetStore
from ._nats_format import (
    MAX_SUBJECT_LENGTH,
    captures,
    check_positive,
    check_prefix,
    check_servers,
    check_stream_name,
    decode_token,
    encode_token,
    headers_of,
    subject_of,
)
from ._nats_types import (
    PublisherStatistics,
    PublisherUnavailable,
    PublishRejected,
    StreamMismatch,
)

log = logging.getLogger("eventactors.publishers.nats")

__all__ = [
    "JetStreamPublisher",
    "PublishRejected",
    "PublisherStatistics",
    "PublisherUnavailable",
    "StreamMismatch",
    "decode_token",
    "encode_token",
]

# Errors that say "not now" rather than "never": the connection or JetStream is away.
_TRANSIENT = (
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


class JetStreamPublisher:
    """Publishes the events of an engine to a JetStream stream, one subject per entity:
    `<subject_prefix>.<entity_type>.<entity_id>`, each token escaped by `encode_token`.

    Nothing connects until the first page (or `connect()`), so an engine starts and takes
    commands while NATS is down; the projection's status then shows the error and its lag.
    Use it as an async context manager, or call `close()`: that removes its projections
    (committing the page in hand) and closes the connection.
    """

    def __init__(
        self,
        servers: str | Iterable[str] = "nats://127.0.0.1:4222",
        *,
        stream: str = "EVENTACTORS",
        subject_prefix: str = "eventactors",
        create_stream: bool = True,
        duplicate_window: float = 120.0,
        ack_timeout: float = 5.0,
        connect_timeout: float = 2.0,
        connect_options: Mapping[str, Any] | None = None,
    ) -> None:
        """`duplicate_window` (seconds) applies to a stream this publisher creates: a crash
        recovered later than that may store some events twice. `connect_options` go to
        `nats.connect` (credentials, TLS) and override the publisher's defaults."""
        self.servers = check_servers(servers)
        self.stream = check_stream_name(stream)
        self.subject_prefix = check_prefix(subject_prefix)
        self.create_stream = bool(create_stream)
        self.duplicate_window = check_positive("duplicate_window", duplicate_window)
        self.ack_timeout = check_positive("ack_timeout", ack_timeout)
        options = dict(connect_options or {})
        if "servers" in options:
            raise ValueError("give the servers as the first argument, not in connect_options")
        self._options: dict[str, Any] = {
            "name": "eventactors-publisher",
            "connect_timeout": check_positive("connect_timeout", connect_timeout),
            # A lost connection is closed, not buffered for a reconnect: the projection
            # retries the page on a new connection, from the events not yet acknowledged.
            "allow_reconnect": False,
            "max_reconnect_attempts": 1,  # one more try per server on the first connect
            "reconnect_time_wait": 0.1,
            "error_cb": self._on_client_error,
            **options,
        }
        self._nc: Client | None = None
        self._js: JetStreamContext | None = None
        self._lock = asyncio.Lock()
        self._attached: list[tuple[Engine, str]] = []
        self._closed = False
        self._client_error: BaseException | None = None
        self._published = self._duplicates = self._pages = self._connections = 0
        self._last_error: str | None = None
        self._outage = False

    # -- attaching to an engine -----------------------------------------------------------

    async def attach(
        self,
        engine: Engine,
        name: str = "nats-publisher",
        *,
        entity_types: Sequence[str] | None = None,
        event_types: Sequence[str] | None = None,
        tags: Sequence[str] | None = None,
        partitions: int = 1,
        from_start: bool = True,
        batch_size: int = 500,
        policy: FailurePolicy | None = None,
        offset_store: OffsetStore | None = None,
        poll_interval: float = 1.0,
    ) -> None:
        """Adds the projection `name` that publishes the engine's events (those matching the
        filters), from the start of the log by default. `partitions=N` publishes N slices
        of the entities concurrently, each with its own offset. `policy` (default: three
        retries, then stop) applies to events JetStream refuses; unavailability is always
        waited out."""
        if self._closed:
            raise EventActorsError("the publisher is closed; make a new one")
        if not isinstance(engine, Engine):
            raise TypeError(f"attach needs an eventactors Engine, got {engine!r}")
        if engine.cluster is not None:
            raise ValueError(
                "the NATS publisher runs in the engine's own process; in cluster mode, attach "
                "it to an engine without cluster= on the same store"
            )
        content_type = (
            "application/json" if engine.serializer.is_text else "application/octet-stream"
        )

        async def publish(page: list[EventEnvelope]) -> None:
            await self._publish_page(page, content_type)

        await engine.add_projection(
            name, publish, batched=True, from_start=from_start, batch_size=batch_size,
            policy=policy if policy is not None else retry(3, backoff=0.5),
            offset_store=offset_store, entity_types=entity_types, event_types=event_types,
            tags=tags, poll_interval=poll_interval, partitions=partitions,
        )  # fmt: skip
        self._attached.append((engine, name))

    def subject_for(self, entity_type: str, entity_id: str) -> str:
        """The subject an entity's events are published on."""
        return f"{self.subject_prefix}.{encode_token(entity_type)}.{encode_token(entity_id)}"

    def statistics(self) -> PublisherStatistics:
        nc = self._nc
        return PublisherStatistics(
            published=self._published,
            duplicates=self._duplicates,
            pages=self._pages,
            connections=self._connections,
            connected=nc is not None and nc.is_connected,
            last_error=self._last_error,
        )

    # -- the connection -------------------------------------------------------------------

    async def connect(self) -> None:
        """Connects and checks (or creates) the stream now, instead of on the first page:
        `PublisherUnavailable` if NATS cannot be reached, `StreamMismatch` if the stream
        does not fit."""
        await self._jetstream()

    async def _jetstream(self) -> JetStreamContext:
        js = self._js
        if js is not None and self._nc is not None and self._nc.is_connected:
            return js
        async with self._lock:  # concurrent partitions share one connection
            if self._closed:
                raise PublisherUnavailable("the NATS publisher is closed")
            if self._js is not None and self._nc is not None and self._nc.is_connected:
                return self._js
            await self._disconnect()
            nc = Client()
            self._client_error = None
            try:
                await nc.connect(self.servers, **self._options)
                js = nc.jetstream(timeout=self.ack_timeout)
                await self._check_stream(js)
            except BaseException as exc:
                with contextlib.suppress(Exception):
                    await nc.close()
                if isinstance(exc, _TRANSIENT):
                    raise self._unavailable(exc) from exc
                raise
            self._nc, self._js = nc, js
            self._connections += 1
            return js

    async def _check_stream(self, js: JetStreamContext) -> None:
        prefix = self.subject_prefix
        try:
            info = await js.stream_info(self.stream)
        except nats.js.errors.NotFoundError:
            if not self.create_stream:
                raise StreamMismatch(
                    f"JetStream stream {self.stream!r} does not exist: create it to capture "
                    f"'{prefix}.>', or pass create_stream=True"
                ) from None
            await js.add_stream(
                name=self.stream,
                subjects=[f"{prefix}.>"],
                storage=StorageType.FILE,
                duplicate_window=self.duplicate_window,
            )
            log.info("created JetStream stream %s for %s.>", self.stream, prefix)
            return
        subjects = list(info.config.subjects or [])
        if not any(captures(subject, prefix) for subject in subjects):
            raise StreamMismatch(
                f"JetStream stream {self.stream!r} captures {subjects}, not the publisher's "
                f"subjects '{prefix}.<entity_type>.<entity_id>'"
            )

    def _unavailable(self, error: BaseException) -> PublisherUnavailable:
        cause = error
        if isinstance(error, nats.errors.NoServersError) and self._client_error is not None:
            cause = self._client_error  # says why: refused, timed out, bad credentials
        if isinstance(error, nats.js.errors.NoStreamResponseError):
            detail = f"no JetStream stream captures its subjects; was {self.stream!r} deleted?"
        elif isinstance(
            error, nats.js.errors.ServiceUnavailableError | nats.errors.NoRespondersError
        ):
            detail = "JetStream does not answer; is it enabled (nats-server -js) and ready?"
        else:
            detail = f"{type(cause).__name__}: {str(cause) or 'no detail'}"
        return PublisherUnavailable(
            f"NATS at {', '.join(self.servers)} is unavailable ({detail}); the projection retries"
        )

    async def _on_client_error(self, error: Exception) -> None:
        self._client_error = error
        log.debug("NATS client error: %r", error)

    async def _disconnect(self, used: JetStreamContext | None = None) -> None:
        """Closes the connection; with `used`, only if it is still the one that failed (a
        concurrent partition may have connected again meanwhile)."""
        if used is not None and used is not self._js:
            return
        nc, self._nc, self._js = self._nc, None, None
        if nc is not None:
            with contextlib.suppress(Exception):
                await nc.close()
            await asyncio.sleep(0)  # lets the cancelled reader and flusher tasks finish

    async def close(self) -> None:
        """Removes the projections this publisher added (each finishes and commits the page
        in hand), then closes the NATS connection."""
        if self._closed:
            return
        for engine, name in self._attached:
            with contextlib.suppress(KeyError):
                await engine.remove_projection(name)
        self._attached.clear()
        async with self._lock:
            self._closed = True
            await self._disconnect()

    async def __aenter__(self) -> JetStreamPublisher:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.close()

    # -- publishing -----------------------------------------------------------------------

    async def _publish_page(self, page: Sequence[EventEnvelope], content_type: str) -> None:
        """Returns once JetStream acknowledged every event of the page; raises otherwise."""
        try:
            js = await self._jetstream()
        except PublisherUnavailable as unavailable:
            self._note_failure(unavailable)
            raise
        by_subject: dict[str, list[EventEnvelope]] = {}
        for envelope in page:
            by_subject.setdefault(subject_of(self.subject_prefix, envelope), []).append(envelope)
        results = await asyncio.gather(
            *(
                self._publish_in_order(js, s, chain, content_type)
                for s, chain in by_subject.items()
            ),
            return_exceptions=True,
        )
        failures: list[Exception] = []
        for result in results:
            if isinstance(result, BaseException):
                if not isinstance(result, Exception):
                    raise result  # KeyboardInterrupt and the like
                failures.append(result)
        if not failures:
            self._pages += 1
            if self._outage:
                self._outage = False
                log.info("NATS publisher: JetStream is back, publishing again")
            return
        outages = [f for f in failures if isinstance(f, PublisherUnavailable)]
        if outages:
            await self._disconnect(js)  # the next attempt starts on a fresh connection
        first = (outages or failures)[0]
        self._note_failure(first)
        raise first

    async def _publish_in_order(
        self,
        js: JetStreamContext,
        subject: str,
        envelopes: list[EventEnvelope],
        content_type: str,
    ) -> None:
        """One entity's events, each sent after the previous one was acknowledged."""
        if len(subject.encode()) > MAX_SUBJECT_LENGTH:
            raise PublishRejected(
                f"{_describe(envelopes[0])}: its subject is {len(subject.encode())} bytes "
                f"once escaped; NATS takes at most {MAX_SUBJECT_LENGTH}"
            )
        for envelope in envelopes:
            try:
                ack = await js.publish(
                    subject,
                    envelope.payload,
                    timeout=self.ack_timeout,
                    stream=self.stream,
                    headers=headers_of(envelope, content_type),
                )
            except _TRANSIENT as exc:
                raise self._unavailable(exc) from exc
            except nats.errors.Error as exc:
                raise PublishRejected(
                    f"JetStream refused {_describe(envelope)} on {subject!r}: "
                    f"{type(exc).__name__}: {exc}"
                ) from exc
            if ack.duplicate:
                self._duplicates += 1
            else:
                self._published += 1

    def _note_failure(self, failure: Exception) -> None:
        self._last_error = f"{type(failure).__name__}: {failure}"
        if isinstance(failure, PublisherUnavailable) and not self._outage:
            self._outage = True
            log.warning("NATS publisher: %s", failure)


def _describe(envelope: EventEnvelope) -> str:
    return (
        f"event {envelope.event_id} ({envelope.persistence_id} #{envelope.sequence_number}, "
        f"{envelope.event_type}, global position {envelope.global_position})"
    )
