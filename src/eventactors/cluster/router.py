"""The sending side of cluster mode: which shard an entity lives on, and how commands get there.

Per shard, a pump sends the commands waiting for it as one numbered batch, with a few batches
out at a time: under load a batch carries many commands per Ray call (adaptive batching, as
with group commit). The shard runs batches in their numbers' order (see `Sequencer`), so
commands from this process to one entity keep their order. A batch's call returns its
commands' outcomes; those still running come back later through `collect`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from .._ids import uuid7
from .._slices import shard_of
from ..errors import EngineNotStarted, EventActorsError, ShardUnavailable
from ..records import EventEnvelope
from .app_spec import AppSpec
from .ray_actors import ensure_ray, is_actor_error, is_unreachable, named_actors, shard_actor
from .wire import Message, SendMessage, cannot_travel, pack, reply_from_wire

Waiting = tuple[asyncio.Future[Any], bool]  # the caller's future; whether it awaits a Reply
#: A message waiting for its batch: the message, its caller's future, its deadline if any.
Outgoing = tuple[Message, asyncio.Future[Any], float | None]

#: How long a shard may be unreachable (not dead) before its callers are told.
UNREACHABLE_GRACE = 10.0

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
        self._outboxes: dict[int, list[Outgoing]] = {}
        self._closing = False
        self._pumps: dict[int, asyncio.Task[None]] = {}
        self._in_flight: dict[int, set[asyncio.Task[None]]] = {}
        self._collectors: set[asyncio.Task[None]] = set()
        self._sender = uuid7()  # names this process's batches to the shards (see Sequencer)
        self._next_number: dict[int, int] = {}
        self._unreturned: dict[int, set[int]] = {}  # batch numbers whose call has not returned

    async def connect(self, *, all_shards: bool) -> None:
        """Joins Ray; with `all_shards`, creates every shard host now and checks that the
        ones that already existed run the same application."""
        cluster = self.spec.cluster
        ensure_ray(cluster)
        if not all_shards:
            return
        others = {
            name for name in named_actors(cluster)
            if name.startswith("shard-") and not name.endswith(f"-of-{self.num_shards}")
        }  # fmt: skip
        if others:
            raise EventActorsError(
                f"Ray namespace {cluster.namespace!r} runs shards of another count "
                f"({sorted(others)[0]}, ...), so every entity would have two owners; this "
                f"engine has num_shards={self.num_shards}. Stop that cluster first "
                "(engine.stop_cluster()): the data is in the store, nothing is lost."
            )
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
        """Queues a command or state query for its shard; the future gets the outcome.

        A message with a timeout carries what is left of it when it leaves, and one whose
        caller already gave up does not leave at all: "not started by then, dropped" holds
        across the hop as in one process (time spent queued inside Ray is not counted)."""
        if self._closing:
            raise EngineNotStarted("the engine is stopping: it takes no new commands")
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Any] = loop.create_future()
        deadline = None if message.timeout is None else loop.time() + message.timeout
        self._outboxes.setdefault(shard, []).append((message, future, deadline))
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

    def _send_batch(self, shard: int, batch: list[Outgoing]) -> None:
        sendable = []
        now = asyncio.get_running_loop().time()
        for message, future, deadline in batch:  # one by one: a bad command fails alone
            if future.done():
                continue  # its caller gave up: not sent, so never run
            if deadline is not None:
                if deadline <= now:
                    continue  # the caller's wait is about to time out: dropped
                message = message._replace(timeout=deadline - now)
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
        except asyncio.CancelledError:
            _fail(batch, _abandoned())
            raise
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
        still has its outcome fetched, so that the shard can forget it. A shard that is
        briefly unreachable is asked again; one that died fails the callers."""
        unreachable_since: float | None = None
        try:
            while waiting:
                try:
                    outcomes = await handle.collect.remote(incarnation, list(waiting))
                except Exception as error:
                    now = asyncio.get_running_loop().time()
                    unreachable_since = unreachable_since or now
                    if is_unreachable(error) and now - unreachable_since < UNREACHABLE_GRACE:
                        await asyncio.sleep(0.1)
                        continue
                    lost = _unavailable(shard, error) if is_actor_error(error) else error
                    _fail(list(waiting.values()), lost)
                    return
                unreachable_since = None
                for token, outcome in outcomes.items():
                    future, is_reply = waiting.pop(token)
                    self._settle(future, outcome, is_reply)
        except asyncio.CancelledError:
            _fail(list(waiting.values()), _abandoned())
            raise

    async def close(self, timeout: float | None = None) -> None:
        """Takes no new commands, waits for those in flight (at most `timeout` seconds), then
        abandons the rest: their callers get `EngineNotStarted`, as in one process."""
        self._closing = True
        loop = asyncio.get_running_loop()
        deadline = None if timeout is None else loop.time() + timeout
        while tasks := self._tasks():
            remaining = None if deadline is None else max(0.0, deadline - loop.time())
            await asyncio.wait(tasks, timeout=remaining)
            if deadline is not None and loop.time() >= deadline:
                for task in self._tasks():
                    task.cancel()
                await asyncio.gather(*self._tasks(), return_exceptions=True)
                break
        for outbox in self._outboxes.values():
            _fail([(future, False) for _, future, _ in outbox], _abandoned())
            outbox.clear()
        self._handles.clear()

    def _tasks(self) -> list[asyncio.Task[None]]:
        tasks = [*self._pumps.values(), *self._collectors]
        for in_flight in self._in_flight.values():
            tasks.extend(in_flight)
        return [task for task in tasks if not task.done()]


def _abandoned() -> EngineNotStarted:
    return EngineNotStarted("the engine stopped before the shard answered this command")


def _unavailable(shard: int, error: BaseException) -> ShardUnavailable:
    return ShardUnavailable(
        f"shard {shard} could not be reached or died with the command in it "
        f"({type(error).__name__}); the command may or may not have been persisted"
    )


def _fail(batch: list[Waiting], error: BaseException) -> None:
    for future, _ in batch:
        if not future.done():
            future.set_exception(error)
