"""The crash campaign: the bank workload in a child process, SIGKILLed at random moments and
restarted on the same database, with the store checked after every kill.

A kill lands at one of four moments, chosen by a seeded RNG: any time after the spawn
(imports, engine start), during recovery (after "up": entities recovering beside the
projection's catch-up), mid-load (after "ready"), or right after the k-th acknowledgement.
The acknowledged set is every ack line the parent read, including those still in the pipe
when the child died: the child wrote each one after its reply, so each was acknowledged.

After each kill, with the child dead, `check_store` opens the database from this process and
counts anomalies by kind (see ANOMALY_KINDS). A clean campaign reports none; the tests plant
each kind in a copy of a database to show that the checks can fail.
"""

from __future__ import annotations

import contextlib
import math
import os
import random
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from durability_checks import LineReader
from eventactors_examples.bank.app import build_engine
from eventactors_examples.bank.balances import NAME, Balance, read_balances
from eventactors_examples.bank.domain import Account, Closed, Deposited, Opened, Withdrawn
from msgspec.structs import replace

import eventactors as ea

CHILD = Path(__file__).with_name("crash_campaign_child.py")
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


# -- the child and the kill loop -----------------------------------------------------------


@dataclass(frozen=True)
class KillPlan:
    moment: str  # spawn | recovery | load | ack
    delay: float = 0.0  # seconds after the spawn, "up" or "ready"
    after_acks: int = 0

    @staticmethod
    def draw(rng: random.Random) -> KillPlan:
        moment = rng.choices(["spawn", "recovery", "load", "ack"], [2, 2, 3, 3])[0]
        if moment == "ack":
            return KillPlan(moment, after_acks=rng.randint(1, 500))
        span = {"spawn": (0.0, 0.6), "recovery": (0.0, 0.05), "load": (0.05, 1.5)}[moment]
        return KillPlan(moment, delay=rng.uniform(*span))


@dataclass
class Cycle:
    acks: list[CommandAck] = field(default_factory=list)
    phase: str = "starting"  # starting | recovering | loaded
    killed: bool = False
    failure: str | None = None  # child_failed or child_stalled, with what it said


def run_cycle(
    target: Target, run: int, plan: KillPlan, *, seed: int, clients: int, accounts: int,
    log: Path, timeout: float = 60.0,
) -> Cycle:  # fmt: skip
    """Starts a child, SIGKILLs it as `plan` says, and returns what it acknowledged."""
    read_fd, write_fd = os.pipe()
    arguments = [target.location, target.schema, write_fd, seed, run, clients, accounts]
    log_start = log.stat().st_size if log.exists() else 0
    with log.open("ab") as stderr, os.fdopen(read_fd, "rb") as pipe:
        try:
            child = subprocess.Popen(
                [sys.executable, str(CHILD), *map(str, arguments)], stdin=subprocess.DEVNULL,
                stdout=stderr, stderr=stderr, pass_fds=(write_fd,),
            )  # fmt: skip
        finally:
            os.close(write_fd)  # the child holds the only writer: its death ends the pipe
        reader = LineReader(pipe)
        try:
            cycle = _follow(child, reader, plan, timeout)
            if child.poll() is None:
                os.kill(child.pid, signal.SIGKILL)
            cycle.killed = child.wait(timeout=30) == -signal.SIGKILL and cycle.failure is None
            cycle.acks += [parse_ack(line) for line in reader.rest(time.monotonic() + 10)
                           if line.startswith("ack ")]  # fmt: skip
        finally:
            if child.poll() is None:
                child.kill()
                child.wait(timeout=30)
            reader.close()
    if cycle.failure is not None:
        with log.open("rb") as written:
            written.seek(log_start)
            cycle.failure += ": " + written.read().decode(errors="replace")[-1500:]
    return cycle


def _follow(
    child: subprocess.Popen[bytes], reader: LineReader, plan: KillPlan, timeout: float
) -> Cycle:
    """Reads the child's lines until the plan's kill moment (or a failure)."""
    cycle = Cycle()
    now = time.monotonic()
    deadline = now + timeout
    kill_at = now + plan.delay if plan.moment == "spawn" else math.inf
    while (now := time.monotonic()) < kill_at:
        if now >= deadline:
            cycle.failure = f"child_stalled: no kill point within {timeout}s ({plan})"
            return cycle
        line = reader.readline(min(kill_at, deadline))
        if line is None:
            if time.monotonic() < min(kill_at, deadline):  # end of file: the child exited
                code = child.wait(timeout=30)
                cycle.failure = f"child_failed: exit code {code} in phase {cycle.phase}"
                return cycle
        elif line == "up":
            cycle.phase = "recovering"
            if plan.moment == "recovery":
                kill_at = time.monotonic() + plan.delay
        elif line == "ready":
            cycle.phase = "loaded"
            if plan.moment == "load":
                kill_at = time.monotonic() + plan.delay
        else:
            cycle.acks.append(parse_ack(line))
            if plan.moment == "ack" and len(cycle.acks) >= plan.after_acks:
                break
    return cycle


async def run_campaign(
    target: Target, *, kills: int, seed: int, workdir: Path, clients: int = 32,
    accounts: int = 24, progress: Callable[[str], None] | None = None,
) -> CampaignResult:  # fmt: skip
    """Kills and restarts the child until `kills` kills are done, checking after each."""
    rng = random.Random(seed)
    result = CampaignResult(store=target.location, seed=seed)
    started = time.monotonic()
    log = workdir / f"crash-campaign-{seed}.log"
    while result.kills < kills and result.cycles < 2 * kills + 5:
        result.cycles += 1
        plan = KillPlan.draw(rng)
        cycle = run_cycle(
            target, result.cycles, plan, seed=seed, clients=clients, accounts=accounts, log=log
        )
        result.acks += cycle.acks
        if cycle.killed:
            result.kills += 1
            result.kill_moments[plan.moment] += 1
            result.kill_phases[cycle.phase] += 1
        if cycle.failure is not None:
            kind, _, detail = cycle.failure.partition(": ")
            result.anomalies.add(kind, f"run {result.cycles}: {detail}")
        checked = await check_store(target, result.acks, result.anomalies)
        result.events_stored = checked.events
        result.caught_up.append(checked.caught_up)
        if progress is not None:
            progress(
                f"run {result.cycles}: {plan.moment} kill in phase {cycle.phase}, "
                f"{len(cycle.acks)} acks (total {result.acknowledged}), "
                f"{checked.events} events ({checked.caught_up} past the offset), "
                f"anomalies {dict(result.anomalies.counts)}"
            )
    result.seconds = time.monotonic() - started
    return result


# -- the checks ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Checked:
    events: int  # stored in all
    caught_up: int  # after the offset the kill left: what the resumed projection handled


async def check_store(target: Target, acks: Iterable[CommandAck], anomalies: Anomalies) -> Checked:
    """Checks the database of a dead child against every ack. A store that cannot even be
    read, or an engine that cannot start on it, is itself the finding (recovery_failed)."""
    try:
        return await _check(target, acks, anomalies)
    except Exception as exc:
        anomalies.add("recovery_failed", f"{type(exc).__name__}: {exc}")
        return Checked(0, 0)


async def _check(target: Target, acks: Iterable[CommandAck], anomalies: Anomalies) -> Checked:
    """Reads the read model with the offset as the kill left them, then has an engine resume
    the projection (and recover every account) from this process, as the next child would."""
    store = target.open_store()
    try:
        offset = await store.get_offset(NAME) or 0
        at_kill = await read_balances(store)
        log = await read_log(store, anomalies)
        streams = check_log(log, anomalies)
        for persistence_id, stream in streams.items():
            highest = await store.highest_sequence_number(persistence_id)
            if highest != stream[-1].sequence_number:
                anomalies.add("stream_gap", f"{persistence_id}: highest {highest}, "
                              f"last stored {stream[-1].sequence_number}")  # fmt: skip
    finally:
        await store.close()
    check_acks(acks, log, anomalies)
    accounts = {stream[0].entity_id: stream for stream in streams.values()}
    folds = {account: fold(stream, anomalies) for account, stream in accounts.items()}
    before = {
        a: [e for e in stream if e.global_position <= offset] for a, stream in accounts.items()
    }
    compare_read_model(at_kill, {a: balance_of(fold(s), len(s)) for a, s in before.items() if s},
                       anomalies, "projection_offset", f"at offset {offset}")  # fmt: skip
    recovered, resumed = await resume(target, list(accounts))
    for account, state in folds.items():
        revision = accounts[account][-1].sequence_number
        if recovered[account] != (state, revision):
            anomalies.add("state_mismatch", f"{account}: engine {recovered[account]}, "
                          f"events fold to {(state, revision)}")  # fmt: skip
    expected = {a: balance_of(state, len(accounts[a])) for a, state in folds.items()}
    compare_read_model(resumed, expected, anomalies, "projection_mismatch", "after resuming")
    return Checked(len(log), sum(e.global_position > offset for e in log))


async def read_log(store: ea.Store, anomalies: Anomalies) -> list[ea.EventEnvelope]:
    """The whole global log, each event decoded (those that cannot be are left out)."""
    log: list[ea.EventEnvelope] = []
    position = 0
    while page := await store.read_all(position, 2000):
        for envelope in page:
            try:
                envelope.event  # noqa: B018 - decodes it now
            except ea.SerializationError as exc:
                anomalies.add("undecodable", str(exc))
                continue
            log.append(envelope)
        position = page[-1].global_position
    return log


def check_log(
    log: list[ea.EventEnvelope], anomalies: Anomalies
) -> dict[str, list[ea.EventEnvelope]]:
    """Global order, unique event ids, and gap-free streams without duplicate numbers; returns
    each stream in sequence order."""
    streams: dict[str, list[ea.EventEnvelope]] = {}
    seen: set[str] = set()
    previous = 0
    for envelope in log:
        if envelope.global_position <= previous:
            anomalies.add("position_order", f"{envelope.global_position} after {previous}")
        previous = envelope.global_position
        if envelope.event_id in seen:
            anomalies.add("stream_duplicate", f"event id {envelope.event_id} stored twice")
        seen.add(envelope.event_id)
        streams.setdefault(envelope.persistence_id, []).append(envelope)
    for persistence_id, stream in streams.items():
        stream.sort(key=lambda envelope: (envelope.sequence_number, envelope.global_position))
        numbers = Counter(envelope.sequence_number for envelope in stream)
        for number, count in numbers.items():
            if count > 1:
                anomalies.add("stream_duplicate", f"{persistence_id}: #{number} x{count}")
        missing = sorted(set(range(1, max(numbers) + 1)) - set(numbers))
        if missing:
            anomalies.add("stream_gap", f"{persistence_id}: missing {missing[:10]}")
    return streams


def check_acks(
    acks: Iterable[CommandAck], log: list[ea.EventEnvelope], anomalies: Anomalies
) -> None:
    """Every acknowledged command's events are stored as its reply said, once; rejected ones
    left nothing. A command's events are found by the command_id they carry."""
    by_command: dict[str, list[ea.EventEnvelope]] = {}
    for envelope in log:
        by_command.setdefault(envelope.command_id, []).append(envelope)
    for command_id, events in by_command.items():
        if len(events) > 1:  # every command of this workload persists at most one event
            anomalies.add("duplicate_command", f"{command_id}: {len(events)} events")
    for ack in acks:
        stored = by_command.get(ack.command_id, [])
        if ack.kind == "R":
            if stored:
                anomalies.add("rejected_persisted", f"{ack}: {stored}")
            continue
        if ack.events != 1 or len(ack.event_ids) != 1:
            anomalies.add("bad_reply", str(ack))
        if not stored:
            anomalies.add("lost_ack", str(ack))
            continue
        event = stored[0]
        expected = {"O": Opened(f"owner-{ack.account}"), "D": Deposited(ack.amount),
                    "W": Withdrawn(ack.amount)}[ack.kind]  # fmt: skip
        if (
            event.persistence_id != f"account|{ack.account}"
            or event.sequence_number != ack.revision
            or (event.event_id,) != ack.event_ids
            or event.event != expected
        ):
            anomalies.add("ack_mismatch", f"{ack}: stored {event} {event.event!r}")


def fold(stream: list[ea.EventEnvelope], anomalies: Anomalies | None = None) -> Account:
    """The account the events add up to, folded here rather than by the behavior."""
    state = Account()
    for envelope in stream:
        match envelope.event:
            case Opened(owner=owner):
                state = replace(state, owner=owner, is_open=True)
            case Deposited(amount=amount):
                state = replace(state, balance=state.balance + amount)
            case Withdrawn(amount=amount):
                state = replace(state, balance=state.balance - amount)
                if state.balance < 0 <= state.balance + amount and anomalies is not None:
                    where = f"{envelope.persistence_id} at {envelope.sequence_number}"
                    anomalies.add("overdrawn", where)
            case Closed():
                state = replace(state, is_open=False, is_closed=True)
    return state


def balance_of(state: Account, events: int) -> Balance:
    return (state.owner, state.balance, state.is_open, events)


def compare_read_model(
    got: dict[str, Balance], expected: dict[str, Balance], anomalies: Anomalies, kind: str,
    when: str,
) -> None:  # fmt: skip
    for account in sorted(set(got) | set(expected)):
        if got.get(account) != expected.get(account):
            anomalies.add(kind, f"{account} {when}: read model {got.get(account)}, "
                          f"log {expected.get(account)}")  # fmt: skip


async def resume(
    target: Target, accounts: list[str]
) -> tuple[dict[str, tuple[Account, int]], dict[str, Balance]]:
    """What the next child would start from: the engine's recovered accounts, and the read
    model once the projection has resumed from its offset and caught up."""
    engine = await build_engine(target.open_store())
    async with engine:
        status = await engine.wait_for_projection(NAME, timeout=60)
        if status.last_error is not None or status.state is not ea.ProjectionState.RUNNING:
            raise RuntimeError(f"the projection did not resume: {status}")
        recovered = {a: await engine.get_state("account", a, timeout=30) for a in accounts}
    store = target.open_store()
    try:
        return recovered, await read_balances(store)
    finally:
        with contextlib.suppress(Exception):
            await store.close()
