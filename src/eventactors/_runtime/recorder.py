"""The engine's running tallies: what `Engine.statistics()` and the telemetry bridge read.

The command path pays a few integer increments and attribute stores, one comparison per
enqueue and two clock reads per store write; nothing is allocated for it. Everything
costlier (sorting latencies, spans, histograms) happens when the figures are read, or only
once `hooks` is set by `eventactors.telemetry.instrument`. Pure Python: this module never
imports OpenTelemetry.
"""

from __future__ import annotations

import time
import uuid
from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from ..records import EventEnvelope
    from ..stores.group_commit import WriteStatistics
    from .entity import EntityActor
    from .message import Message

#: Command outcomes, as counted and as a span's `eventactors.command.outcome`. TIMEOUT is
#: the entity's `command_timeout`, or a caller who stopped waiting before the command's turn.
#: ERROR includes the commands the engine gave up on when it stopped.
ACCEPTED, REJECTED, ERROR, TIMEOUT = "accepted", "rejected", "error", "timeout"
OUTCOMES = (ACCEPTED, REJECTED, ERROR, TIMEOUT)
#: Only on a span, never counted: `send_by` sends the command again (its keys moved, or its
#: creation lost them to another entity), and counts what the call ends with.
RETRIED = "retried"
#: Projection batch outcomes: every event handled, some skipped by the policy, the projection
#: failed, or it stopped before the batch was done (a clean stop, not a failure).
HANDLED, SKIPPED, FAILED, STOPPED = "handled", "skipped", "failed", "stopped"

RESERVOIR = 1024  # the latest store writes whose latencies the percentiles describe
RATE_WINDOW = 10.0  # seconds over which commands per second is measured
RATE_SPACING = 1.0  # at most one rate sample per this many seconds

#: (when, commands counted, store appends, store write transactions)
Sample = tuple[float, int, int, int]


class Hooks(Protocol):
    """What the telemetry bridge installs; each call happens only while it is installed."""

    def capture(self) -> Any:
        """At `send`, in the caller's task: the context to parent the command's span, and
        anything else its span needs (when it was sent); kept in `message.trace`."""

    def command_started(self, actor: EntityActor, message: Message) -> Any:
        """When the command's turn comes; returns a handle for `command_ended`, which the
        entity also keeps in `message.trace` for `command_abandoned`."""

    def command_ended(
        self,
        handle: Any,
        actor: EntityActor,
        outcome: str,
        events: int,
        error: BaseException | None,
    ) -> None:
        """Right after the caller's future got its reply or error."""

    def command_dropped(
        self, actor: EntityActor, message: Message, outcome: str, error: BaseException | None
    ) -> None:
        """A command that never ran (its caller stopped waiting, or the engine stopped): its
        span, from the send to now."""

    def command_abandoned(self, handle: Any, actor: EntityActor, error: BaseException) -> None:
        """The engine stopped without the running command's handler: its span ends now,
        though its task may still run (and call `command_ended` later). `handle` is whatever
        `message.trace` held: a handle of this bridge's only if it began the span."""

    def appended(self, entity_type: str, seconds: float) -> None:
        """A store write of `entity_type` took `seconds`."""

    def batch_started(self, projection: str, page: list[EventEnvelope]) -> Any:
        """A projection is about to hand `page` to its handler."""

    def batch_ended(
        self, handle: Any, projection: str, size: int, outcome: str, error: BaseException | None
    ) -> None:
        """The page was handled and its offset committed, or the projection stopped."""

    def projection_removed(self, projection: str) -> None:
        """The projection (or partition) of that name was removed from the engine."""


class CommandCounter:
    """One entity type's commands by outcome; its `EntityKind` holds it for the hot path."""

    __slots__ = ("accepted", "error", "rejected", "timeout")

    def __init__(self) -> None:
        self.accepted = 0
        self.rejected = 0
        self.error = 0
        self.timeout = 0

    def count(self, outcome: str) -> None:
        """For the rare outcomes; the accepted path increments `accepted` directly."""
        setattr(self, outcome, getattr(self, outcome) + 1)

    @property
    def total(self) -> int:
        return self.accepted + self.rejected + self.error + self.timeout


class Recorder:
    """Owned by one engine; updated by its runtime, on the event loop's thread only, and read
    by `statistics()` and telemetry (whose reads may come from an exporter's thread).

    `engine_id` tells one engine's metrics from another's in the same process.
    """

    __slots__ = (
        "appends",
        "commands",
        "engine_id",
        "events_appended",
        "hooks",
        "latencies",
        "mailbox_peak",
        "rate_samples",
        "write_statistics",
    )

    def __init__(self, store: object = None) -> None:
        self.engine_id = uuid.uuid4().hex[:12]
        self.commands: dict[str, CommandCounter] = {}
        self.appends = 0  # store writes of accepted commands: event appends, state upserts
        self.events_appended = 0
        self.latencies = [0.0] * RESERVOIR  # a ring: the write numbered n is at n % RESERVOIR
        self.mailbox_peak = 0  # the most commands ever waiting in one mailbox
        self.write_statistics: Callable[[], WriteStatistics] | None = getattr(
            store, "write_statistics", None
        )
        self.rate_samples: deque[Sample] = deque([self._sample(time.monotonic())])
        self.hooks: Hooks | None = None

    def counter(self, entity_type: str) -> CommandCounter:
        return self.commands.setdefault(entity_type, CommandCounter())

    def appended(self, entity_type: str, events: int, seconds: float) -> None:
        appends = self.appends
        self.latencies[appends % RESERVOIR] = seconds
        self.appends = appends + 1
        self.events_appended += events
        if self.hooks is not None:
            self.hooks.appended(entity_type, seconds)

    # -- reading --------------------------------------------------------------------------

    def latency_window(self) -> list[float]:
        """The latest write latencies (at most RESERVOIR), sorted."""
        return sorted(self.latencies[: min(self.appends, RESERVOIR)])

    def commands_total(self) -> int:
        return sum(counter.total for counter in tuple(self.commands.values()))

    def store_writes(self) -> tuple[int, int] | None:
        """The store's (appends, write transactions) since it was created, if it reports them."""
        if self.write_statistics is None:
            return None
        written = self.write_statistics()
        return written.appends, written.transactions

    def _sample(self, now: float) -> Sample:
        appends, transactions = self.store_writes() or (0, 0)
        return (now, self.commands_total(), appends, transactions)

    def restart_rate(self) -> None:
        """At engine start: what came before (nothing, or a previous run) is not the rate."""
        self.rate_samples = deque([self._sample(time.monotonic())])

    def sample_rate(self) -> None:
        """Called about once a second by the engine's background task, and on every read:
        keeps one sample at least RATE_WINDOW old, so the rate spans the whole window."""
        now = time.monotonic()
        samples = self.rate_samples
        if now - samples[-1][0] >= RATE_SPACING:
            samples.append(self._sample(now))
        while len(samples) > 2 and now - samples[1][0] >= RATE_WINDOW:
            samples.popleft()

    def commands_per_second(self) -> float:
        """Over the last RATE_WINDOW seconds (about). Until that much time has passed since
        the engine started, still divided by the whole window: one command a moment after
        the start is not thousands a second."""
        self.sample_rate()
        since, count, _, _ = self.rate_samples[0]
        elapsed = max(time.monotonic() - since, RATE_WINDOW)
        return (self.commands_total() - count) / elapsed

    def recent_append_batch(self) -> float | None:
        """The store's appends per write transaction over the same window; None without
        writes in it, or from a store that does not report them."""
        self.sample_rate()
        writes = self.store_writes()
        if writes is None:
            return None
        _, _, appends, transactions = self.rate_samples[0]
        if writes[1] <= transactions:
            return None
        return (writes[0] - appends) / (writes[1] - transactions)
