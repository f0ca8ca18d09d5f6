"""The entity actor: a mailbox that exists only while there is work, drained by one task.

An idle entity holds its state and nothing else: no task, no queue, no behavior instance. The
first message creates the deque, the behavior and a task that handles messages one at a time,
in arrival order, awaiting each handler to the end before the next starts; when the deque is
empty, all three are dropped. (So a behavior keeps nothing between commands: what an entity
remembers is its state.)
"""

from __future__ import annotations

import asyncio
import inspect
import logging
from collections import deque
from collections.abc import Awaitable
from typing import Any

from ..errors import (
    CommandTimeout,
    ConcurrencyError,
    EntityErased,
    IdentifierTaken,
    InvalidHandlerResult,
    InvalidIdentifiers,
    Rejected,
    UnknownCommand,
)
from ..records import ACCEPTED, IdentifierClaim, Reply
from .command_log import outcome_of, record_unwritten
from .kinds import EntityKind
from .message import GET_STATE, KeysMoved, Message, abandoned
from .recorder import ERROR, REJECTED, RETRIED, TIMEOUT, Hooks

__all__ = ["GET_STATE", "EntityActor", "KeysMoved", "Message", "abandon"]

log = logging.getLogger("eventactors.entity")


def abandon(task: asyncio.Future[Any]) -> None:
    """Cancels work the entity no longer waits for; whatever it ends with is not anyone's."""
    task.cancel()
    task.add_done_callback(lambda done: done.cancelled() or done.exception())


class EntityActor:
    """Base actor; subclasses implement recovery and command handling for their kind."""

    __slots__ = (
        "behavior",
        "current",
        "kind",
        "last_active",
        "mailbox",
        "persistence_id",
        "recovered",
        "revision",
        "state",
        "task",
    )

    def __init__(self, kind: EntityKind, persistence_id: str) -> None:
        self.kind = kind
        self.persistence_id = persistence_id
        self.behavior: Any = None  # only while the mailbox is being drained
        self.state: Any = None
        self.revision = 0
        self.recovered = False
        self.mailbox: deque[Message] | None = None
        self.current: Message | None = None  # the command being processed
        self.task: asyncio.Task[None] | None = None
        self.last_active = 0.0  # kept only for kinds that passivate

    @property
    def entity_id(self) -> str:
        # Derived, not stored: an idle entity should cost as little memory as possible.
        return self.persistence_id[len(self.kind.name) + 1 :]

    @property
    def is_idle(self) -> bool:
        return self.task is None

    def abandon_callers(self) -> None:
        """Fails the callers of a task that ignored its cancellation, so that `stop()` can
        finish without it. Each command counts now, since the task may never end; the running
        one is taken off the actor, so that a handler returning later counts nothing more."""
        current, self.current = self.current, None
        if current is not None:
            error = abandoned(self.persistence_id, started=True)
            if not current.future.done():
                current.future.set_exception(error)
            if current.command is not GET_STATE:
                self.kind.counts.error += 1
                hooks = self.kind.recorder.hooks
                if hooks is not None:
                    hooks.command_abandoned(current.trace, self, error)
        mailbox = self.mailbox
        if mailbox:
            for message in mailbox:
                self._not_run(message, abandoned(self.persistence_id, started=False))
            mailbox.clear()  # the task, if it carries on, finds nothing more to run

    def refuse_waiting(self, error: BaseException) -> None:
        """Fails every command still waiting in the mailbox with `error`; the running one
        carries on. (For an erasure: the entity must not run them.)"""
        mailbox = self.mailbox
        if mailbox:
            for message in mailbox:
                self._not_run(message, error)
            mailbox.clear()

    def gave_up(self, message: Message) -> None:
        """The caller's timeout passed. A command whose turn has not come will be dropped
        when it does: it counts as a timeout now, and its span ends now. One already running
        counts by its outcome when it ends."""
        if message.started or message.timed_out:
            return
        message.timed_out = True
        self.kind.counts.timeout += 1
        hooks = self.kind.recorder.hooks
        if hooks is not None:
            hooks.command_dropped(self, message, TIMEOUT, None)

    def enqueue(self, message: Message) -> None:
        if self.mailbox is None:
            self.mailbox = deque()
            self.kind.idle.pop(self.persistence_id, None)
        self.mailbox.append(message)
        recorder = self.kind.recorder
        if len(self.mailbox) > recorder.mailbox_peak:
            recorder.mailbox_peak = len(self.mailbox)
        if recorder.hooks is not None and message.command is not GET_STATE:
            message.trace = recorder.hooks.capture()  # in the caller's task: its context
        if self.task is None:
            task = asyncio.get_running_loop().create_task(
                self._drain(), name=f"entity {self.persistence_id}"
            )
            if not task.done():  # an eager task factory may already have drained the mailbox
                self.task = task

    async def _drain(self) -> None:
        mailbox = self.mailbox
        assert mailbox is not None
        try:
            try:
                behavior = self.kind.behavior_class()
                behavior.entity_id = self.entity_id
                behavior.engine = self.kind.engine
            except Exception as exc:  # every waiting caller hears why, and the entity recovers
                while mailbox:
                    self._not_run(mailbox.popleft(), exc)
                return
            self.behavior = behavior
            while mailbox:
                message = mailbox.popleft()
                if message.future.done():  # the caller gave up before the command started
                    self._not_run(message, None)
                    continue
                self.current = message
                await self._process(message)
                self.current = None
        finally:
            self.mailbox = None
            self.current = None
            self.task = None
            self.behavior = None
            for message in mailbox:  # only left when the task was cancelled
                self._not_run(message, abandoned(self.persistence_id, started=False))
            if self.kind.passivate_after is not None:
                self.last_active = asyncio.get_running_loop().time()
                self.kind.idle[self.persistence_id] = self

    async def _process(self, message: Message) -> None:
        message.started = True
        future = message.future
        hooks = self.kind.recorder.hooks
        span = None
        if hooks is not None and message.command is not GET_STATE:
            span = message.trace = hooks.command_started(self, message)
        try:
            if not self.recovered:
                await self.recover()
                self.recovered = True
            if message.command is GET_STATE:
                result: Any = (self.state, self.revision)
                if not future.done():
                    future.set_result(result)
                return
            expected = message.expected_revision
            if expected is not None and expected != self.revision:
                raise ConcurrencyError(
                    f"{self.persistence_id!r} is at revision {self.revision}, the command "
                    f"expected {expected}; nothing was persisted"
                )
            if message.addressed_by is not None:
                self.check_still_holds(message.addressed_by)
            reply = await self.handle(message)
        except asyncio.CancelledError as exc:
            current = asyncio.current_task()
            if current is not None and current.cancelling():  # the engine is stopping
                error = abandoned(self.persistence_id, started=True)
                if not future.done():
                    future.set_exception(error)
                self._count(message, error, hooks, span)
                raise
            # The handler itself met a cancellation (an awaited future was cancelled): that is
            # its own failure, which goes to its caller; the mailbox carries on.
            if not future.done():
                future.set_exception(exc)
            self._count(message, exc, hooks, span)
            return
        except BaseException as exc:
            if not isinstance(exc, Exception):
                if not future.done():
                    future.set_exception(exc)
                self._count(message, exc, hooks, span)
                raise
            try:
                # An erased entity's stream cannot be written: nor can its log.
                if self.logs(message) and not isinstance(exc, KeysMoved | EntityErased):
                    await record_unwritten(self, message, *outcome_of(exc))
            finally:  # the caller hears, even if the engine stops during the log's write
                if not future.done():
                    future.set_exception(exc)
                self._count(message, exc, hooks, span)
            return
        if not future.done():
            future.set_result(reply)
            self.kind.counts.accepted += 1
        elif self.current is message:  # its caller gave up while it ran: it counts all the same
            self.kind.counts.accepted += 1
        if hooks is not None:
            hooks.command_ended(span, self, ACCEPTED, len(reply.events), None)
        await self.after_reply()

    def _count(
        self, message: Message, error: BaseException, hooks: Hooks | None, span: Any
    ) -> None:
        """Counts a command that failed, and ends its span, once its caller has the error.
        Not counted: a `KeysMoved`, or a creation that lost its keys to another entity (unless
        it had to create), since `send_by` sends the command again and counts what it ends
        with; nor a command `abandon_callers` counted when the engine stopped."""
        if message.command is GET_STATE:
            return
        if isinstance(error, KeysMoved) or (
            isinstance(error, IdentifierTaken)
            and message.creates_with is not None
            and not message.must_create
        ):
            outcome = RETRIED
        else:
            outcome = (
                REJECTED if isinstance(error, Rejected)
                else TIMEOUT if isinstance(error, CommandTimeout)
                else ERROR
            )  # fmt: skip
            if self.current is message:
                self.kind.counts.count(outcome)
        if hooks is not None:
            hooks.command_ended(span, self, outcome, 0, error)

    def _not_run(self, message: Message, error: BaseException | None) -> None:
        """Settles a command that never ran: the engine stopped first, its behavior could not
        be made, or its caller gave up before its turn. A caller still waiting gets `error`
        (an error); one that gave up counts as a timeout, unless its timeout counted it."""
        future = message.future
        if not future.done():
            assert error is not None, "a command still awaited needs an error for its caller"
            future.set_exception(error)
            outcome = ERROR
        elif message.timed_out:
            return
        else:  # cancelled by its caller, who had no timeout of ours
            outcome, error = TIMEOUT, None
        if message.command is GET_STATE:
            return
        self.kind.counts.count(outcome)
        hooks = self.kind.recorder.hooks
        if hooks is not None:
            hooks.command_dropped(self, message, outcome, error)

    async def decide(self, message: Message) -> Any:
        """Runs the behavior's command handler, bounded by the kind's command timeout."""
        kind = self.kind
        command = message.command
        if kind.command_types and type(command) not in kind.command_types:
            raise UnknownCommand(
                f"{kind.behavior_class.__qualname__} does not handle {type(command).__qualname__} "
                f"(entity type {kind.name!r}); it handles "
                + ", ".join(sorted(t.__qualname__ for t in kind.command_types))
            )
        result = self.behavior.handle_command(self.state, command)
        if inspect.isawaitable(result):
            result = await self._bounded(result)
        return result

    async def _bounded(self, pending: Awaitable[Any]) -> Any:
        """The handler runs as a task of its own, so that past `command_timeout` the entity
        moves on even when the handler ignores its cancellation (a retry loop that catches
        everything): its result, if it ever comes, is dropped."""
        timeout = self.kind.command_timeout
        if timeout is None:
            return await pending
        handler = asyncio.ensure_future(pending)
        try:
            done, _ = await asyncio.wait((handler,), timeout=timeout)
        except asyncio.CancelledError:
            abandon(handler)
            raise
        if done:
            return handler.result()
        abandon(handler)
        raise CommandTimeout(
            f"{self.kind.behavior_class.__qualname__}.handle_command for "
            f"{self.persistence_id!r} ran past command_timeout={timeout}s; "
            "nothing was persisted"
        )

    def check_still_holds(self, keys: str) -> None:
        spec = self.kind.identifiers
        if spec is not None and spec.of_state(self.state) != keys:
            raise KeysMoved(
                f"{self.persistence_id!r} no longer holds identifiers {keys}; nothing was run"
            )

    def logs(self, message: Message) -> bool:
        """Whether a command that wrote nothing goes in the command log: not when it was a
        `send_by` creation, since the entity it would have created never came to exist and
        no one could look its log up."""
        return (
            self.kind.command_log
            and message.command is not GET_STATE
            and not (message.creates_with is not None and self.revision == 0)
        )

    async def accepted_without_change(self, message: Message) -> Reply[Any]:
        """The reply to a command that changed nothing, logged first if the kind logs."""
        if self.logs(message):
            await record_unwritten(self, message, ACCEPTED)
        return Reply(self.state, self.revision, ())

    def claim_for(self, new_state: Any, message: Message) -> IdentifierClaim | None:
        """The identifier claim a change to `new_state` needs: None unless the entity's
        natural keys change, are set for the first time, or are cleared (a release)."""
        spec = self.kind.identifiers
        if spec is None:
            return None
        keys = spec.of_state(new_state)
        if message.creates_with is not None and keys != message.creates_with:
            raise InvalidIdentifiers(
                f"the command sent by identifiers {message.creates_with} would create "
                f"{self.persistence_id!r} with identifiers {keys}; they must match, so nothing "
                "was persisted"
            )
        if keys == spec.of_state(self.state):
            return None
        return IdentifierClaim(self.kind.name, self.entity_id, keys or "")  # "" releases

    def invalid_result(self, what: Any, expected: str) -> InvalidHandlerResult:
        return InvalidHandlerResult(
            f"{self.kind.behavior_class.__qualname__}.handle_command returned {what!r} "
            f"({type(what).__qualname__}) for {self.persistence_id!r}; {expected}"
        )

    async def recover(self) -> None:
        raise NotImplementedError

    async def handle(self, message: Message) -> Reply[Any]:
        raise NotImplementedError

    async def after_reply(self) -> None:
        """Work done after the caller has its reply (snapshots), before the next command."""
