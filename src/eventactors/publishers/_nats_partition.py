"""Publishing the pages of one projection partition, on the partition's own connection.

Order per entity: the messages of one subject are sent one at a time, each after the
previous one's ack, while different subjects of a page go out concurrently. Pipelining one
subject would be faster, but when a message in the middle is lost and the ones after it are
stored, its retry lands after them (JetStream numbers messages as they arrive).

A retry sends only what JetStream does not hold yet. The partition remembers the events of
the page in hand that were acknowledged (or dead-lettered), and forgets them once a page
without them comes, that is once the page's offset has committed. Re-sending them would
rely on the stream's duplicate window, and after an outage longer than that window they
would be stored a second time, behind later events of their entity. The one event of a
subject whose ack never came may be stored or not: before sending it again the partition
asks the stream for the subject's last message.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
from collections.abc import Sequence

import nats.errors
import nats.js.errors
from nats.js import JetStreamContext

from ..records import EventEnvelope
from ._nats_connection import TRANSIENT, Connection
from ._nats_format import MSG_ID, describe, headers_of, message_id, subject_of
from ._nats_options import Settings
from ._nats_types import Counters, PublisherUnavailable, PublishRejected

log = logging.getLogger("eventactors.publishers.nats")


class Partition:
    """One partition's pages: each returns once JetStream holds every event, or raises."""

    def __init__(self, connection: Connection, settings: Settings, counters: Counters) -> None:
        self.connection = connection
        self._settings = settings
        self._counters = counters
        self._done: set[str] = set()  # event ids of the page in hand that need no send
        self._unsure: dict[str, str] = {}  # subject -> the event id whose ack never came

    async def publish(self, page: Sequence[EventEnvelope], content_type: str) -> None:
        ids = {envelope.event_id for envelope in page}
        self._done &= ids  # a page that holds none of them means their offset committed
        self._unsure = {s: event_id for s, event_id in self._unsure.items() if event_id in ids}
        try:
            js = await self.connection.jetstream()
        except Exception as exc:
            self._counters.failed(exc)
            raise
        chains: dict[str, list[EventEnvelope]] = {}
        for envelope in page:
            if envelope.event_id not in self._done:
                subject = subject_of(self._settings.subject_prefix, envelope)
                chains.setdefault(subject, []).append(envelope)
        results = await asyncio.gather(
            *(self._publish_chain(js, s, chain, content_type) for s, chain in chains.items()),
            return_exceptions=True,
        )
        failures: list[Exception] = []
        for result in results:
            if isinstance(result, BaseException):
                if not isinstance(result, Exception):
                    raise result  # KeyboardInterrupt and the like
                failures.append(result)
        if not failures:
            self._counters.page_done()
            return
        outages = [f for f in failures if isinstance(f, PublisherUnavailable)]
        if outages:
            await self.connection.reset()  # the next attempt starts on a fresh connection
        first = (outages or failures)[0]
        self._counters.failed(first)
        raise first

    async def _publish_chain(
        self, js: JetStreamContext, subject: str, chain: list[EventEnvelope], content_type: str
    ) -> None:
        """One entity's events, each sent after the previous one was acknowledged."""
        unsure = self._unsure.pop(subject, None)
        for envelope in chain:
            headers = headers_of(envelope, content_type)
            if unsure == envelope.event_id and await self._stored_last(js, subject, envelope):
                self._done.add(envelope.event_id)
                self._counters.published += 1  # stored before the outage, never counted
                continue
            try:
                ack = await js.publish(
                    subject,
                    envelope.payload,
                    timeout=self._settings.ack_timeout,
                    stream=self._settings.stream,
                    headers=headers,
                )
            except TRANSIENT as exc:
                self._unsure[subject] = envelope.event_id
                raise self.connection.unavailable(exc) from exc
            except nats.errors.Error as exc:
                rejected = PublishRejected(
                    f"JetStream refused {describe(envelope)} on {subject!r}: "
                    f"{type(exc).__name__}: {exc}"
                )
                if self._settings.on_rejected == "fail":
                    raise rejected from exc
                await self._skip(envelope, rejected)
                continue
            self._done.add(envelope.event_id)
            if ack.duplicate:
                self._counters.duplicates += 1
            else:
                self._counters.published += 1

    async def _stored_last(
        self, js: JetStreamContext, subject: str, envelope: EventEnvelope
    ) -> bool:
        """Whether the subject's last message in the stream is this event."""
        try:
            last = await js.get_last_msg(self._settings.stream, subject)
        except nats.js.errors.NotFoundError:
            return False
        except TRANSIENT as exc:
            self._unsure[subject] = envelope.event_id
            raise self.connection.unavailable(exc) from exc
        except nats.errors.Error:
            return False  # cannot tell: send it, and let the duplicate window judge
        return (last.headers or {}).get(MSG_ID) == message_id(envelope)

    async def _skip(self, envelope: EventEnvelope, rejected: PublishRejected) -> None:
        callback = self._settings.dead_letter
        if callback is None:
            log.warning("NATS publisher skipped an event: %s", rejected)
        else:
            result = callback(envelope, rejected)
            if inspect.isawaitable(result):
                await result
        self._done.add(envelope.event_id)
        self._counters.skipped += 1
        self._counters.last_error = f"PublishRejected: {rejected}"
