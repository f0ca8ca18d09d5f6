"""The process side of a shard: a Ray actor that runs an engine for one shard's entities.

Commands arrive in numbered batches (`deliver`) and go into their entities' mailboxes in the
sender's order (see `Sequencer`), so commands from one sender to one entity keep their order
whatever order Ray runs concurrent calls in.
"""

from __future__ import annotations

import asyncio
import os
import secrets
from typing import TYPE_CHECKING, Any

from .._engine_checks import wait_reply
from ..errors import ShardUnavailable
from ..records import persistence_id_of
from .app_spec import AppSpec
from .sequencer import Sequencer
from .wire import (
    Outcome,
    SendMessage,
    outcome_of,
    portable,
    reply_to_wire,
    unpack,
)

if TYPE_CHECKING:
    from ..engine import Engine

#: Once the first command of a batch has finished, how long to wait for the others before
#: answering with what is ready.
LINGER = 0.005

#: How long a batch's call waits for its first command to finish; commands that take longer
#: (an awaited outside check) are collected later, and the sender's next batch goes out.
FIRST_WITHIN = 0.050

#: A finished command's outcome that no sender collected for this long is dropped (its
#: sender died or stopped waiting).
ABANDONED_AFTER = 300.0

#: (True, outcome) for a finished command, (False, token) for one to `collect` later.
Result = tuple[bool, Any]


class EngineHost:
    """Starts its engine on first use: Ray constructs actors synchronously."""

    def __init__(self, spec: AppSpec, shard: int | None) -> None:
        self.spec = spec
        self.shard = shard
        self._engine: Engine | None = None
        self._starting = asyncio.Lock()

    async def engine(self) -> Engine:
        if self._engine is not None:
            return self._engine
        async with self._starting:
            if self._engine is None:
                engine = self.spec.build_engine(shard=self.shard)
                await self.on_build(engine)
                await engine.start()
                self._engine = engine
        return self._engine

    async def on_build(self, engine: Engine) -> None:
        """Hook for what must be set up before the engine starts."""

    def pid(self) -> int:
        return os.getpid()

    def fingerprint(self) -> tuple[tuple[str, str], ...]:
        return self.spec.fingerprint

    async def stop(self) -> None:
        """Drains the mailboxes (or projection pages) and closes the store."""
        if self._engine is not None:
            await self._engine.stop()


class ShardHost(EngineHost):
    def __init__(self, spec: AppSpec, shard: int) -> None:
        super().__init__(spec, shard)
        #: Tells a restarted actor's tokens from its predecessor's.
        self.incarnation = secrets.token_hex(8)
        self._next_token = 0
        self._pending: dict[int, tuple[asyncio.Future[Any], float]] = {}  # token -> parked at
        self._last_sweep = 0.0
        self._sequencer = Sequencer()

    async def deliver(
        self, sender: str, number: int, base: int, batch: list[bytes]
    ) -> tuple[str, list[Result]]:
        """Puts each command of batch `number` from `sender` in its entity's mailbox, after
        the sender's previous batches (see `Sequencer`), then waits for the outcomes: all of
        them, or those ready soon after the first. The others come back as tokens, to
        `collect` later, so a slow command never holds back the replies of fast ones."""
        engine = self._engine or await self.engine()
        await self._sequencer.turn(sender, number, base)
        futures = [self._start(engine, packed) for packed in batch]
        self._sequencer.done(sender, number)
        await _first_then_linger(futures, first_within=FIRST_WITHIN)
        results: list[Result] = []
        for future in futures:
            if future.done():
                results.append((True, outcome_of(future)))
            else:
                results.append((False, self._park(future)))
        return self.incarnation, results

    def _start(self, engine: Engine, packed: bytes) -> asyncio.Future[Any]:
        """Puts the message in its entity's mailbox now, whatever kind it is, so that the
        batch's order is the mailboxes' order; only the waiting happens later."""
        loop = asyncio.get_running_loop()
        try:
            message = unpack(packed, self.shard)
            if isinstance(message, SendMessage):
                kind, actor, sent = engine._post_here(message)
                if message.timeout is None and message.creates_with is None:
                    return sent.future
                return loop.create_task(engine._finish_here(kind, actor, sent, message))
            if message.at_revision is None and message.at_time is None:
                query = engine._query_here(message.entity_type, message.entity_id)
                if message.timeout is None:
                    return query
                name = persistence_id_of(message.entity_type, message.entity_id)
                return loop.create_task(wait_reply(query, message.timeout, name))
            return loop.create_task(  # the past, rebuilt beside the live entity: no mailbox
                engine.get_state(
                    message.entity_type, message.entity_id, timeout=message.timeout,
                    at_revision=message.at_revision, at_time=message.at_time,
                )
            )  # fmt: skip
        except Exception as error:
            failed: asyncio.Future[Any] = loop.create_future()
            failed.set_exception(error)
            return failed

    def _park(self, future: asyncio.Future[Any]) -> int:
        """Keeps a running command's future until its sender collects it."""
        token = self._next_token
        self._next_token += 1
        now = asyncio.get_running_loop().time()
        self._pending[token] = (future, now)
        if now - self._last_sweep > ABANDONED_AFTER / 10:
            self._last_sweep = now
            self._pending = {
                token: (future, parked)
                for token, (future, parked) in self._pending.items()
                if not (future.done() and now - parked > ABANDONED_AFTER)
            }
        return token

    async def collect(self, incarnation: str, tokens: list[int]) -> dict[int, Outcome]:
        """The outcomes of those commands that have finished: waits for the first, then
        briefly for more. The caller asks again for the rest."""
        if incarnation != self.incarnation:
            lost = ShardUnavailable(
                f"shard {self.shard} restarted while the command was in it: it may or may not "
                "have been persisted"
            )
            return dict.fromkeys(tokens, (False, lost))
        await _first_then_linger(
            [self._pending[token][0] for token in tokens if token in self._pending]
        )
        outcomes: dict[int, Outcome] = {}
        for token in tokens:
            parked = self._pending.get(token)
            if parked is None:
                lost = ShardUnavailable(f"shard {self.shard}: the outcome was not kept")
                outcomes[token] = (False, lost)
            elif parked[0].done():
                del self._pending[token]
                outcomes[token] = outcome_of(parked[0])
        return outcomes

    async def send_now(self, message: SendMessage) -> Outcome:
        """One command, outside the batches: for the fence test and for tools."""
        engine = await self.engine()
        try:
            return (True, reply_to_wire(await engine._send_here(message)))
        except Exception as error:
            return (False, portable(error))

    async def status(self) -> dict[str, Any]:
        engine = self._engine
        live = sorted(engine._entities) if engine is not None else []
        return {
            "shard": self.shard,
            "pid": os.getpid(),
            "incarnation": self.incarnation,
            "live_entities": live,
            "pending_replies": len(self._pending),
            "statistics": engine.statistics() if engine is not None else None,
        }


async def _first_then_linger(
    futures: list[asyncio.Future[Any]], first_within: float | None = None
) -> None:
    if futures and not all(future.done() for future in futures):
        if not any(future.done() for future in futures):
            done, _ = await asyncio.wait(
                futures, timeout=first_within, return_when=asyncio.FIRST_COMPLETED
            )
            if not done:
                return
        await asyncio.wait(futures, timeout=LINGER)
