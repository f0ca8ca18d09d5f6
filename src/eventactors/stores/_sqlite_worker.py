"""One thread per SQLite connection, fed by a queue: each connection has a single owner.

The writer variant is the group commit: it takes every job waiting in its queue (within the
limits of `group_commit`), runs them in one transaction with a savepoint around each (so one
job's failure does not fail the others), commits once, and only then answers all of them. A
reply therefore means the write is durable. The event loop keeps queueing while the writer
commits, so the next batch fills during the last one's fsync.
"""

from __future__ import annotations

import asyncio
import contextlib
import queue
import sqlite3
import threading
import time
from collections.abc import Callable
from typing import Any, TypeVar

from ..errors import ConcurrencyError, EventActorsError, StoreUnavailable, WriteRefused
from .group_commit import DEFAULT_MAX_BATCH, DEFAULT_MAX_BATCH_BYTES, WriteCounter

T = TypeVar("T")
# (function, its future, payload bytes, events appended or -1 if the job is not an append)
Job = tuple[Callable[[sqlite3.Connection], Any], asyncio.Future[Any], int, int]
Outcome = tuple[asyncio.Future[Any], bool, Any]
# Writes a batch's appends together: (ok, result or error) for each, in order.
AppendWriter = Callable[[sqlite3.Connection, list[Any], str], list[tuple[bool, Any]]]

_STOP = object()


class SQLiteWorker:
    """Runs functions against its own connection on its own thread."""

    def __init__(
        self,
        name: str,
        database: str,
        connect: Callable[[], sqlite3.Connection],
        *,
        transactional: bool,
        max_batch: int = DEFAULT_MAX_BATCH,
        max_batch_bytes: int = DEFAULT_MAX_BATCH_BYTES,
        flush_window: float = 0.0,
        counter: WriteCounter | None = None,
        write_appends: AppendWriter | None = None,
        busy_timeout: float | None = None,
    ) -> None:
        self._write_appends = write_appends
        self.database = database
        self._busy_timeout = busy_timeout  # named in the error of a write that waited it out
        self._connect = connect
        self._transactional = transactional
        self._max_batch = max_batch
        self._max_batch_bytes = max_batch_bytes
        self._flush_window = flush_window
        self._jobs: queue.SimpleQueue[Job | object] = queue.SimpleQueue()
        self._carried: Job | None = None  # taken from the queue, but it did not fit the batch
        self._connection: sqlite3.Connection | None = None
        self.batches = 0
        self.jobs_done = 0
        self.appends = counter if counter is not None else WriteCounter()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    async def submit(
        self, job: Callable[[sqlite3.Connection], T], *, size: int = 0, events: int = -1
    ) -> T:
        """Queues `job`; `size` (payload bytes) and `events` (appended, or -1 when the job is
        not an append) feed the batch limits and the write statistics."""
        future: asyncio.Future[T] = asyncio.get_running_loop().create_future()
        self._jobs.put((job, future, size, events))
        return await future

    async def stop(self) -> None:
        self._jobs.put(_STOP)
        await asyncio.to_thread(self._thread.join)

    def _run(self) -> None:
        while True:
            first = self._carried or self._jobs.get()
            self._carried = None
            if first is _STOP:
                break
            batch: list[Job] = [first]  # type: ignore[list-item]
            stop_after = self._transactional and self._gather(batch)
            try:
                outcomes = self._execute(batch)
            except BaseException as exc:  # never leave a caller waiting on a dead thread
                error = StoreUnavailable(f"SQLite {self.database}: writer failed: {exc!r}")
                outcomes = [(future, False, error) for _, future, *_ in batch]
            self.batches += 1
            self.jobs_done += len(batch)
            _answer(outcomes)
            if stop_after:
                break
        if self._connection is not None:
            self._connection.close()

    def _gather(self, batch: list[Job]) -> bool:
        """Adds queued jobs to `batch` within the limits, waiting up to the flush window for
        them; True when the stop signal was met."""
        size = batch[0][2]
        wait = self._flush_window and batch[0][3] >= 0  # only appends wait for company
        deadline = time.monotonic() + self._flush_window if wait else 0.0
        while len(batch) < self._max_batch:
            try:
                if deadline:
                    item = self._jobs.get(timeout=max(0.0, deadline - time.monotonic()))
                else:
                    item = self._jobs.get_nowait()
            except queue.Empty:
                return False
            if item is _STOP:
                return True
            job: Job = item  # type: ignore[assignment]
            size += job[2]
            if size > self._max_batch_bytes:
                self._carried = job
                return False
            batch.append(job)
        return False

    def _execute(self, batch: list[Job]) -> list[Outcome]:
        try:
            connection = self._open()
        except Exception as exc:
            error = translate_error(exc, self.database, self._busy_timeout)
            return [(future, False, error) for _, future, *_ in batch]
        if not self._transactional:
            return [self._call(job, future, connection) for job, future, *_ in batch]
        outcomes: list[Outcome] = []
        appends: list[Job] = []  # a run of consecutive appends, written together
        try:
            connection.execute("BEGIN IMMEDIATE")
            for job in batch:
                if job[3] >= 0 and self._write_appends is not None:
                    appends.append(job)
                    continue
                outcomes.extend(self._run_appends(connection, appends))
                appends = []
                connection.execute("SAVEPOINT job")
                outcome = self._call(job[0], job[1], connection)
                if outcome[1]:
                    connection.execute("RELEASE job")
                else:
                    undo(connection, "job", outcome[2], self.database)
                outcomes.append(outcome)
            outcomes.extend(self._run_appends(connection, appends))
            connection.execute("COMMIT")
        except Exception as exc:
            error = translate_error(exc, self.database, self._busy_timeout)
            with contextlib.suppress(sqlite3.Error):  # a failed ROLLBACK must not hide `exc`
                if connection.in_transaction:
                    connection.execute("ROLLBACK")
            self._count(batch, [])
            return [(future, False, error) for _, future, *_ in batch]
        self._count(batch, outcomes)
        return outcomes

    def _call(
        self,
        job: Callable[[sqlite3.Connection], Any],
        future: asyncio.Future[Any],
        connection: sqlite3.Connection,
    ) -> Outcome:
        try:
            return (future, True, job(connection))
        except Exception as exc:  # handed back to the awaiting caller
            return (future, False, translate_error(exc, self.database, self._busy_timeout))

    def _run_appends(self, connection: sqlite3.Connection, appends: list[Job]) -> list[Outcome]:
        if not appends:
            return []
        assert self._write_appends is not None
        written = self._write_appends(connection, [job[0] for job in appends], self.database)
        return [(job[1], ok, value) for job, (ok, value) in zip(appends, written, strict=True)]

    def _count(self, batch: list[Job], committed: list[Outcome]) -> None:
        """Appends are the jobs with an event count; events count only if written."""
        appends = [(job[3], index) for index, job in enumerate(batch) if job[3] >= 0]
        if not appends:
            return
        written = sum(events for events, index in appends if committed and committed[index][1])
        self.appends.count(1 if committed else 0, len(appends), written)

    def _open(self) -> sqlite3.Connection:
        if self._connection is None:
            self._connection = self._connect()
        return self._connection


def _answer(outcomes: list[Outcome]) -> None:
    """Settles futures in batch order, loop by loop, with one callback per loop."""
    by_loop: dict[asyncio.AbstractEventLoop, list[Outcome]] = {}
    for outcome in outcomes:
        by_loop.setdefault(outcome[0].get_loop(), []).append(outcome)
    for loop, settled in by_loop.items():
        with contextlib.suppress(RuntimeError):  # the loop closed: nobody is waiting
            loop.call_soon_threadsafe(_settle, settled)


def _settle(outcomes: list[Outcome]) -> None:
    for future, ok, value in outcomes:
        if future.done():
            continue
        if ok:
            future.set_result(value)
        else:
            future.set_exception(value)


class HandlerFailed(Exception):
    """Carries a projection handler's own exception through the writer untranslated: an
    error in the handler's SQL is the handler's failure, not an unavailable store."""

    def __init__(self, error: Exception) -> None:
        super().__init__(str(error))
        self.error = error


def undo(connection: sqlite3.Connection, savepoint: str, error: Exception, database: str) -> None:
    """Rolls a failed step back to its savepoint and carries on with the transaction.

    A full disk or an I/O error can make SQLite roll the whole transaction back by itself.
    Then no savepoint is left and nothing of the batch will be written: every job in it
    fails, with the error that did it, not SQLite's "no such savepoint".
    """
    if connection.in_transaction:
        connection.execute(f"ROLLBACK TO {savepoint}")
        connection.execute(f"RELEASE {savepoint}")
        return
    cause: BaseException = error.error if isinstance(error, HandlerFailed) else error
    if isinstance(cause, EventActorsError) and isinstance(cause.__cause__, sqlite3.Error):
        cause = cause.__cause__
    detail = (
        describe(cause) if isinstance(cause, sqlite3.Error) else f"{type(cause).__name__}: {cause}"
    )
    raise StoreUnavailable(
        f"SQLite {database}: {detail}; SQLite rolled the whole transaction back, so nothing "
        "of it was written"
    ) from cause


def describe(exc: sqlite3.Error, busy_timeout: float | None = None) -> str:
    """SQLite's message, and what it means for the caller when a fault caused it."""
    code = getattr(exc, "sqlite_errorcode", None)
    primary = code & 0xFF if isinstance(code, int) else None
    if primary == sqlite3.SQLITE_BUSY:
        waited = "the busy timeout" if busy_timeout is None else f"busy_timeout={busy_timeout:g}s"
        return (
            f"{exc}: another connection, perhaps another process, held the lock for longer "
            f"than {waited}; this was not done, and can be once the lock is released"
        )
    if primary == sqlite3.SQLITE_FULL:
        return (
            f"{exc}: the file system (or the process's file size limit) left no room for the "
            "write, so nothing of it was committed; writes succeed again once there is room"
        )
    if primary == sqlite3.SQLITE_IOERR:
        return (
            f"{exc} ({exc.sqlite_errorname}): the operating system failed a read or write of "
            "the file: a full disk, a file size limit, or a failing device"
        )
    return str(exc)


def translate_error(exc: Exception, database: str, busy_timeout: float | None = None) -> Exception:
    """Maps sqlite3 errors onto the framework's: conflicts and an unusable database, whose
    message says what a fault (a lock held too long, a full disk) means for the caller."""
    if isinstance(exc, EventActorsError) or not isinstance(exc, sqlite3.Error):
        return exc
    if isinstance(exc, sqlite3.IntegrityError) and "UNIQUE constraint failed" in str(exc):
        error: Exception = ConcurrencyError(f"conflicting write: {exc}")
    elif isinstance(exc, sqlite3.IntegrityError):  # a CHECK, NOT NULL or a trigger's RAISE
        error = WriteRefused(f"SQLite {database} refused the write: {exc}")
    else:
        error = StoreUnavailable(f"SQLite {database}: {describe(exc, busy_timeout)}")
    error.__cause__ = exc
    return error
