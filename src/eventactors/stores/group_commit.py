"""What the group-committing stores share: their limits and the counts they report.

While one transaction is being written, appends from other entities queue up; the next
transaction carries all of them, up to `max_batch` appends and `max_batch_bytes` of payload
(an append bigger than that still goes, alone). `flush_window` makes the writer wait that long
after the first queued append for company: a little latency for fewer, fuller transactions.
"""

from __future__ import annotations

from dataclasses import dataclass

DEFAULT_MAX_BATCH = 1000
DEFAULT_MAX_BATCH_BYTES = 4 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class WriteStatistics:
    """Cumulative counts since the store object was created: committed write transactions
    that carried appends, appends handled (written or refused), and events written.
    `appends / transactions` is the average group-commit batch."""

    transactions: int = 0
    appends: int = 0
    events: int = 0


class WriteCounter:
    """The mutable tally behind `write_statistics()`; only ever touched by one thread."""

    __slots__ = ("appends", "events", "transactions")

    def __init__(self) -> None:
        self.transactions = 0
        self.appends = 0
        self.events = 0

    def count(self, transactions: int, appends: int, events: int) -> None:
        """Committed transactions, appends handled (written or refused), events written."""
        self.transactions += transactions
        self.appends += appends
        self.events += events

    def snapshot(self) -> WriteStatistics:
        return WriteStatistics(self.transactions, self.appends, self.events)


def check_batch_limits(max_batch: object, max_batch_bytes: object, flush_window: object) -> None:
    """Refuses limits that would stall or disable the writer, naming the parameter."""
    for name, value in (("max_batch", max_batch), ("max_batch_bytes", max_batch_bytes)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{name} must be an int >= 1, got {value!r}")
    if (
        isinstance(flush_window, bool)
        or not isinstance(flush_window, int | float)
        or not 0 <= flush_window <= 10
    ):
        raise ValueError(
            f"flush_window must be a number of seconds from 0 to 10, got {flush_window!r}"
        )
