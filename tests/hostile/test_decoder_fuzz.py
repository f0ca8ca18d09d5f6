"""Every decoder of the package, fed random, truncated, mistyped and pathological bytes.

Stored payloads go through the serializers and the command log's decoder: only
`SerializationError` may come out of them, naming the type. The other decoders of outside
input keep their own documented errors: the console's command body and parameters (which
become a 400 page), NATS subject tokens (`ValueError`), and the inspection tools' payload
rendering (which never raises). Each call runs under `fuzz_support.call_within`'s deadline.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

import msgspec
import pytest
from eventactors_examples.bank.domain import Account, Deposit, Deposited, Opened
from fuzz_support import (
    SPECIAL_JSON,
    call_within,
    hostile_json,
    mangled,
    only,
)
from google.protobuf import descriptor_pb2, descriptor_pool, message_factory
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import eventactors as ea
from eventactors._inspection_data import payload_as_data
from eventactors._runtime.command_log import decode_command
from eventactors.console.command_forms import build_command
from eventactors.console.params import PageError, parse_int
from eventactors.publishers._nats_format import decode_token, encode_token
from eventactors.records import EventEnvelope

pytestmark = [
    pytest.mark.timeout(120),
    # A failing example may be a 200 KB payload: hypothesis warns that it prints it all.
    pytest.mark.filterwarnings("ignore:Generating overly large repr"),
]

FUZZ = settings(
    max_examples=250,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

# -- the JSON serializer ----------------------------------------------------------------------


class Leaf(msgspec.Struct, frozen=True):
    name: str
    when: datetime
    blob: bytes
    ratio: float


class Tree(msgspec.Struct, frozen=True):
    count: int
    label: str
    tags: tuple[str, ...] = ()
    scores: dict[str, float] = {}
    child: Leaf | None = None
    anything: Any = None
    kind: Literal["a", "b"] = "a"


@dataclass(frozen=True)
class Point:
    x: int
    y: int


JSON_TYPES: list[type] = [Tree, Leaf, Point, Account, Opened, Deposited, Deposit]
JSON_VALID = [
    Tree(3, "t", ("x", "y"), {"s": 1.5}, Leaf("l", datetime(2024, 5, 1, tzinfo=UTC), b"\x00", 2.0)),
    Tree(-(2**62), "", anything={"deep": [1, [2, [3]]]}, kind="b"),
    Leaf("é", datetime(1, 1, 1, tzinfo=UTC), b"", -0.0),
    Point(1, -1),
    Account("ann", 100, True, False),
    Opened("ann"),
    Deposited(5),
]


def json_serializer() -> ea.JsonSerializer:
    serializer = ea.JsonSerializer()
    for cls in JSON_TYPES:
        serializer.register(cls)
    return serializer


JSON = json_serializer()
JSON_NAMES = [JSON.type_name(cls) for cls in JSON_TYPES]
JSON_FIELDS = sorted(
    {field for cls in JSON_TYPES for field in getattr(cls, "__struct_fields__", ())} | {"x", "y"}
)
JSON_PAYLOADS = hostile_json([JSON.encode(value) for value in JSON_VALID], JSON_FIELDS)


def check_decode(serializer: Any, type_name: str, payload: Any) -> Any:
    """Decodes under the deadline: a value, or a SerializationError that names the type."""
    outcome = call_within(serializer.decode, type_name, payload)
    only(outcome, ea.SerializationError, given=(type_name, payload))
    if outcome.error is not None:
        assert repr(type_name) in str(outcome.error), outcome.error
    return outcome.value


@FUZZ
@given(type_name=st.sampled_from(JSON_NAMES), payload=JSON_PAYLOADS)
def test_json_decode_of_hostile_bytes_gives_a_value_or_a_serialization_error(type_name, payload):
    value = check_decode(JSON, type_name, payload)
    if value is not None:
        assert type(value).__name__ == type_name or type_name == "Point"


@pytest.mark.parametrize("payload", SPECIAL_JSON, ids=lambda p: repr(p[:20]))
@pytest.mark.parametrize("type_name", ["Tree", "Point"])
def test_json_decode_of_each_special_text(type_name, payload):
    check_decode(JSON, type_name, payload)
    check_decode(JSON, type_name, b'{"count": 1, "label": "l", "anything": ' + payload + b"}")


@pytest.mark.parametrize("payload", ["{}", 5, None, 1.5, ["x"], bytearray(b"{}"), object()])
def test_json_decode_of_a_payload_that_is_not_bytes(payload):
    check_decode(JSON, "Point", payload)


@FUZZ
@given(type_name=st.text(max_size=20), payload=st.binary(max_size=16))
def test_json_decode_of_an_unknown_type_names_it(type_name, payload):
    if type_name not in JSON_NAMES:
        outcome = call_within(JSON.decode, type_name, payload)
        assert isinstance(outcome.error, ea.SerializationError)
        assert "unknown type" in str(outcome.error)


# -- the protobuf serializer -------------------------------------------------------------------


def _item_message() -> type:
    """`fuzz.v1.Item`: scalars of each wire type, a repeated string and a recursive child."""
    field = descriptor_pb2.FieldDescriptorProto
    proto = descriptor_pb2.FileDescriptorProto(
        name="tests/hostile/fuzz.proto", package="fuzz.v1", syntax="proto3"
    )
    item = proto.message_type.add(name="Item")
    for number, name, kind, label in [
        (1, "name", field.TYPE_STRING, field.LABEL_OPTIONAL),
        (2, "count", field.TYPE_INT64, field.LABEL_OPTIONAL),
        (3, "tags", field.TYPE_STRING, field.LABEL_REPEATED),
        (6, "blob", field.TYPE_BYTES, field.LABEL_OPTIONAL),
        (7, "ratio", field.TYPE_DOUBLE, field.LABEL_OPTIONAL),
        (8, "flag", field.TYPE_BOOL, field.LABEL_OPTIONAL),
        (9, "small", field.TYPE_FIXED32, field.LABEL_OPTIONAL),
    ]:
        item.field.add(name=name, number=number, type=kind, label=label)
    item.field.add(
        name="child", number=5, type=field.TYPE_MESSAGE, label=field.LABEL_OPTIONAL,
        type_name=".fuzz.v1.Item",
    )  # fmt: skip
    pool = descriptor_pool.DescriptorPool()
    pool.Add(proto)
    return message_factory.GetMessageClass(pool.FindMessageTypeByName("fuzz.v1.Item"))


Item = _item_message()
PROTOBUF = ea.ProtobufSerializer()
PROTOBUF.register(Item)
PROTOBUF_VALID = [
    Item(name="ann", count=-5, tags=["a", "é"], blob=b"\x00\xff", ratio=1.5, flag=True, small=7),
    Item(child=Item(child=Item(name="deep"))),
    Item(),
]


def _varint(number: int) -> bytes:
    out = bytearray()
    while True:
        byte, number = number & 0x7F, number >> 7
        out.append(byte | (0x80 if number else 0))
        if not number:
            return bytes(out)


def _nested_children(depth: int) -> bytes:
    payload = b""
    for _ in range(depth):
        payload = b"\x2a" + _varint(len(payload)) + payload  # field 5, length-delimited
    return payload


SPECIAL_PROTOBUF = [
    b"\x0a\x02\xff\xfe",  # a string field holding invalid UTF-8
    b"\x10",  # a varint field with no value
    b"\x10\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\x01",  # a varint longer than 64 bits
    b"\x00",  # field number 0
    b"\x0f",  # wire type 7
    b"\x0b",  # a group that never ends
    b"\x0a\x7f",  # a length past the end
    b"\x0a\xff\xff\xff\xff\x0f",  # a 4 GiB length
    b"\x2a\x05\x0a\x02\xff\xff",  # invalid UTF-8 in the child
    _nested_children(200),
    _nested_children(5_000),
]


@FUZZ
@given(
    payload=st.one_of(
        st.binary(max_size=64),
        st.sampled_from([value.SerializeToString() for value in PROTOBUF_VALID]).flatmap(mangled),
        st.sampled_from(SPECIAL_PROTOBUF),
        st.sampled_from(SPECIAL_JSON),
    )
)
def test_protobuf_decode_of_hostile_bytes_gives_a_message_or_a_serialization_error(payload):
    value = check_decode(PROTOBUF, "fuzz.v1.Item", payload)
    assert value is None or isinstance(value, Item)


@pytest.mark.parametrize("payload", ["text", 5, None, ["x"], object()])
def test_protobuf_decode_of_a_payload_that_is_not_bytes(payload):
    check_decode(PROTOBUF, "fuzz.v1.Item", payload)


# -- the command log ---------------------------------------------------------------------------


@FUZZ
@given(command_type=st.sampled_from([*JSON_NAMES, "Nope"]), payload=JSON_PAYLOADS)
def test_a_command_log_entry_decodes_to_its_command_or_to_none(command_type, payload):
    entry = ea.CommandRecord(
        "c", "account|a", "account", "a", command_type, payload, datetime.now(UTC), ea.ACCEPTED
    )
    outcome = call_within(decode_command, JSON, entry)
    only(outcome, given=(command_type, payload))  # nothing at all may come out


# -- what tools and the console decode ---------------------------------------------------------


def envelope_of(event_type: str, payload: Any) -> EventEnvelope:
    return EventEnvelope(
        "e", "account|a", "account", "a", 1, 1, event_type, datetime.now(UTC), (), {}, "", "",
        payload, lambda envelope: JSON.decode(envelope.event_type, envelope.payload),
    )  # fmt: skip


@FUZZ
@given(event_type=st.sampled_from([*JSON_NAMES, "Nope"]), payload=JSON_PAYLOADS)
def test_the_inspection_tools_render_any_stored_payload_without_raising(event_type, payload):
    for serializer in (JSON, PROTOBUF):
        outcome = call_within(payload_as_data, serializer, envelope_of(event_type, payload))
        only(outcome, given=(event_type, payload))
        msgspec.json.encode(outcome.value)  # and what it gives can be shown as JSON


@FUZZ
@given(body=st.one_of(JSON_PAYLOADS.map(lambda b: b.decode("utf-8", "replace")), st.text()))
def test_a_console_command_body_builds_the_command_or_a_value_error(body):
    for cls in (Deposit, Tree, Point):
        only(call_within(build_command, cls, body), ValueError, given=(cls, body))


@FUZZ
@given(raw=st.one_of(st.text(max_size=40), st.from_regex(r"[+-]?[0-9]{0,5000}", fullmatch=True)))
def test_a_console_number_parameter_is_a_number_or_a_page_error(raw):
    outcome = call_within(lambda: parse_int("after", raw, default=0))
    only(outcome, PageError, given=raw)
    assert outcome.error is not None or 0 <= outcome.value <= 2**63 - 1


@FUZZ
@given(token=st.text(max_size=60) | st.text(max_size=60).map(encode_token))
def test_a_nats_subject_token_decodes_or_raises_its_documented_value_error(token):
    only(call_within(decode_token, token), ValueError, given=token)
