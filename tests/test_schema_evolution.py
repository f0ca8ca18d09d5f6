"""Schema evolution: events written by four generations of a wallet's code, read by the last.

`Credited` went through four definitions. Version 1 stored whole euros as `amount`; version 2
stored cents as `amount_cents`; version 3 added `currency`; version 4 added `note` and renamed
the class to `FundsCredited`, keeping the old name as an alias. Each generation writes events
with its own engine on the same database; the last reads them all, through the three
upcasters, in recovery, projections, `events()` and time travel.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

import msgspec
import pytest
from identity_behaviors import backend

import eventactors as ea
from eventactors.records import persistence_id_of
from eventactors.upcasting import unregister_upcaster

pytestmark = pytest.mark.timeout(60)


class Credit(msgspec.Struct, frozen=True):
    cents: int


class Wallet(msgspec.Struct, frozen=True):
    balance_cents: int = 0
    history: tuple[str, ...] = ()  # one "<cents> <currency> <note>" per credit


class CreditedV1(msgspec.Struct, frozen=True):
    __type_name__ = "evo.Credited"
    amount: int  # whole euros


class CreditedV2(msgspec.Struct, frozen=True):
    __type_name__ = "evo.Credited"
    __event_version__ = 2
    amount_cents: int


class CreditedV3(msgspec.Struct, frozen=True):
    __type_name__ = "evo.Credited"
    __event_version__ = 3
    amount_cents: int
    currency: str


class FundsCredited(msgspec.Struct, frozen=True):
    """Version 4, renamed: its old events are stored as "evo.Credited"."""

    __type_name__ = "evo.FundsCredited"
    __type_aliases__ = ("evo.Credited",)
    __event_version__ = 4
    amount_cents: int
    currency: str
    note: str


@ea.upcaster("evo.Credited", from_version=1)
def euros_to_cents(payload: dict[str, Any]) -> dict[str, Any]:
    return {"amount_cents": payload["amount"] * 100}


@ea.upcaster("evo.Credited", from_version=2)
def add_currency(payload: dict[str, Any]) -> dict[str, Any]:
    return {**payload, "currency": "EUR"}


@ea.upcaster(FundsCredited, from_version=3)  # under the new name: found through the alias
def add_note(payload: dict[str, Any]) -> dict[str, Any]:
    return {**payload, "note": ""}


def wallet_behavior(event_class: type, make: Any, fold: Any) -> type:
    class WalletBehavior(ea.EventSourcedBehavior[Wallet]):
        events = (event_class,)

        def initial_state(self) -> Wallet:
            return Wallet()

        def handle_command(self, state: Wallet, command: Credit) -> Any:
            return make(command.cents)

        def handle_event(self, state: Wallet, event: Any) -> Wallet:
            return fold(state, event)

    return WalletBehavior


def credited(state: Wallet, cents: int, currency: str, note: str) -> Wallet:
    return Wallet(state.balance_cents + cents, (*state.history, f"{cents} {currency} {note}"))


GENERATIONS = {
    1: wallet_behavior(
        CreditedV1,
        lambda cents: CreditedV1(cents // 100),
        lambda s, e: credited(s, e.amount * 100, "?", ""),
    ),
    2: wallet_behavior(
        CreditedV2,
        lambda cents: CreditedV2(cents),
        lambda s, e: credited(s, e.amount_cents, "?", ""),
    ),
    3: wallet_behavior(
        CreditedV3,
        lambda cents: CreditedV3(cents, "GBP"),
        lambda s, e: credited(s, e.amount_cents, e.currency, ""),
    ),
    4: wallet_behavior(
        FundsCredited,
        lambda cents: FundsCredited(cents, "USD", "v4"),
        lambda s, e: credited(s, e.amount_cents, e.currency, e.note),
    ),
}
CURRENT = GENERATIONS[4]

# What the version 4 code must see: the stored facts, brought up to date.
EXPECTED_EVENTS = [
    FundsCredited(500, "EUR", ""),  # written by version 1 as 5 euros
    FundsCredited(200, "EUR", ""),  # version 1
    FundsCredited(350, "EUR", ""),  # version 2
    FundsCredited(125, "GBP", ""),  # version 3
    FundsCredited(999, "USD", "v4"),  # version 4
]
EXPECTED_STATE = Wallet(
    sum(event.amount_cents for event in EXPECTED_EVENTS),
    tuple(f"{e.amount_cents} {e.currency} {e.note}" for e in EXPECTED_EVENTS),
)


@pytest.fixture(params=["sqlite", "postgres"])
async def db(request: Any, tmp_path: Any) -> Any:
    async with backend(request.param, tmp_path) as opened:
        yield opened


async def write_history(db: Any) -> None:
    """Each generation's engine, in turn, on the same database."""
    writes = [(1, 500), (1, 200), (2, 350), (3, 125), (4, 999)]
    for generation, cents in writes:
        engine = ea.Engine(store=db.open())
        engine.register("wallet", GENERATIONS[generation])
        async with engine:
            await engine.send("wallet", "w", Credit(cents))


async def test_the_current_code_replays_events_of_every_older_version(db: Any) -> None:
    await write_history(db)
    engine = ea.Engine(store=db.open())
    engine.register("wallet", CURRENT)
    async with engine:
        state, revision = await engine.get_state("wallet", "w")
        assert (state, revision) == (EXPECTED_STATE, 5)
        events = [envelope async for envelope in engine.events("wallet", "w")]
    assert [e.event for e in events] == EXPECTED_EVENTS
    assert [e.event_version for e in events] == [1, 1, 2, 3, 4]
    # The stored names are history too: old events keep the name they were written under.
    assert [e.event_type for e in events] == ["evo.Credited"] * 4 + ["evo.FundsCredited"]


async def test_time_travel_and_projections_see_upcast_events(db: Any) -> None:
    await write_history(db)
    engine = ea.Engine(store=db.open())
    engine.register("wallet", CURRENT)
    seen: list[Any] = []
    async with engine:
        state, _ = await engine.get_state("wallet", "w", at_revision=3)
        assert state == Wallet(1050, ("500 EUR ", "200 EUR ", "350 EUR "))
        await engine.add_projection("credits", lambda e: seen.append(e.event), from_start=True)
        await engine.wait_for_projection("credits")
    assert seen == EXPECTED_EVENTS


async def test_a_subscriber_decodes_old_events_read_from_the_log(db: Any) -> None:
    await write_history(db)
    store = db.open()
    engine = ea.Engine(store=store)
    engine.register("wallet", CURRENT)
    async with engine:
        envelopes = await store.read_all(0, limit=10)
    assert [e.event for e in envelopes] == EXPECTED_EVENTS


async def test_recovery_from_a_stored_version_needs_the_whole_chain(db: Any) -> None:
    await write_history(db)
    unregister_upcaster("evo.Credited", 2)
    try:
        engine = ea.Engine(store=db.open())
        engine.register("wallet", CURRENT)
        async with engine:
            with pytest.raises(ea.SerializationError) as caught:
                await engine.get_state("wallet", "w")
    finally:
        ea.upcaster("evo.Credited", from_version=2)(add_currency)
    message = str(caught.value)
    assert "'evo.Credited' version 1" in message
    assert "no upcaster from version 2" in message
    assert "wallet|w" in message


async def test_an_event_newer_than_the_running_code_is_refused_by_name(db: Any) -> None:
    await write_history(db)
    engine = ea.Engine(store=db.open())
    engine.register("wallet", GENERATIONS[2])  # an old deployment reading newer events
    async with engine:
        events = [e async for e in engine.events("wallet", "w")]
        assert [e.event for e in events[:3]] == [CreditedV2(500), CreditedV2(200), CreditedV2(350)]
        with pytest.raises(ea.SerializationError) as caught:
            _ = events[3].event
    assert str(caught.value).startswith(
        "cannot decode 'evo.Credited' version 3: the registered class is version 2, older "
        "than the code that wrote the event (stream 'wallet|w', sequence 4"
    )


async def test_a_failing_upcaster_is_named_in_the_error(tmp_path: Any) -> None:
    class Noted(msgspec.Struct, frozen=True):
        __type_name__ = "evo.Noted"
        __event_version__ = 2
        text: str

    class NotedV1(msgspec.Struct, frozen=True):
        __type_name__ = "evo.Noted"
        words: list[str]

    @ea.upcaster("evo.Noted", from_version=1)
    def join_words(payload: dict[str, Any]) -> dict[str, Any]:
        return {"text": " ".join(payload["words"])}  # KeyError on the corrupt event below

    path = tmp_path / "noted.db"
    try:
        old = ea.SQLiteStore(path)
        old.serializer.register(NotedV1)
        record = ea.EventRecord(
            event_id="0190b1c4-0000-7000-8000-000000000001",
            persistence_id="note|n",
            entity_type="note",
            entity_id="n",
            sequence_number=1,
            event_type="evo.Noted",
            payload=b'{"word": "typo"}',
            timestamp=datetime.now(UTC),
        )
        await old.append("note|n", [record], 0)
        await old.close()
        store = ea.SQLiteStore(path)
        store.serializer.register(Noted)
        (envelope,) = await store.read_stream("note|n")
        with pytest.raises(ea.SerializationError) as caught:
            _ = envelope.event
        await store.close()
    finally:
        unregister_upcaster("evo.Noted", 1)
    message = str(caught.value)
    assert "join_words" in message and "KeyError" in message
    assert "note|n" in message


def test_upcaster_registration_refuses_bad_input() -> None:
    with pytest.raises(ValueError, match="from_version must be an int >= 1, got 0"):
        ea.upcaster("evo.Credited", from_version=0)
    with pytest.raises(ValueError, match=r"already registered: .*euros_to_cents"):
        ea.upcaster("evo.Credited", from_version=1)(lambda payload: payload)
    with pytest.raises(TypeError, match="event class or a type name"):
        ea.upcaster("", from_version=1)


def test_a_malformed_version_or_alias_is_refused_at_registration() -> None:
    class Bad(msgspec.Struct, frozen=True):
        __event_version__ = "2"

    class BadAliases(msgspec.Struct, frozen=True):
        __type_aliases__ = "OldName"

    for event_class, complaint in [(Bad, "__event_version__ must be an int >= 1, got '2'"),
                                   (BadAliases, "__type_aliases__ must be a tuple")]:  # fmt: skip
        behavior = wallet_behavior(event_class, lambda cents: None, lambda s, e: s)
        engine = ea.Engine()
        with pytest.raises(ea.SerializationError, match=complaint):
            engine.register("wallet", behavior)


async def test_stored_event_versions_survive_the_store(db: Any) -> None:
    await write_history(db)
    store = db.open()
    store.serializer.register(FundsCredited)
    try:
        payload_rows = await store.read_stream_payloads(persistence_id_of("wallet", "w"))
        assert [row[3] for row in payload_rows] == [1, 1, 2, 3, 4]
    finally:
        await store.close()


class Coin(msgspec.Struct, frozen=True):
    __type_name__ = "evo.Coin"
    n: int


class OldPurse(msgspec.Struct, frozen=True):
    __type_name__ = "evo.Purse"
    coins: tuple[int, ...] = ()


class NewPurse(msgspec.Struct, frozen=True):
    __type_name__ = "evo.Purse"
    total: int  # required: an old snapshot, which has no total, does not decode


class OldPurseBehavior(ea.EventSourcedBehavior[OldPurse]):
    events = (Coin,)

    def initial_state(self) -> OldPurse:
        return OldPurse()

    def handle_command(self, state: OldPurse, command: Credit) -> Coin:
        return Coin(command.cents)

    def handle_event(self, state: OldPurse, event: Coin) -> OldPurse:
        return OldPurse((*state.coins, event.n))


class NewPurseBehavior(ea.EventSourcedBehavior[NewPurse]):
    events = (Coin,)

    def initial_state(self) -> NewPurse:
        return NewPurse(0)

    def handle_command(self, state: NewPurse, command: Credit) -> Coin:
        return Coin(command.cents)

    def handle_event(self, state: NewPurse, event: Coin) -> NewPurse:
        return NewPurse(state.total + event.n)


async def test_a_snapshot_of_an_older_state_shape_is_replaced_by_replay(
    db: Any, caplog: pytest.LogCaptureFixture
) -> None:
    engine = ea.Engine(store=db.open())
    engine.register("purse", OldPurseBehavior, snapshot_every=1)
    async with engine:
        for n in (1, 2, 3):
            await engine.send("purse", "p", Credit(n))

    engine = ea.Engine(store=db.open())
    engine.register("purse", NewPurseBehavior, snapshot_every=1)
    async with engine:
        assert await engine.get_state("purse", "p") == (NewPurse(6), 3)
        assert await engine.get_state("purse", "p", at_revision=2) == (NewPurse(3), 2)
        reply = await engine.send("purse", "p", Credit(4))
        assert (reply.state, reply.revision) == (NewPurse(10), 4)
    assert "ignoring the snapshot of purse|p, which no longer decodes" in caplog.text


async def test_a_snapshot_that_no_longer_decodes_stands_when_its_events_are_gone(
    tmp_path: Any,
) -> None:
    """Replay cannot replace it, so its own error (a changed class, or with encryption a
    wrong key) is the one reported, not a gap in the stream."""
    path = tmp_path / "purse.db"
    engine = ea.Engine(store=ea.SQLiteStore(path))
    engine.register("purse", OldPurseBehavior, snapshot_every=2)
    async with engine:
        for n in (1, 2):
            await engine.send("purse", "p", Credit(n))
        await wait_until_snapshot(engine.store, "purse|p", 2)
        await engine.store.delete_events_to("purse|p", 2)

    engine = ea.Engine(store=ea.SQLiteStore(path))
    engine.register("purse", NewPurseBehavior)
    async with engine:
        with pytest.raises(ea.SerializationError, match=r"evo\.Purse.*snapshot of stream"):
            await engine.get_state("purse", "p")


async def wait_until_snapshot(store: Any, persistence_id: str, sequence: int) -> None:
    """Snapshots are written after the reply: wait for this one, with a deadline."""
    deadline = asyncio.get_running_loop().time() + 10
    while (snapshot := await store.load_snapshot(persistence_id)) is None or (
        snapshot.sequence_number < sequence
    ):
        assert asyncio.get_running_loop().time() < deadline, "the snapshot was never written"
        await asyncio.sleep(0.01)


class SetProfile(msgspec.Struct, frozen=True):
    name: str
    age: int


class Profile(msgspec.Struct, frozen=True):
    """A durable state whose class carries a version (it is an event type elsewhere)."""

    __type_name__ = "evo.Profile"
    __event_version__ = 2
    name: str = ""
    age: int = 0


class ProfileBehavior(ea.DurableStateBehavior[Profile]):
    def initial_state(self) -> Profile:
        return Profile()

    def handle_command(self, state: Profile, command: SetProfile) -> Profile:
        return Profile(command.name, command.age)


async def test_states_are_not_upcast_whatever_their_class_declares(tmp_path: Any) -> None:
    """States are stored unversioned and read as the current definition: an upcaster for
    the class's events must never run over a state the current code wrote."""

    @ea.upcaster("evo.Profile", from_version=1)
    def forget_age(payload: dict[str, Any]) -> dict[str, Any]:
        return {**payload, "age": 0}

    try:
        for restarted in (False, True):  # written, then read back by a fresh engine
            engine = ea.Engine(store=ea.SQLiteStore(tmp_path / "profile.db"))
            engine.register("profile", ProfileBehavior)
            async with engine:
                if not restarted:
                    await engine.send("profile", "ann", SetProfile("Ann", 41))
                assert await engine.get_state("profile", "ann") == (Profile("Ann", 41), 1)
    finally:
        unregister_upcaster("evo.Profile", 1)


def test_an_upcaster_registered_by_protobuf_class_uses_its_proto_name() -> None:
    from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

    field = descriptor_pb2.FieldDescriptorProto
    proto = descriptor_pb2.FileDescriptorProto(
        name="evo/bank.proto", package="evo.bank.v2", syntax="proto3"
    )
    message = proto.message_type.add(name="Deposited")
    message.field.add(name="amount", number=1, type=field.TYPE_INT64, label=field.LABEL_OPTIONAL)
    pool = descriptor_pool.DescriptorPool()
    pool.Add(proto)
    deposited = message_factory.GetMessageClass(pool.FindMessageTypeByName("evo.bank.v2.Deposited"))
    deposited.__event_version__ = 2
    serializer = ea.ProtobufSerializer()
    name = serializer.register(deposited)
    seen: list[bytes] = []

    @ea.upcaster(deposited, from_version=1)
    def v1_to_v2(payload: bytes) -> bytes:
        seen.append(payload)
        return payload

    try:
        stored = deposited(amount=5).SerializeToString()
        assert serializer.decode(name, stored, 1).amount == 5
        assert seen == [stored]
    finally:
        unregister_upcaster(deposited, 1)
