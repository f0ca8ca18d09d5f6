"""The engine's running tallies: what `Engine.statistics()` and the telemetry bridge read.

The command path pays a few integer increments, one comparison per enqueue and two clock
reads per store write; nothing is allocated for it. Everything costlier (sorting latencies,
spans, histograms) happens when the figures are read, or only once `hooks` is set by
`eventactors.telemetry.instrument`. Pure Python: this module never imports OpenTelemetry.
"""

from __future__ import annotations

import time
from collections import deque
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from ..records import EventEnvelope
    from .entity import EntityActor, Message

#: Command outcomes, as counted and as a span's `eventactors.command.outcome`. TIMEOUT is
#: the entity's `command_timeout`, or a caller who stopped waiting before the command's turn.
ACCEPTED, REJECTED, ERROR, TIMEOUT = "accepted", "rejected", "error", "timeout"
OUTCOMES = (ACCEPTED, REJECTED, ERROR, TIMEOUT)
#: Only on a span, never counted: `send_by` found its keys moved and sends the command again.
RETRIED = "retried"
#: Projection batch outcomes: every event handled, some skipped by the policy, or stopped.
HANDLED, SKIPPED, FAILED = "handled", "skipped", "failed"

RESERVOIR = 1024  # the latest store writes whose latencies the percentiles describe
RATE_WINDOW = 10.0  # seconds over which commands per second is measured
RATE_SPACING = 1.0  # at most one rate sample per this many seconds


class Hooks(Protocol):
    """What the telemetry bridge installs; each call happens only while it is installed."""

    def capture(self) -> Any:
        """At `send`, in the caller's task: the context to parent the command's span."""

    def command_started(self, actor: EntityActor, message: Message) -> Any:
        """When the command's turn comes; returns a handle for `command_ended`."""

    def command_ended(
        self,
        handle: Any,
        actor: EntityActor,
        outcome: str,
        events: int,
        error: BaseException | None,
    ) -> None:
        """Right after the caller's future got its reply or error."""

    def command_dropped(self, actor: EntityActor, message: Message) -> None:
        """A command whose caller stopped waiting before its turn came."""

    def appended(self, entity_type: str, seconds: float) -> None:
        """A store write of `entity_type` took `seconds`."""

    def batch_started(self, projection: str, page: list[EventEnvelope]) -> Any:
        """A projection is about to hand `page` to its handler."""

    def batch_ended(
        self, handle: Any, projection: str, size: int, outcome: str, error: BaseException | None
    ) -> None:
        """The page was handled and its offset committed, or the projection stopped."""


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
    """Owned by one engine; updated by its runtime, read by `statistics()` and telemetry."""

    __slots__ = (
        "appends",
        "commands",
        "events_appended",
        "hooks",
        "latencies",
        "mailbox_max",
        "mailbox_peak",
        "rate_samples",
    )

    def __init__(self) -> None:
        self.commands: dict[str, CommandCounter] = {}
        self.appends = 0  # store writes of accepted commands: event appends, state upserts
        self.events_appended = 0
        self.latencies = [0.0] * RESERVOIR  # a ring: the write numbered n is at n % RESERVOIR
        self.mailbox_peak = 0  # the deepest mailbox since `take_mailbox_peak`
        self.mailbox_max = 0  # the deepest before that
        self.rate_samples: deque[tuple[float, int]] = deque([(time.monotonic(), 0)])
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

    def max_mailbox_depth(self) -> int:
        return max(self.mailbox_max, self.mailbox_peak)

    def take_mailbox_peak(self) -> int:
        """The deepest mailbox since the previous take; the next take starts again from 0."""
        peak = self.mailbox_peak
        self.mailbox_max = max(self.mailbox_max, peak)
        self.mailbox_peak = 0
        return peak

    def commands_total(self) -> int:
        return sum(counter.total for counter in self.commands.values())

    def restart_rate(self) -> None:
        """At engine start: what came before (nothing, or a previous run) is not the rate."""
        self.rate_samples = deque([(time.monotonic(), self.commands_total())])

    def sample_rate(self) -> None:
        """Called about once a second by the engine's background task, and on every read:
        keeps one sample at least RATE_WINDOW old, so the rate spans the whole window."""
        now = time.monotonic()
        samples = self.rate_samples
        if now - samples[-1][0] >= RATE_SPACING:
            samples.append((now, self.commands_total()))
        while len(samples) > 2 and now - samples[1][0] >= RATE_WINDOW:
            samples.popleft()

    def commands_per_second(self) -> float:
        """Over the last RATE_WINDOW seconds (about), or since the engine started if later."""
        self.sample_rate()
        since, count = self.rate_samples[0]
        elapsed = time.monotonic() - since
        return (self.commands_total() - count) / elapsed if elapsed > 0 else 0.0
