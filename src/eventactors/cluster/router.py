"""The sending side of cluster mode: which shard an entity lives on, and how commands get there.

Per shard, a pump sends the commands waiting for it as one numbered batch, with a few batches
out at a time: under load a batch carries many commands per Ray call (adaptive batching, as
with group commit). The shard runs batches in their numbers' order (see `Sequencer`), so
commands from this process to one entity keep their order. A batch's call returns its
commands' outcomes; those still running come back later through `collect`.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from typing import Any

from .._ids import uuid7
from .._slices import shard_of
from ..errors import EventActorsError, ShardUnavailable
from ..records import EventEnvelope
from .app_spec import AppSpec
from .ray_actors import ensure_ray, is_actor_error, shard_actor
from .wire import Message, SendMessage, cannot_travel, pack, reply_from_wire

Waiting = tuple[asyncio.Future[Any], bool]  # the caller's future; whether it awaits a Reply

#: Batches out to one shard at a time; more commands wait for the next batch.
MAX_BATCHES_IN_FLIGHT = 1


class ShardRouter:
    def __init__(
        self,
        spec: AppSpec,
        decode: Callable[[EventEnvelope], Any],
        *,
        local_shard: int | None = None,
    ) -> None:
        self.spec = spec
        self.num_shards = spec.cluster.num_shards
        self.local_shard = local_shard
        self._decode = decode
        self._handles: dict[int, Any] = {}
        self._outboxes: dict[int, list[tuple[Message, asyncio.Future[Any]]]] = {}
        self._pumps: dict[int, asyncio.Task[None]] = {}
        self._in_flight: dict[int, set[asyncio.Task[None]]] = {}
        self._collectors: set[asyncio.Task[None]] = set()
        self._sender = uuid7()  # names this process's batches to the shards (see Sequencer)
        self._next_number: dict[int, int] = {}
        self._unreturned: dict[int, set[int]] = {}  # batch numbers whose call has not returned

    async def connect(self, *, all_shards: bool) -> None:
        """Joins Ray; with `all_shards`, creates every shard host now and checks that the
        ones that already existed run the same application."""
        ensure_ray(self.spec.cluster)
        if not all_shards:
            return
        handles = [self.handle(shard) for shard in range(self.num_shards)]
        fingerprints = await asyncio.gather(*(handle.fingerprint.remote() for handle in handles))
        for shard, fingerprint in enumerate(fingerprints):
            if tuple(map(tuple, fingerprint)) != self.spec.fingerprint:
                raise EventActorsError(
                    f"shard {shard} in Ray namespace {self.spec.cluster.namespace!r} runs another "
                    f"application ({list(fingerprint)}); this engine registers "
                    f"{list(self.spec.fingerprint)}. Use another namespace, or stop that cluster."
                )

    def shard_for(self, persistence_id: str) -> int:
        return shard_of(persistence_id, self.num_shards)

    def is_local(self, persistence_id: str) -> bool:
        return self.local_shard is not None and self.shard_for(persistence_id) == self.local_shard

    def handle(self, shard: int) -> Any:
        handle = self._handles.get(shard)
        if handle is None:
            handle = self._handles[shard] = shard_actor(self.spec, shard)
        return handle

    def submit(self, shard: int, message: Message) -> asyncio.Future[Any]:
        """Queues a command or state query for its shard; the future gets the outcome."""
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._outboxes.setdefault(shard, []).append((message, future))
        if shard not in self._pumps:
            self._pumps[shard] = asyncio.get_running_loop().create_task(
                self._pump(shard), name=f"eventactors shard {shard} pump"
            )
        return future

    async def _pump(self, shard: int) -> None:
        """Sends what waits for the shard, at most `MAX_BATCHES_IN_FLIGHT` batches at a time:
        under load the next batch grows while those are out."""
        outbox = self._outboxes[shard]
        in_flight = self._in_flight.setdefault(shard, set())
        try:
            while outbox:
                if len(in_flight) >= MAX_BATCHES_IN_FLIGHT:
                    await asyncio.wait(in_flight, return_when=asyncio.FIRST_COMPLETED)
                    continue
                batch = outbox[: self.spec.cluster.max_batch]
                del outbox[: len(batch)]
                self._send_batch(shard, batch)
                await asyncio.sleep(0)  # let callers of this tick join the next batch
        finally:
            del self._pumps[shard]

    def _send_batch(self, shard: int, batch: list[tuple[Message, asyncio.Future[Any]]]) -> None:
        sendable = []
        for message, future in batch:  # one by one, so that a bad command fails alone
            try:
                sendable.append((pack(message), future, isinstance(message, SendMessage)))
            except Exception as error:
                future.set_exception(cannot_travel(message, error))
        if not sendable:
            return
        handle = self.handle(shard)
        number = self._next_number.get(shard, 0)
        self._next_number[shard] = number + 1
        unreturned = self._unreturned.setdefault(shard, set())
        base = min(unreturned, default=number)
        unreturned.add(number)
        call = handle.deliver.remote(self._sender, number, base, [m for m, _, _ in sendable])
        task = asyncio.get_running_loop().create_task(
            self._await_batch(shard, handle, call, [(f, r) for _, f, r in sendable])
        )
        in_flight = self._in_flight.setdefault(shard, set())
        in_flight.add(task)

        def returned(_: asyncio.Task[None]) -> None:
            in_flight.discard(task)
            unreturned.discard(number)

        task.add_done_callback(returned)

    async def _await_batch(
        self,
        shard: int,
        handle: Any,
        call: Any,
        batch: list[Waiting],
    ) -> None:
        try:
            incarnation, results = await call
        except Exception as error:
            if is_actor_error(error):
                self._handles.pop(shard, None)  # look the actor up again next time
                error = _unavailable(shard, error)
            _fail(batch, error)
            return
        waiting: dict[int, Waiting] = {}
        for (future, is_reply), (finished, value) in zip(batch, results, strict=True):
            if finished:
                self._settle(future, value, is_reply)
            else:
                waiting[value] = (future, is_reply)
        if waiting:  # collected outside the batch's slot, which frees the pump
            collector = asyncio.get_running_loop().create_task(
                self._collect(shard, handle, incarnation, waiting)
            )
            self._collectors.add(collector)
            collector.add_done_callback(self._collectors.discard)

    def _settle(self, future: asyncio.Future[Any], outcome: Any, is_reply: bool) -> None:
        succeeded, value = outcome
        if future.done():
            return  # its caller gave up
        if not succeeded:
            future.set_exception(value)
        else:
            future.set_result(reply_from_wire(value, self._decode) if is_reply else value)

    async def _collect(
        self, shard: int, handle: Any, incarnation: str, waiting: dict[int, Waiting]
    ) -> None:
        """Fetches outcomes until every command of the batch has one. A caller that gave up
        still has its outcome fetched, so that the shard can forget it."""
        while waiting:
            try:
                outcomes = await handle.collect.remote(incarnation, list(waiting))
            except Exception as error:
                lost = _unavailable(shard, error) if is_actor_error(error) else error
                _fail(list(waiting.values()), lost)
                return
            for token, outcome in outcomes.items():
                future, is_reply = waiting.pop(token)
                self._settle(future, outcome, is_reply)

    async def close(self, timeout: float | None = None) -> None:
        """Waits for the commands in flight (at most `timeout` seconds), then drops the rest."""
        tasks = [*self._pumps.values(), *self._collectors]
        for in_flight in self._in_flight.values():
            tasks.extend(in_flight)
        if tasks:
            _, pending = await asyncio.wait(tasks, timeout=timeout)
            for task in pending:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        self._handles.clear()


def _unavailable(shard: int, error: BaseException) -> ShardUnavailable:
    return ShardUnavailable(
        f"shard {shard} could not be reached or died with the command in it "
        f"({type(error).__name__}); the command may or may not have been persisted"
    )


def _fail(batch: list[Waiting], error: BaseException) -> None:
    for future, _ in batch:
        if not future.done():
            future.set_exception(error)
