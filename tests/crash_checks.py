"""The crash campaign's checks: after a kill, the store holds exactly what was acknowledged,
streams are whole, states equal their events, and the read model agrees with the log."""

from __future__ import annotations

import contextlib
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass

from crash_records import Anomalies, CommandAck, Target
from eventactors_examples.bank.app import build_engine
from eventactors_examples.bank.balances import NAME, Balance, read_balances
from eventactors_examples.bank.domain import Account, Closed, Deposited, Opened, Withdrawn
from msgspec.structs import replace

import eventactors as ea

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
