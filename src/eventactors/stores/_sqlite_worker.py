"""One thread per SQLite connection, fed by a queue: each connection has a single owner.

The writer variant is the group commit: it takes every job waiting in its queue, runs them in
one transaction with a savepoint around each (so one job's failure does not fail the others),
commits once, and only then answers all of them. A reply therefore means the write is durable.
"""

from __future__ import annotations

import asyncio
import contextlib
import queue
import sqlite3
import threading
from collections.abc import Callable
from typing import Any, TypeVar

from ..errors import ConcurrencyError, EventActorsError, StoreUnavailable

T = TypeVar("T")
Job = tuple[Callable[[sqlite3.Connection], Any], asyncio.Future[Any], asyncio.AbstractEventLoop]
Outcome = tuple[asyncio.Future[Any], bool, Any]

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
        max_batch: int = 1000,
    ) -> None:
        self.database = database
        self._connect = connect
        self._transactional = transactional
        self._max_batch = max_batch
        self._jobs: queue.SimpleQueue[Job | object] = queue.SimpleQueue()
        self._connection: sqlite3.Connection | None = None
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()
        self.batches = 0
        self.jobs_done = 0

    async def submit(self, job: Callable[[sqlite3.Connection], T]) -> T:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[T] = loop.create_future()
        self._jobs.put((job, future, loop))
        return await future

    async def stop(self) -> None:
        self._jobs.put(_STOP)
        await asyncio.to_thread(self._thread.join)

    def _run(self) -> None:
        while True:
            first = self._jobs.get()
            if first is _STOP:
                break
            batch: list[Job] = [first]  # type: ignore[list-item]
            stop_after = False
            if self._transactional:
                while len(batch) < self._max_batch:
                    try:
                        item = self._jobs.get_nowait()
                    except queue.Empty:
                        break
                    if item is _STOP:
                        stop_after = True
                        break
                    batch.append(item)  # type: ignore[arg-type]
            outcomes = self._execute(batch)
            self.batches += 1
            self.jobs_done += len(batch)
            _answer(outcomes)
            if stop_after:
                break
        if self._connection is not None:
            self._connection.close()

    def _execute(self, batch: list[Job]) -> list[Outcome]:
        try:
            connection = self._open()
        except Exception as exc:
            error = translate_error(exc, self.database)
            return [(future, False, error) for _, future, _ in batch]
        if not self._transactional:
            return [_call(job, future, connection, self.database) for job, future, _ in batch]
        outcomes: list[Outcome] = []
        try:
            connection.execute("BEGIN IMMEDIATE")
            for job, future, _ in batch:
                connection.execute("SAVEPOINT job")
                outcome = _call(job, future, connection, self.database)
                if not outcome[1]:
                    connection.execute("ROLLBACK TO job")
                connection.execute("RELEASE job")
                outcomes.append(outcome)
            connection.execute("COMMIT")
        except Exception as exc:
            if connection.in_transaction:
                connection.execute("ROLLBACK")
            error = translate_error(exc, self.database)
            return [(future, False, error) for _, future, _ in batch]
        return outcomes

    def _open(self) -> sqlite3.Connection:
        if self._connection is None:
            self._connection = self._connect()
        return self._connection


def _call(
    job: Callable[[sqlite3.Connection], Any],
    future: asyncio.Future[Any],
    connection: sqlite3.Connection,
    database: str,
) -> Outcome:
    try:
        return (future, True, job(connection))
    except Exception as exc:  # handed back to the awaiting caller
        return (future, False, translate_error(exc, database))


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


def translate_error(exc: Exception, database: str) -> Exception:
    """Maps sqlite3 errors onto the framework's: conflicts and an unusable database."""
    if isinstance(exc, EventActorsError) or not isinstance(exc, sqlite3.Error):
        return exc
    if isinstance(exc, sqlite3.IntegrityError):
        error: Exception = ConcurrencyError(f"conflicting write: {exc}")
    else:
        error = StoreUnavailable(f"SQLite {database}: {exc}")
    error.__cause__ = exc
    return error
