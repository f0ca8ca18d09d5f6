"""Serializers (msgspec JSON, protobuf) and UUIDv7 event ids."""

from __future__ import annotations

import dataclasses
import itertools
import re
import sqlite3
import time
import types
import uuid
from pathlib import Path
from typing import Any

import msgspec
import pytest
from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

import eventactors as ea
from eventactors import _ids
from eventactors._ids import uuid7

# -- JsonSerializer ---------------------------------------------------------------------------


class Point(msgspec.Struct, frozen=True):
    x: int
    y: int


class Shipment(msgspec.Struct, frozen=True):
    order_id: str
    items: tuple[str, ...]
    quantities: dict[str, int]
    destination: Point
    note: str | None = None
    express: bool = False
    weight_kg: float = 0.0


@dataclasses.dataclass(frozen=True)
class Refund:
    order_id: str
    cents: int
    reasons: list[str] = dataclasses.field(default_factory=list)
    approved_by: str | None = None


class Renamed(msgspec.Struct, frozen=True):
    __type_name__ = "v1.Renamed"
    value: int


class RenamedChild(Renamed, frozen=True):
    extra: str = ""


class Opaque(msgspec.Struct):
    thing: object


def twin_classes() -> tuple[type, type]:
    """Two distinct classes that both default to the stored name "Twin"."""

    def make(field_type: type) -> type:
        return msgspec.defstruct("Twin", [("value", field_type)])

    return make(int), make(str)


def test_json_round_trips_structs() -> None:
    serializer = ea.JsonSerializer()
    assert serializer.register(Shipment) == "Shipment"
    assert serializer.register(Point) == "Point"
    value = Shipment(
        order_id="o-1",
        items=("book", "pen"),
        quantities={"book": 2, "pen": 10},
        destination=Point(3, -4),
        note="leave at door ✓",
        express=True,
        weight_kg=1.25,
    )
    payload = serializer.encode(value)
    assert isinstance(payload, bytes)
    decoded = serializer.decode(serializer.type_name(Shipment), payload)
    assert type(decoded) is Shipment
    assert decoded == value
    assert serializer.decode("Point", serializer.encode(Point(1, 2))) == Point(1, 2)


def test_json_round_trips_dataclasses() -> None:
    serializer = ea.JsonSerializer()
    assert serializer.register(Refund) == "Refund"
    for value in (Refund("o-1", 1999, ["late", "damaged"], "bob"), Refund("o-2", 0)):
        decoded = serializer.decode("Refund", serializer.encode(value))
        assert type(decoded) is Refund
        assert decoded == value


def test_json_payload_is_readable_utf8_json() -> None:
    serializer = ea.JsonSerializer()
    serializer.register(Point)
    assert serializer.is_text is True
    assert serializer.encode(Point(1, 2)) == b'{"x":1,"y":2}'


def test_json_refuses_a_second_class_under_a_taken_name() -> None:
    first, second = twin_classes()
    serializer = ea.JsonSerializer()
    assert serializer.register(first) == "Twin"
    with pytest.raises(ea.SerializationError, match="'Twin'"):
        serializer.register(second)
    # The first registration is intact, and registering the same class again is harmless.
    assert serializer.register(first) == "Twin"
    assert serializer.type_name(first) == "Twin"
    assert not serializer.is_registered(second)
    assert serializer.decode("Twin", b'{"value":5}') == first(5)


def test_json_refuses_an_explicit_name_that_is_taken() -> None:
    serializer = ea.JsonSerializer()
    serializer.register(Point, "geo.Point")
    with pytest.raises(ea.SerializationError, match=r"'geo\.Point'"):
        serializer.register(Refund, "geo.Point")
    assert serializer.decode("geo.Point", b'{"x":0,"y":9}') == Point(0, 9)


def test_json_uses_type_name_class_attribute() -> None:
    serializer = ea.JsonSerializer()
    assert serializer.register(Renamed) == "v1.Renamed"
    assert serializer.type_name(Renamed) == "v1.Renamed"
    assert serializer.decode("v1.Renamed", serializer.encode(Renamed(7))) == Renamed(7)
    with pytest.raises(ea.SerializationError, match="'Renamed'"):
        serializer.decode("Renamed", b'{"value":7}')
    # The stored name is not inherited: a subclass does not collide with its parent.
    assert serializer.register(RenamedChild) == "RenamedChild"


def test_json_decoding_an_unknown_name_names_it() -> None:
    serializer = ea.JsonSerializer()
    serializer.register(Point)
    with pytest.raises(ea.SerializationError, match=r"'shop\.Vanished'"):
        serializer.decode("shop.Vanished", b'{"x":1,"y":2}')


@pytest.mark.parametrize(
    "payload",
    [b"not json{", b"", b'{"x":1', b'{"x":"one","y":2}', b'{"y":2}', b"[1,2]", b"\xff\xfe"],
    ids=["garbage", "empty", "truncated", "wrong-type", "missing-field", "array", "not-utf8"],
)
def test_json_decoding_bad_bytes_fails_cleanly(payload: bytes) -> None:
    serializer = ea.JsonSerializer()
    serializer.register(Point)
    with pytest.raises(ea.SerializationError, match="'Point'"):
        serializer.decode("Point", payload)


def test_json_encoding_an_unencodable_value_fails_cleanly() -> None:
    serializer = ea.JsonSerializer()
    serializer.register(Opaque)
    with pytest.raises(ea.SerializationError, match="Opaque"):
        serializer.encode(Opaque(object()))
    # The serializer still works afterwards.
    assert serializer.encode(Opaque(3)) == b'{"thing":3}'


def test_json_refuses_types_it_cannot_serialize() -> None:
    class Plain:
        pass

    serializer = ea.JsonSerializer()
    assert not serializer.supports(Plain)
    with pytest.raises(ea.SerializationError):
        serializer.register(Plain)
    with pytest.raises(ea.SerializationError, match="Plain"):
        serializer.type_name(Plain)


# -- ProtobufSerializer with messages built at runtime ----------------------------------------


def _bank_v1_messages() -> dict[str, type]:
    field = descriptor_pb2.FieldDescriptorProto
    proto = descriptor_pb2.FileDescriptorProto(
        name="tests/bank/v1/bank.proto", package="bank.v1", syntax="proto3"
    )
    layouts = {
        "AccountState": [("owner", field.TYPE_STRING), ("balance", field.TYPE_INT64)],
        "Opened": [("owner", field.TYPE_STRING)],
        "Deposited": [("amount", field.TYPE_INT64)],
    }
    for message_name, fields in layouts.items():
        message = proto.message_type.add(name=message_name)
        for number, (field_name, field_type) in enumerate(fields, start=1):
            message.field.add(
                name=field_name, number=number, type=field_type, label=field.LABEL_OPTIONAL
            )
    pool = descriptor_pool.DescriptorPool()
    pool.Add(proto)
    return {
        name: message_factory.GetMessageClass(pool.FindMessageTypeByName(f"bank.v1.{name}"))
        for name in layouts
    }


PB = _bank_v1_messages()
AccountState, PbOpened, PbDeposited = PB["AccountState"], PB["Opened"], PB["Deposited"]


def test_protobuf_names_types_by_full_proto_name_and_round_trips() -> None:
    serializer = ea.ProtobufSerializer()
    assert serializer.is_text is False
    assert serializer.register(AccountState) == "bank.v1.AccountState"
    assert serializer.register(PbOpened) == "bank.v1.Opened"
    assert serializer.register(PbDeposited) == "bank.v1.Deposited"
    assert serializer.type_name(PbDeposited) == "bank.v1.Deposited"
    for value in (AccountState(owner="ann", balance=-(2**40)), PbOpened(owner="ann"),
                  PbDeposited(amount=125)):  # fmt: skip
        payload = serializer.encode(value)
        assert payload == value.SerializeToString()
        decoded = serializer.decode(value.DESCRIPTOR.full_name, payload)
        assert type(decoded) is type(value)
        assert decoded == value


def test_protobuf_errors_are_serialization_errors() -> None:
    serializer = ea.ProtobufSerializer()
    serializer.register(PbDeposited)
    with pytest.raises(ea.SerializationError, match=r"'bank\.v1\.Withdrawn'"):
        serializer.decode("bank.v1.Withdrawn", b"")
    with pytest.raises(ea.SerializationError, match=r"'bank\.v1\.Deposited'"):
        serializer.decode("bank.v1.Deposited", b"\xff\xff\xff\xff")
    with pytest.raises(ea.SerializationError):
        serializer.encode(Point(1, 2))
    assert not serializer.supports(Point)
    with pytest.raises(ea.SerializationError):
        serializer.register(Point)
    # And JSON does not take protobuf classes.
    assert not ea.JsonSerializer().supports(PbDeposited)


class OpenAccount(msgspec.Struct, frozen=True):
    owner: str


class DepositMoney(msgspec.Struct, frozen=True):
    amount: int


class ProtoAccountBehavior(ea.EventSourcedBehavior[Any]):
    """The bank account again, with protobuf state and events and msgspec commands."""

    commands = (OpenAccount, DepositMoney)
    events = (PbOpened, PbDeposited)

    def initial_state(self) -> Any:
        return AccountState()

    def handle_command(self, state: Any, command: Any) -> Any:
        match command:
            case OpenAccount(owner=owner):
                if state.owner:
                    raise ea.Rejected("already open")
                return PbOpened(owner=owner)
            case DepositMoney(amount=amount):
                return [PbDeposited(amount=amount), PbDeposited(amount=1)]
        return None

    def handle_event(self, state: Any, event: Any) -> Any:
        new = AccountState()
        new.CopyFrom(state)
        if isinstance(event, PbOpened):
            new.owner = event.owner
        else:
            new.balance += event.amount
        return new


async def test_protobuf_state_and_events_survive_a_restart_on_sqlite(tmp_path: Path) -> None:
    path = tmp_path / "proto.db"
    engine = ea.Engine(store=ea.SQLiteStore(path, serializer=ea.ProtobufSerializer()))
    engine.register("account", ProtoAccountBehavior, snapshot_every=3)
    async with engine:
        await engine.send("account", "p1", OpenAccount("ann"), timeout=5)
        for amount in (100, 250, 4000):
            reply = await engine.send("account", "p1", DepositMoney(amount), timeout=5)
        await engine.send("account", "p2", OpenAccount("bob"), timeout=5)
        with pytest.raises(ea.Rejected):
            await engine.send("account", "p2", OpenAccount("eve"), timeout=5)
        assert reply.revision == 7
        assert reply.state == AccountState(owner="ann", balance=4353)
        assert [e.event_type for e in reply.events] == ["bank.v1.Deposited"] * 2
        before = await engine.get_state("account", "p1")
        assert before == (AccountState(owner="ann", balance=4353), 7)

    restarted = ea.Engine(store=ea.SQLiteStore(path, serializer=ea.ProtobufSerializer()))
    restarted.register("account", ProtoAccountBehavior, snapshot_every=3)
    async with restarted:
        assert await restarted.get_state("account", "p1") == before
        assert await restarted.get_state("account", "p2") == (AccountState(owner="bob"), 1)
        stream = await restarted.store.read_stream("account|p1")
        assert [e.event for e in stream] == [
            PbOpened(owner="ann"),
            PbDeposited(amount=100),
            PbDeposited(amount=1),
            PbDeposited(amount=250),
            PbDeposited(amount=1),
            PbDeposited(amount=4000),
            PbDeposited(amount=1),
        ]

    connection = sqlite3.connect(path)
    try:
        rows = connection.execute(
            "SELECT event_type, payload, typeof(payload) FROM ea_events "
            "WHERE persistence_id = 'account|p1' ORDER BY sequence_number"
        ).fetchall()
        snapshots = connection.execute(
            "SELECT sequence_number, state_type, payload, typeof(payload) FROM ea_snapshots "
            "WHERE persistence_id = 'account|p1' ORDER BY sequence_number"
        ).fetchall()
    finally:
        connection.close()
    assert [(name, kind) for name, _, kind in rows] == [("bank.v1.Opened", "blob")] + [
        ("bank.v1.Deposited", "blob")
    ] * 6
    assert all(isinstance(payload, bytes) for _, payload, _ in rows)
    assert PbOpened.FromString(rows[0][1]) == PbOpened(owner="ann")
    assert PbDeposited.FromString(rows[5][1]) == PbDeposited(amount=4000)
    # Snapshots (taken at revisions 3 and 7: every=3, deposits write 2 events) are binary too.
    assert [(seq, name, kind) for seq, name, _, kind in snapshots] == [
        (3, "bank.v1.AccountState", "blob"),
        (7, "bank.v1.AccountState", "blob"),
    ]
    assert AccountState.FromString(snapshots[-1][2]) == AccountState(owner="ann", balance=4353)


# -- uuid7 ------------------------------------------------------------------------------------

UUID_TEXT = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}")


def test_uuid7_layout() -> None:
    before_ms = time.time_ns() // 1_000_000
    text = uuid7()
    after_ms = time.time_ns() // 1_000_000
    assert UUID_TEXT.fullmatch(text), text
    value = uuid.UUID(text)
    assert str(value) == text
    assert value.version == 7
    assert (value.int >> 76) & 0xF == 0x7
    assert (value.int >> 62) & 0b11 == 0b10
    assert value.variant == uuid.RFC_4122
    # The top 48 bits are the Unix time in milliseconds (never behind the clock).
    assert before_ms <= value.int >> 80 <= after_ms + 50


def test_uuid7_ids_are_unique_and_increase_in_a_tight_loop() -> None:
    start_ms = time.time_ns() // 1_000_000
    ids = [uuid7() for _ in range(10_000)]
    end_ms = time.time_ns() // 1_000_000
    assert len(set(ids)) == len(ids)
    assert all(len(text) == 36 and UUID_TEXT.fullmatch(text) for text in ids)
    assert all(earlier < later for earlier, later in itertools.pairwise(ids))
    # String order is numeric order, and so time order.
    numbers = [uuid.UUID(text).int for text in ids]
    assert numbers == sorted(numbers)
    assert start_ms <= numbers[0] >> 80
    assert numbers[-1] >> 80 <= end_ms + 50


def test_uuid7_stays_ordered_when_the_counter_overflows(monkeypatch: pytest.MonkeyPatch) -> None:
    """With the clock standing still, 5,000 ids exhaust the 12-bit counter of one millisecond."""
    monkeypatch.setattr(_ids, "_last_ms", _ids._last_ms)  # restored after the test
    monkeypatch.setattr(_ids, "_counter", _ids._counter)
    frozen_ms = max(time.time_ns() // 1_000_000, _ids._last_ms) + 1
    monkeypatch.setattr(_ids, "time", types.SimpleNamespace(time_ns=lambda: frozen_ms * 10**6))
    ids = [uuid7() for _ in range(5_000)]
    assert len(set(ids)) == len(ids)
    assert ids == sorted(ids)
    assert all(earlier < later for earlier, later in itertools.pairwise(ids))
    millis = [uuid.UUID(text).int >> 80 for text in ids]
    assert millis[0] == frozen_ms
    assert frozen_ms < millis[-1] <= frozen_ms + 3
    assert all(uuid.UUID(text).version == 7 for text in ids)
