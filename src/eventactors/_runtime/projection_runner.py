"""The projection runner: one task per projection, following the log from its offset.

Each turn reads the head position, then a page after the offset; the page holds every
matching event up to that head (the stores never let a reader skip), so when it is short the
offset may advance to the head even if the filters matched nothing: a filtered projection
does not re-scan what it ignores.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any

from .._slices import slice_of
from ..errors import SerializationError, StoreUnavailable
from ..projections import (
    FailurePolicy,
    ProjectionFailed,
    ProjectionState,
    ProjectionStatus,
)
from ..records import EventEnvelope
from ..stores._notify import wait_for_events_unless
from ..stores.protocols import OffsetStore, Store
from .recorder import FAILED, HANDLED, SKIPPED, STOPPED, Recorder

log = logging.getLogger("eventactors.projections")

Progress = Callable[[int, int], Any]
MAX_STORE_BACKOFF = 5.0
#: The latest batches whose sizes `statistics()` reports.
BATCH_WINDOW = 100


@dataclass(slots=True)
class ProjectionSpec:
    name: str
    handler: Callable[..., Any]
    from_start: bool
    batch_size: int
    policy: FailurePolicy
    offset_store: OffsetStore
    entity_types: tuple[str, ...] | None
    event_types: tuple[str, ...] | None
    tags: tuple[str, ...] | None
    batched: bool
    transactional: bool
    poll_interval: float
    reset: Callable[..., Any] | None
    #: A partition of a projection sees only the events of entities in these slices.
    slices: range | None = None


class _Stopped(Exception):
    """A stop arrived while the runner was waiting for the store to come back."""


class ProjectionRunner:
    def __init__(self, spec: ProjectionSpec, store: Store, recorder: Recorder) -> None:
        self.spec = spec
        self._store = store
        self._recorder = recorder
        self.state = ProjectionState.STOPPED
        self.position = 0
        self.head = 0
        self.events_handled = 0
        self.last_error: str | None = None
        #: Events in each of the latest batches handed to the handler (a stopped one aside).
        self.batch_sizes: deque[int] = deque(maxlen=BATCH_WINDOW)
        self.progress: Progress | None = None
        self._task: asyncio.Task[None] | None = None
        self._stopping = asyncio.Event()
        self._advanced = asyncio.Event()

    # -- control --------------------------------------------------------------------------

    @property
    def is_running(self) -> bool:
        return self._task is not None and not self._task.done()

    def start(self) -> None:
        if self.is_running:
            return
        self._stopping = asyncio.Event()
        self.state = ProjectionState.RUNNING
        self.last_error = None
        self._task = asyncio.get_running_loop().create_task(
            self._run(), name=f"projection {self.spec.name}"
        )

    async def stop(self) -> None:
        """Finishes the page in hand, commits its offset, and stops."""
        task = self._task
        if task is None:
            return
        self._stopping.set()
        try:
            await asyncio.wait({task})  # raises only if our caller is cancelled
        except asyncio.CancelledError:
            task.cancel()  # the caller gave up: stop at once rather than finish the page
            raise
        self._task = None
        if self.state is ProjectionState.RUNNING:
            self.state = ProjectionState.STOPPED

    async def wait_until(self, position: int) -> None:
        """Returns once the committed offset reaches `position`, or the projection stops."""
        while self.position < position and self.is_running:
            advanced = self._advanced
            await advanced.wait()

    def status(self) -> ProjectionStatus:
        return ProjectionStatus(
            name=self.spec.name,
            state=self.state,
            position=self.position,
            head=max(self.head, self.position),
            lag=max(0, self.head - self.position),
            events_handled=self.events_handled,
            last_error=self.last_error,
        )

    # -- the loop -------------------------------------------------------------------------

    async def _run(self) -> None:
        spec = self.spec
        try:
            stored = await self._with_store_retry(lambda: spec.offset_store.get_offset(spec.name))
            self.position = stored if stored is not None else 0
            self._signal_advance()  # waiters compare against the loaded offset
            while not self._stopping.is_set():
                if not await self._turn():
                    await wait_for_events_unless(
                        self._store, self.position, spec.poll_interval, self._stopping
                    )
        except _Stopped:
            pass  # stopped while waiting on the store: nothing in hand to finish
        except ProjectionFailed as failure:
            self.state = ProjectionState.FAILED
            self.last_error = str(failure)
            log.error("projection %s failed: %s", spec.name, failure)
        except SerializationError as error:  # a corrupt row in the log: no page to hand on
            self.state = ProjectionState.FAILED
            self.last_error = f"SerializationError: {error}"
            log.error("projection %s failed reading the log: %s", spec.name, error)
        finally:
            self._signal_advance()

    async def _turn(self) -> bool:
        """Handles one page; False when there was nothing to do."""
        spec = self.spec
        head = await self._with_store_retry(self._store.head_position)
        self.head = head
        page = await self._with_store_retry(
            lambda: self._store.read_all(
                self.position,
                spec.batch_size,
                entity_types=spec.entity_types,
                event_types=spec.event_types,
                tags=spec.tags,
            )
        )
        if not page and head <= self.position:
            return False
        target = page[-1].global_position if page else head
        if len(page) < spec.batch_size:
            target = max(target, head)  # nothing else matches up to the head
        if spec.slices is not None:
            page = [event for event in page if slice_of(event.persistence_id) in spec.slices]
        if page:
            await self._deliver(page, target)
        else:
            await self._commit(target)
        return True

    # -- delivery and commits -------------------------------------------------------------

    async def _deliver(self, page: list[EventEnvelope], target: int) -> None:
        """One batch: a page handed to the handler, then its offset committed. A handled one
        clears the error of an outage or of retries before it; a stop while the store is away
        (or the runner's cancellation) ends it as stopped, not failed."""
        hooks = self._recorder.hooks
        span = None if hooks is None else hooks.batch_started(self.spec.name, page)
        outcome, error = FAILED, None
        try:
            outcome = HANDLED if await self._deliver_page(page, target) else SKIPPED
        except (_Stopped, asyncio.CancelledError):
            outcome = STOPPED
            raise
        except BaseException as exc:
            error = exc
            raise
        finally:
            if outcome != STOPPED:
                self.batch_sizes.append(len(page))
            if outcome == HANDLED:
                self.last_error = None
            if hooks is not None:
                hooks.batch_ended(span, self.spec.name, len(page), outcome, error)

    async def _deliver_page(self, page: list[EventEnvelope], target: int) -> bool:
        """False when the policy skipped an event of the page."""
        if self.spec.transactional:
            return await self._deliver_in_transaction(page, target)
        handled = True
        if self.spec.batched:
            handled = await self._attempt(lambda: self.spec.handler(page), page)
            if handled:
                self.events_handled += len(page)
        else:
            for index, envelope in enumerate(page):
                try:
                    if await self._attempt(partial(self.spec.handler, envelope), [envelope]):
                        self.events_handled += 1
                    else:
                        handled = False
                except ProjectionFailed:
                    if index:  # keep what was handled: commit up to the event before
                        await self._commit(page[index - 1].global_position)
                    raise
        await self._commit(target)
        return handled

    async def _deliver_in_transaction(self, page: list[EventEnvelope], target: int) -> bool:
        spec = self.spec
        store: Any = self._store

        async def handle() -> Any:
            return await store.commit_with_offset(spec.name, target, self._work(page))

        if await self._attempt(handle, page):
            self.events_handled += len(page)
            self._advance(target)
            return True
        await self._commit(target)  # skipped: the offset moves on alone
        return False

    def _work(self, page: list[EventEnvelope]) -> Callable[[Any], Any]:
        handler = self.spec.handler
        if inspect.iscoroutinefunction(handler):

            async def async_work(connection: Any) -> Any:
                return await handler(page, connection)

            return async_work

        def work(connection: Any) -> Any:
            return handler(page, connection)

        return work

    async def _attempt(self, call: Callable[[], Any], envelopes: Sequence[EventEnvelope]) -> bool:
        """Runs `call` under the policy: True when handled, False when skipped."""
        policy = self.spec.policy
        failures = 0
        delay = policy.backoff
        store_delay = 0.05
        while True:
            try:
                result = call()
                if inspect.isawaitable(result):
                    await result
                return True
            except StoreUnavailable as exc:  # the store's fault, not the handler's: wait it out
                self.last_error = f"StoreUnavailable: {exc}"
                await self._pause(store_delay)
                store_delay = min(store_delay * 2, MAX_STORE_BACKOFF)
                continue
            except Exception as exc:
                self.last_error = f"{type(exc).__name__}: {exc}"
                if failures < policy.retries:
                    failures += 1
                    await asyncio.sleep(delay)
                    delay *= 2
                    continue
                if not policy.skip:
                    single = envelopes[0] if len(envelopes) == 1 else None
                    raise ProjectionFailed(single, exc) from exc
                for envelope in envelopes:
                    await self._dead_letter(envelope, exc)
                return False

    async def _dead_letter(self, envelope: EventEnvelope, error: BaseException) -> None:
        callback = self.spec.policy.dead_letter
        if callback is None:
            log.warning("projection %s skipped %s: %s", self.spec.name, envelope, error)
            return
        result = callback(envelope, error)
        if inspect.isawaitable(result):
            await result

    async def _commit(self, position: int) -> None:
        await self._with_store_retry(
            lambda: self.spec.offset_store.save_offset(self.spec.name, position)
        )
        self._advance(position)

    def _advance(self, position: int) -> None:
        self.position = position
        if self.progress is not None:
            self.progress(position, self.head)
        self._signal_advance()

    def _signal_advance(self) -> None:
        advanced, self._advanced = self._advanced, asyncio.Event()
        advanced.set()

    async def _with_store_retry(self, call: Callable[[], Awaitable[Any]]) -> Any:
        """Store errors never stop a projection: retried with backoff, shown in the status
        until the store answers again."""
        delay = 0.05
        shown = None
        while True:
            try:
                result = await call()
            except StoreUnavailable as exc:
                shown = self.last_error = f"StoreUnavailable: {exc}"
                log.warning("projection %s: store unavailable, retrying: %s", self.spec.name, exc)
                await self._pause(delay)
                delay = min(delay * 2, MAX_STORE_BACKOFF)
                continue
            if shown is not None and self.last_error == shown:
                self.last_error = None
            return result

    async def _pause(self, seconds: float) -> None:
        """Sleeps before a store retry, unless a stop comes first: then there is nothing in
        hand to finish (the page was not handled, or its offset not committed), so it ends."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stopping.wait(), seconds)
        if self._stopping.is_set():
            raise _Stopped
