"""What the crash campaign records: acknowledgements, targets, anomalies and results."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from eventactors_examples.bank.domain import Account, Closed, Deposited, Opened, Withdrawn

import eventactors as ea

ANOMALY_KINDS = {
    "lost_ack": "an acknowledged command's events are not stored",
    "ack_mismatch": "stored, but not as acknowledged (stream, revision, event id or event)",
    "bad_reply": "an accepted command's reply did not carry exactly one event",
    "rejected_persisted": "a rejected command left events behind",
    "duplicate_command": "one command's events stored more than once",
    "stream_gap": "a stream's sequence numbers skip, or its highest number disagrees",
    "stream_duplicate": "a sequence number or an event id stored twice",
    "position_order": "the global log is not strictly increasing",
    "undecodable": "a stored event cannot be decoded",
    "overdrawn": "replaying a stream takes a balance below zero",
    "state_mismatch": "the engine recovered a state other than the fold of the events",
    "projection_offset": "the read model at the stored offset is not the log up to it",
    "projection_mismatch": "the read model resumed after the kill differs from a full rebuild",
    "recovery_failed": "the engine or the projection could not start again on the store",
    "child_failed": "the child exited on its own (before it was killed)",
    "child_stalled": "the child made no progress to its kill point in time",
}
EVENT_TYPES = (Opened, Deposited, Withdrawn, Closed, Account)


@dataclass(frozen=True)
class CommandAck:
    """One acknowledged outcome: kind O/D/W (accepted) or R (rejected: nothing stored)."""

    command_id: str
    account: str
    kind: str
    amount: int
    events: int
    revision: int
    event_ids: tuple[str, ...]


def parse_ack(line: str) -> CommandAck:
    word, command_id, account, kind, amount, events, revision, event_ids = line.split()
    if word != "ack" or kind not in "ODWR":
        raise ValueError(f"not an ack line: {line!r}")
    return CommandAck(
        command_id, account, kind, int(amount), int(events),
        0 if revision == "-" else int(revision),
        () if event_ids == "-" else tuple(event_ids.split(",")),
    )  # fmt: skip


@dataclass(frozen=True)
class Target:
    """The database under test: an SQLite file, or a PostgreSQL DSN and schema."""

    location: str
    schema: str = "unused"

    def open_store(self) -> ea.Store:
        store = ea.open_store(self.location, schema=self.schema)
        for cls in EVENT_TYPES:
            store.serializer.register(cls)
        return store


class Anomalies:
    """Counts by kind, with the first few details of each."""

    def __init__(self) -> None:
        self.counts: Counter[str] = Counter()
        self.examples: dict[str, list[str]] = {}

    def add(self, kind: str, detail: str) -> None:
        assert kind in ANOMALY_KINDS, kind
        self.counts[kind] += 1
        examples = self.examples.setdefault(kind, [])
        if len(examples) < 5:
            examples.append(detail)

    def __bool__(self) -> bool:
        return bool(self.counts)


@dataclass
class CampaignResult:
    store: str
    seed: int
    kills: int = 0
    cycles: int = 0
    acks: list[CommandAck] = field(default_factory=list)
    events_stored: int = 0
    caught_up: list[int] = field(default_factory=list)  # per kill: events past the offset
    kill_moments: Counter[str] = field(default_factory=Counter)  # the plan's moment
    kill_phases: Counter[str] = field(default_factory=Counter)  # how far the child had got
    anomalies: Anomalies = field(default_factory=Anomalies)
    seconds: float = 0.0

    @property
    def acknowledged(self) -> int:
        return len(self.acks)

    def summary(self) -> dict[str, Any]:
        return {
            "store": self.store,
            "seed": self.seed,
            "kills": self.kills,
            "cycles": self.cycles,
            "acknowledged_commands": self.acknowledged,
            "acknowledged_by_kind": dict(Counter(ack.kind for ack in self.acks)),
            "events_stored": self.events_stored,
            "projection_caught_up_after_kill": {
                "total": sum(self.caught_up),
                "max": max(self.caught_up, default=0),
            },
            "kill_moments": dict(self.kill_moments),
            "kill_phases": dict(self.kill_phases),
            "anomalies": sum(self.anomalies.counts.values()),
            "anomalies_by_kind": {kind: self.anomalies.counts[kind] for kind in ANOMALY_KINDS},
            "anomaly_examples": self.anomalies.examples,
            "seconds": round(self.seconds, 1),
        }
