"""Forwarding every persisted event to NATS JetStream, as a projection with a stored offset.

This module is the publisher's one public import path.

The publisher is a batched projection: a page of events is published, every message is
acknowledged by JetStream (its PubAck), and only then does the runner commit the page's
offset. A crash before that commit re-publishes the page after the restart: at-least-once.
Each message carries `Nats-Msg-Id: <event_id>`, so within the stream's duplicate window
JetStream drops those re-publications, and the stream holds each event once. A retry in the
same process (after an outage) sends only what JetStream has not acknowledged, however long
the outage lasted. Each entity's events go out in order (see `_nats_partition`).

NATS being down is not the handler's fault: `PublisherUnavailable` is a `StoreUnavailable`,
which the projection runner retries with capped backoff for as long as it lasts, and which
a stop interrupts. An event JetStream refuses outright (`PublishRejected`, such as a message
over the server's size limit) stops the projection, or with `on_rejected="skip"` goes to
`dead_letter` while the rest of the page is published. The projection's own policy can only
retry or fail: skipping there would commit a whole page, events JetStream never saw included.
"""

from __future__ import annotations

import contextlib
from bisect import bisect_right
from collections.abc import Iterable, Mapping, Sequence
from types import TracebackType
from typing import Any

from .._slices import slice_of, slice_ranges
from ..engine import Engine
from ..errors import EventActorsError
from ..projections import FailurePolicy, retry
from ..records import EventEnvelope
from ..stores.protocols import OffsetStore
from ._nats_connection import Connection
from ._nats_format import decode_token, encode_token
from ._nats_options import (
    OnRejected,
    RejectedCallback,
    Settings,
    check_connect_options,
    check_prefix,
    check_rejected,
    check_seconds,
    check_servers,
    check_stream_name,
)
from ._nats_partition import Partition
from ._nats_types import (
    Counters,
    PublisherStatistics,
    PublisherUnavailable,
    PublishRejected,
    StreamMismatch,
)

__all__ = [
    "JetStreamPublisher",
    "PublishRejected",
    "PublisherStatistics",
    "PublisherUnavailable",
    "StreamMismatch",
    "decode_token",
    "encode_token",
]


class JetStreamPublisher:
    """Publishes the events of an engine to a JetStream stream, one subject per entity:
    `<subject_prefix>.<entity_type>.<entity_id>`, each token made by `encode_token`.

    Nothing connects until the first page (or `connect()`), so an engine starts and takes
    commands while NATS is down; the projection's status then shows the error and its lag.
    Each partition of a projection has its own connection. Use the publisher as an async
    context manager, or call `close()`: that removes its projections (committing the page in
    hand) and closes the connections.
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
        on_rejected: OnRejected = "fail",
        dead_letter: RejectedCallback | None = None,
    ) -> None:
        """`duplicate_window` (seconds) applies to a stream this publisher creates: a crash
        recovered later than that may store some events twice. `connect_options` go to
        `nats.connect` (credentials, TLS) and override the publisher's defaults.

        `on_rejected` is what an event JetStream refuses does: `"fail"` stops the projection
        (after the policy's retries) with the error in its status; `"skip"` calls
        `dead_letter(envelope, error)` (or logs a warning) and publishes the rest."""
        on_rejected, dead_letter = check_rejected(on_rejected, dead_letter)
        self._settings = Settings(
            servers=check_servers(servers),
            stream=check_stream_name(stream),
            subject_prefix=check_prefix(subject_prefix),
            create_stream=bool(create_stream),
            duplicate_window=check_seconds("duplicate_window", duplicate_window),
            ack_timeout=check_seconds("ack_timeout", ack_timeout),
            connect_timeout=check_seconds("connect_timeout", connect_timeout),
            connect_options=check_connect_options(connect_options),
            on_rejected=on_rejected,
            dead_letter=dead_letter,
        )
        self.servers = list(self._settings.servers)
        self.stream = self._settings.stream
        self.subject_prefix = self._settings.subject_prefix
        self._counters = Counters()
        self._connections: list[Connection] = []
        self._spare: Connection | None = None  # made by connect(), for the first partition
        self._attached: list[tuple[Engine, str]] = []
        self._closed = False

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
        of the entities concurrently, each with its own offset and its own connection.
        `policy` (default: three retries, then stop) applies to the errors that are not
        unavailability, which is always waited out; it may not skip (ValueError): pass
        `on_rejected="skip"` to the publisher instead."""
        if self._closed:
            raise EventActorsError("the publisher is closed; make a new one")
        if not isinstance(engine, Engine):
            raise TypeError(f"attach needs an eventactors Engine, got {engine!r}")
        if engine.cluster is not None:
            raise ValueError(
                "the NATS publisher runs in the engine's own process; in cluster mode, attach "
                "it to an engine without cluster= on the same store"
            )
        if policy is not None and policy.skip:
            raise ValueError(
                "the NATS publisher's policy cannot skip: the runner would drop the whole "
                "page, events JetStream never received included; use retry() or fail(), and "
                "JetStreamPublisher(on_rejected='skip', dead_letter=...) to skip only an "
                "event JetStream refuses"
            )
        content_type = (
            "application/json" if engine.serializer.is_text else "application/octet-stream"
        )
        starts = [part.start for part in slice_ranges(partitions)]  # checks partitions
        members = [
            Partition(self._new_connection(), self._settings, self._counters) for _ in starts
        ]

        async def publish(page: list[EventEnvelope]) -> None:
            # A page comes from one partition, and its events from that partition's slices.
            member = members[bisect_right(starts, slice_of(page[0].persistence_id)) - 1]
            await member.publish(page, content_type)

        try:
            await engine.add_projection(
                name, publish, batched=True, from_start=from_start, batch_size=batch_size,
                policy=policy if policy is not None else retry(3, backoff=0.5),
                offset_store=offset_store, entity_types=entity_types, event_types=event_types,
                tags=tags, poll_interval=poll_interval, partitions=partitions,
            )  # fmt: skip
        except BaseException:
            for member in members:  # never connected: nothing to close
                self._connections.remove(member.connection)
            raise
        self._attached.append((engine, name))

    def _new_connection(self) -> Connection:
        connection, self._spare = self._spare, None
        if connection is None:
            connection = Connection(self._settings, self._counters)
        self._connections.append(connection)
        return connection

    def subject_for(self, entity_type: str, entity_id: str) -> str:
        """The subject an entity's events are published on."""
        return f"{self.subject_prefix}.{encode_token(entity_type)}.{encode_token(entity_id)}"

    def statistics(self) -> PublisherStatistics:
        counters = self._counters
        used = [c for c in self._connections if c.used]
        if self._spare is not None and self._spare.used:
            used.append(self._spare)
        return PublisherStatistics(
            published=counters.published,
            duplicates=counters.duplicates,
            skipped=counters.skipped,
            pages=counters.pages,
            connections=counters.connections,
            connected=bool(used) and all(c.connected for c in used),
            last_error=counters.last_error,
        )

    # -- connections ----------------------------------------------------------------------

    async def connect(self) -> None:
        """Connects and checks (or creates) the stream now, instead of on the first page:
        `PublisherUnavailable` if NATS cannot be reached, `StreamMismatch` if the stream
        does not fit."""
        if self._closed:
            raise PublisherUnavailable("the NATS publisher is closed")
        targets = self._connections
        if not targets:
            if self._spare is None:
                self._spare = Connection(self._settings, self._counters)
            targets = [self._spare]
        try:
            for connection in targets:
                await connection.jetstream()
        except Exception as exc:
            self._counters.failed(exc)
            raise

    async def close(self) -> None:
        """Removes the projections this publisher added (each finishes and commits the page
        in hand), then closes the NATS connections."""
        if self._closed:
            return
        for engine, name in self._attached:
            with contextlib.suppress(KeyError):
                await engine.remove_projection(name)
        self._attached.clear()
        self._closed = True
        spare = [self._spare] if self._spare is not None else []
        for connection in [*self._connections, *spare]:
            await connection.close()

    async def __aenter__(self) -> JetStreamPublisher:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.close()
