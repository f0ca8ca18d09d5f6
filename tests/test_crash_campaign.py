"""The crash campaign in short mode (the long one is `python -m benchmarks.crash_campaign`):
the bank workload SIGKILLed at random moments and restarted, on an SQLite file and on
PostgreSQL, with no anomaly allowed; and each check shown to fail on a database where its
anomaly was planted, since a checker that cannot fail proves nothing."""

from __future__ import annotations

import asyncio
import sqlite3
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import pytest
from crash_campaign import (
    CampaignResult,
    CommandAck,
    KillPlan,
    Target,
    check_store,
    run_campaign,
    run_cycle,
)
from crash_records import Anomalies
from eventactors_examples.bank.domain import Account
from postgres_support import DSN

import eventactors as ea

pytestmark = pytest.mark.timeout(180)
KILLS = 8
Campaign = tuple[Path, list[CommandAck]]  # a database after a campaign, and its acks


def assert_clean(result: CampaignResult) -> None:
    summary = result.summary()
    assert result.anomalies.counts == {}, summary
    assert result.kills >= KILLS, summary
    assert result.acknowledged >= 500, summary  # enough acks that passing means something
    assert {"D", "W", "R"} <= {ack.kind for ack in result.acks}, summary


async def test_no_anomaly_across_kills_on_an_sqlite_file(tmp_path: Path) -> None:
    target = Target(str(tmp_path / "bank.db"))
    assert_clean(await run_campaign(target, kills=KILLS, seed=11, workdir=tmp_path))


async def test_no_anomaly_across_kills_on_postgres(pg_schema: str, tmp_path: Path) -> None:
    target = Target(DSN, pg_schema)
    assert_clean(await run_campaign(target, kills=KILLS, seed=12, workdir=tmp_path))


def test_a_child_that_dies_on_its_own_is_reported(tmp_path: Path) -> None:
    """A database the child cannot open: it fails at start, before any kill."""
    plan = KillPlan("load", delay=5.0)
    log = tmp_path / "child.log"
    cycle = run_cycle(
        Target(str(tmp_path)), 1, plan, seed=1, clients=2, accounts=2, log=log, timeout=30
    )
    assert not cycle.killed and cycle.failure is not None
    assert cycle.failure.startswith("child_failed: exit code 1"), cycle.failure


# -- planted anomalies ---------------------------------------------------------------------


@pytest.fixture(scope="module")
def campaign(tmp_path_factory: pytest.TempPathFactory) -> Campaign:
    """A database after a short clean campaign, and the acks it saw, for the plants to copy."""
    workdir = tmp_path_factory.mktemp("planted")
    database = workdir / "bank.db"
    result = asyncio.run(run_campaign(Target(str(database)), kills=2, seed=5, workdir=workdir))
    assert result.anomalies.counts == {}, result.summary()
    return database, result.acks


def sql(database: Path, *statements: tuple[str, tuple[object, ...]]) -> None:
    connection = sqlite3.connect(database)
    try:
        with connection:
            for statement, parameters in statements:
                connection.execute(statement, parameters)
    finally:
        connection.close()


def accepted(acks: list[CommandAck], kind: str, database: Path) -> CommandAck:
    """An accepted ack of `kind` whose event is neither first nor last in its stream."""
    connection = sqlite3.connect(database)
    try:
        highest = dict(
            connection.execute("SELECT persistence_id, highest_sequence FROM ea_streams")
        )
    finally:
        connection.close()
    return next(
        ack for ack in acks
        if ack.kind == kind and 1 < ack.revision < highest[f"account|{ack.account}"]
    )  # fmt: skip


def copy_event(database: Path, event_id: str, *, command_id: str, same_number: bool) -> None:
    """Stores a copy of an event under a new event id: at the same sequence number, or after
    its stream's last."""
    number = "e.sequence_number" if same_number else "s.highest_sequence + 1"
    columns = "entity_type, entity_id, event_type, payload, timestamp, tags, metadata"
    sql(
        database,
        (
            f"INSERT INTO ea_events (persistence_id, sequence_number, event_id, {columns}, "
            f"command_id, correlation_id) SELECT e.persistence_id, {number}, ?, "
            f"{', '.join('e.' + c for c in columns.split(', '))}, ?, ? FROM ea_events e "
            "JOIN ea_streams s USING (persistence_id) WHERE e.event_id = ?",
            (str(uuid.uuid4()), command_id, command_id, event_id),
        ),
        (
            "UPDATE ea_streams SET highest_sequence = (SELECT max(sequence_number) FROM ea_events "
            "WHERE persistence_id = ea_streams.persistence_id)",
            (),
        ),
    )


def drop_stream_uniqueness(database: Path) -> None:
    """Rebuilds ea_events without UNIQUE (persistence_id, sequence_number), so that a
    duplicate sequence number can be planted at all."""
    connection = sqlite3.connect(database)
    try:
        (ddl,) = connection.execute(
            "SELECT sql FROM sqlite_master WHERE name = 'ea_events'"
        ).fetchone()
        loose = ddl.replace(",\n    UNIQUE (persistence_id, sequence_number)", "")
        assert loose != ddl, ddl
        connection.executescript(
            "BEGIN; ALTER TABLE ea_events RENAME TO planted_old; "
            f"{loose}; INSERT INTO ea_events SELECT * FROM planted_old; DROP TABLE planted_old; "
            "COMMIT;"
        )
    finally:
        connection.close()


def plant_duplicate_number(database: Path, event_id: str) -> None:
    drop_stream_uniqueness(database)
    copy_event(database, event_id, command_id="planted", same_number=True)


async def plant_snapshot(database: Path, acks: list[CommandAck]) -> None:
    """A newest snapshot whose balance is off by 1000."""
    store = Target(str(database)).open_store()
    account = acks[-1].account
    try:
        highest = await store.highest_sequence_number(f"account|{account}")
        await store.save_snapshot(
            ea.Snapshot(
                f"account|{account}", highest, store.serializer.type_name(Account),
                Account(f"owner-{account}", 1000, True), datetime.now(UTC),
            )
        )  # fmt: skip
    finally:
        await store.close()


Plant = Callable[[Path, list[CommandAck]], object]
PLANTS: dict[str, tuple[Plant, set[str]]] = {
    "delete an acknowledged event": (
        lambda db, acks: sql(db, ("DELETE FROM ea_events WHERE event_id = ?",
                                  (accepted(acks, "D", db).event_ids[0],))),
        {"lost_ack", "stream_gap"},
    ),
    "move a stream's last event one number up": (
        lambda db, acks: sql(db, (
            "UPDATE ea_events SET sequence_number = sequence_number + 1 WHERE global_position = "
            "(SELECT max(global_position) FROM ea_events)", ()), (
            "UPDATE ea_streams SET highest_sequence = highest_sequence + 1 WHERE persistence_id "
            "= (SELECT persistence_id FROM ea_events ORDER BY global_position DESC LIMIT 1)", ())),
        {"stream_gap"},
    ),
    "store an event twice at one sequence number": (
        lambda db, acks: plant_duplicate_number(db, accepted(acks, "D", db).event_ids[0]),
        {"stream_duplicate"},
    ),
    "store an event for a rejected command": (
        lambda db, acks: copy_event(db, accepted(acks, "D", db).event_ids[0], same_number=False,
                                    command_id=next(a for a in acks if a.kind == "R").command_id),
        {"rejected_persisted"},
    ),
    "store an accepted command's event twice": (
        lambda db, acks: copy_event(db, (ack := accepted(acks, "D", db)).event_ids[0],
                                    command_id=ack.command_id, same_number=False),
        {"duplicate_command"},
    ),
    "make a withdrawal overdraw": (
        lambda db, acks: sql(db, ("UPDATE ea_events SET payload = '{\"amount\":1000000000}' "
                                  "WHERE event_id = ?", (accepted(acks, "W", db).event_ids[0],))),
        {"overdrawn", "ack_mismatch"},
    ),
    "corrupt an event's payload": (
        lambda db, acks: sql(db, ("UPDATE ea_events SET payload = 'not json' WHERE event_id = ?",
                                  (accepted(acks, "D", db).event_ids[0],))),
        {"undecodable"},
    ),
    "corrupt a snapshot": (
        lambda db, acks: asyncio.run(plant_snapshot(db, acks)), {"state_mismatch"}
    ),
    "corrupt a read-model row": (
        lambda db, acks: sql(db, ("UPDATE bank_balances SET balance = balance + 7 "
                                  "WHERE account = ?", (acks[-1].account,))),
        {"projection_offset", "projection_mismatch"},
    ),
    "a store written by a newer version": (
        lambda db, acks: sql(db, ("UPDATE ea_schema_version SET version = 99", ())),
        {"recovery_failed"},
    ),
}  # fmt: skip


def planted_copy(campaign: Campaign, tmp_path: Path) -> Path:
    source = sqlite3.connect(campaign[0])
    copy = sqlite3.connect(tmp_path / "copy.db")
    try:
        source.backup(copy)
    finally:
        source.close()
        copy.close()
    return tmp_path / "copy.db"


def test_an_untouched_copy_reports_nothing(campaign: Campaign, tmp_path: Path) -> None:
    database = planted_copy(campaign, tmp_path)
    anomalies = Anomalies()
    checked = asyncio.run(check_store(Target(str(database)), campaign[1], anomalies))
    assert anomalies.counts == {} and checked.events > 0


@pytest.mark.parametrize("plant", list(PLANTS))
def test_the_checks_report_a_planted_anomaly(
    plant: str, campaign: Campaign, tmp_path: Path
) -> None:
    database = planted_copy(campaign, tmp_path)
    action, kinds = PLANTS[plant]
    action(database, campaign[1])
    anomalies = Anomalies()
    asyncio.run(check_store(Target(str(database)), campaign[1], anomalies))
    assert kinds <= set(anomalies.counts), (plant, dict(anomalies.counts), anomalies.examples)
