"""Group commit on the event loop: appends queue while a batch is written, the next batch
carries all of them.

One flusher task runs while there is work, so an idle store holds no task. Every append gets
its own outcome: the batch writer returns one result or exception per append, so a conflict
in one append does not fail the others. The callers' replies are sent only after the batch's
transaction has committed.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from ..errors import StoreUnavailable


class Pending:
    """One queued append: what the writer needs, its size in bytes, and where the answer goes."""

    __slots__ = ("future", "request", "size")

    def __init__(self, request: Any, size: int, future: asyncio.Future[Any]) -> None:
        self.request = request
        self.size = size
        self.future = future


# Writes a batch in one transaction; returns each append's result or exception, in order.
BatchWriter = Callable[[Sequence[Pending]], Awaitable[list[Any]]]


class GroupCommitQueue:
    def __init__(
        self, write_batch: BatchWriter, *, max_batch: int, max_batch_bytes: int, flush_window: float
    ) -> None:
        self._write_batch = write_batch
        self._max_batch = max_batch
        self._max_batch_bytes = max_batch_bytes
        self._flush_window = flush_window
        self._queue: deque[Pending] = deque()
        self._flusher: asyncio.Task[None] | None = None

    async def submit(self, request: Any, *, size: int) -> Any:
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._queue.append(Pending(request, size, future))
        if self._flusher is None:
            self._flusher = asyncio.get_running_loop().create_task(
                self._flush(), name="eventactors group commit"
            )
        # A caller that gives up cancels only its wait: the append is still written.
        return await future

    async def drain(self) -> None:
        """Waits until every queued append has been written (for close)."""
        while (flusher := self._flusher) is not None:
            try:
                await asyncio.shield(flusher)
            except asyncio.CancelledError:
                if not flusher.cancelled():  # our own caller is being cancelled
                    raise

    async def _flush(self) -> None:
        try:
            if self._flush_window:
                await asyncio.sleep(self._flush_window)
            while self._queue:
                batch = self._take()
                try:
                    outcomes = await self._write_batch(batch)
                except BaseException as exc:
                    error: BaseException = exc
                    if not isinstance(exc, Exception):  # the flusher itself was cancelled
                        error = StoreUnavailable(
                            f"the write was interrupted ({type(exc).__name__}); whether it "
                            "was committed is unknown until the stream is read again"
                        )
                    for pending in batch:
                        if not pending.future.done():
                            pending.future.set_exception(error)
                    if not isinstance(exc, Exception):
                        raise
                    continue
                for pending, outcome in zip(batch, outcomes, strict=True):
                    if pending.future.done():
                        continue
                    if isinstance(outcome, BaseException):
                        pending.future.set_exception(outcome)
                    else:
                        pending.future.set_result(outcome)
        finally:
            self._flusher = None
            for pending in self._queue:  # only left if the flusher itself was cancelled
                if not pending.future.done():
                    pending.future.set_exception(
                        StoreUnavailable("the store's writer stopped before this write")
                    )
            self._queue.clear()

    def _take(self) -> list[Pending]:
        queue = self._queue
        batch = [queue.popleft()]
        size = batch[0].size
        while queue and len(batch) < self._max_batch:
            size += queue[0].size
            if size > self._max_batch_bytes:
                break
            batch.append(queue.popleft())
        return batch
