"""Issue 6's bad inputs: natural identifiers that do not fit, timeouts and expected revisions
out of range, and a validation that raises instead of deciding.

Each gets an error naming what was wrong, and leaves everything as it was: the entities' states
and streams, the identifier map and the rest of the store; the next valid command works.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

import pytest
from validation_behaviors import (
    BACKENDS,
    Auction,
    Bid,
    BookCopy,
    BookCopyBehavior,
    Member,
    MemberBehavior,
    Register,
    Rename,
    Shelve,
    Validation,
    Validator,
    auction_behavior,
    backend,
    copy_keys,
    member_keys,
    placed,
    stored_events,
)

import eventactors as ea

pytestmark = pytest.mark.timeout(60)

ANN = {"email": "ann@example.com"}
NEW = {"email": "new@example.com"}
REGISTER_NEW = Register(NEW["email"], "New")
BOOK = {"isbn": "978-0", "copy": 1}


def accept(validation: Validation) -> None:
    validation.accept()


@dataclass
class World:
    """A running engine with one registered member, one shelved copy and one bid placed."""

    engine: ea.Engine
    validator: Validator
    member_id: str
    copy_id: str
    log: list[tuple[str, int, str]]
    streams: list[str]


async def stored(engine: ea.Engine) -> tuple[list[tuple[str, int, str]], list[str]]:
    log = await engine.store.read_all(0, 10_000)
    streams = sorted(await engine.store.persistence_ids())
    return [(e.persistence_id, e.sequence_number, e.event_id) for e in log], streams


@pytest.fixture(params=BACKENDS)
async def world(request: pytest.FixtureRequest, tmp_path):
    async with backend(request.param, tmp_path) as open_store:
        validator = Validator(accept)
        engine = ea.Engine(store=open_store())
        engine.register("member", MemberBehavior, identifiers=member_keys)
        engine.register("copy", BookCopyBehavior, identifiers=copy_keys)
        engine.register("auction", auction_behavior(validator), command_timeout=10)
        async with engine:
            member = await engine.send_by("member", ANN, Register(ANN["email"], "Ann"))
            book = await engine.send_by("copy", BOOK, Shelve("978-0", 1), create=True)
            await engine.send("auction", "lot", Bid("ann", 10))
            yield World(engine, validator, member.entity_id, book.entity_id, *await stored(engine))


async def assert_intact(world: World) -> None:
    """Nothing changed, in memory or in the store; then the next valid commands work."""
    engine = world.engine
    assert await stored(engine) == (world.log, world.streams)
    assert await engine.get_state("member", world.member_id) == (Member(ANN["email"], "Ann"), 1)
    assert await engine.get_state("copy", world.copy_id) == (BookCopy("978-0", 1), 1)
    assert await engine.get_state("auction", "lot") == (Auction(tuple(placed(("ann", 10))), 10), 1)
    assert await engine.resolve("member", ANN) == world.member_id
    assert await engine.resolve("copy", BOOK) == world.copy_id

    renamed = await engine.send_by("member", ANN, Rename("Ann B."))
    assert (renamed.entity_id, renamed.revision) == (world.member_id, 2)
    world.validator.decide = accept
    assert (await engine.send("auction", "lot", Bid("bob", 20))).revision == 2
    assert await stored_events(engine, "auction", "lot") == placed(("ann", 10), ("bob", 20))
    log, _ = await stored(engine)
    assert log[: len(world.log)] == world.log and len(log) == len(world.log) + 2


# -- natural identifiers -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("entity_type", "keys", "named"),
    [
        ("member", {"emial": "ann@example.com"}, r"unknown key 'emial'.*its keys are 'email'"),
        ("member", {**ANN, "phone": "555"}, r"unknown key 'phone'"),
        ("member", {}, r"missing key 'email'"),
        ("copy", {"isbn": "978-0"}, r"missing key 'copy'.*its keys are 'copy', 'isbn'"),
        ("copy", {"isbn": "978-0", "copy": 1, "shelf": 3}, r"unknown key 'shelf'"),
    ],
)
async def test_unknown_or_missing_identifier_keys_are_named(world, entity_type, keys, named):
    engine = world.engine
    command = Rename("x") if entity_type == "member" else Shelve("978-0", 1)
    for create in (False, True):
        with pytest.raises(ea.InvalidIdentifiers, match=named):
            await engine.send_by(entity_type, keys, command, create=create)
    with pytest.raises(ea.InvalidIdentifiers, match=named):
        await engine.resolve(entity_type, keys)
    await assert_intact(world)


@pytest.mark.parametrize(
    ("entity_type", "keys", "named"),
    [
        ("member", {"email": 1.5}, "'email'.*must be a str or an int, got float 1.5"),
        ("member", {"email": True}, "'email'.*must be a str or an int, got bool True"),
        ("member", {"email": None}, "'email'.*must be a str or an int, got NoneType None"),
        ("member", {"email": ["ann@example.com"]}, "'email'.*must be a str or an int, got list"),
        ("member", {"email": b"ann@example.com"}, "'email'.*must be a str or an int, got bytes"),
        ("member", {"email": ""}, "'email'.*must be a non-blank str"),
        ("member", {"email": "  \t"}, "'email'.*must be a non-blank str"),
        ("member", {"email": "a" * 1025}, "'email'.*at most 1024 characters"),
        ("copy", {"isbn": "978-0", "copy": 1.0}, "'copy'.*must be a str or an int, got float"),
        ("copy", {"isbn": "978-0", "copy": False}, "'copy'.*must be a str or an int, got bool"),
        ("copy", {"isbn": " ", "copy": 1}, "'isbn'.*must be a non-blank str"),
    ],
)
async def test_identifier_values_of_the_wrong_type_are_named(world, entity_type, keys, named):
    engine = world.engine
    command = Rename("x") if entity_type == "member" else Shelve("978-0", 1)
    with pytest.raises(ea.InvalidIdentifiers, match=named) as refused:
        await engine.send_by(entity_type, keys, command)
    assert isinstance(refused.value, ValueError)
    with pytest.raises(ea.InvalidIdentifiers, match=named):
        await engine.send_by(entity_type, keys, command, create=True)
    with pytest.raises(ea.InvalidIdentifiers, match=named):
        await engine.resolve(entity_type, keys)
    await assert_intact(world)


@pytest.mark.parametrize(
    "keys", ["ann@example.com", ["email"], [("email", "ann@example.com")], None, 42, {"email"}]
)
async def test_identifiers_that_are_not_a_mapping_are_refused_naming_the_keys(world, keys):
    expected = r"identifiers of 'member' must be a mapping such as \{'email': '...'\}"
    with pytest.raises(ea.InvalidIdentifiers, match=expected):
        await world.engine.send_by("member", keys, Rename("x"))
    with pytest.raises(ea.InvalidIdentifiers, match=expected):
        await world.engine.resolve("member", keys)
    await assert_intact(world)


async def test_send_by_on_a_type_without_identifiers_says_so(world):
    with pytest.raises(ea.InvalidIdentifiers, match=r"'auction' has no natural identifiers"):
        await world.engine.send_by("auction", {"lot": "lot"}, Bid("x", 1))
    await assert_intact(world)


@pytest.mark.parametrize(
    ("command", "named"),
    [
        (Shelve("978-1", 1.5), "'copy'.*must be a str or an int, got float 1.5"),
        (Shelve("   ", 1), "'isbn'.*must be a non-blank str"),
    ],
)
async def test_a_state_whose_keys_do_not_fit_is_refused_before_anything_is_written(
    world, command, named
):
    engine = world.engine
    with pytest.raises(ea.InvalidIdentifiers, match=named):
        await engine.send("copy", "c2", command)
    assert await engine.store.highest_sequence_number("copy|c2") == 0
    assert await engine.get_state("copy", "c2") == (BookCopy(), 0)
    await assert_intact(world)
    assert (await engine.send("copy", "c2", Shelve("978-1", 1))).revision == 1
    assert await engine.resolve("copy", {"isbn": "978-1", "copy": 1}) == "c2"


# -- timeouts ----------------------------------------------------------------------------------

BAD_TIMEOUTS = [0, 0.0, -1, -0.001, float("-inf"), float("nan"), True, "1", [1]]


@pytest.mark.parametrize("timeout", BAD_TIMEOUTS)
async def test_a_timeout_that_is_not_positive_is_refused_everywhere(world, timeout):
    engine = world.engine
    named = "timeout must be a positive number of seconds or None, got "
    calls = [
        lambda: engine.send("auction", "lot", Bid("x", 1), timeout=timeout),
        lambda: engine.send("auction", "fresh", Bid("x", 1), timeout=timeout),
        lambda: engine.send_by("member", ANN, Rename("x"), timeout=timeout),
        lambda: engine.send_by("member", NEW, REGISTER_NEW, timeout=timeout),
        lambda: engine.get_state("auction", "lot", timeout=timeout),
        lambda: engine.get_state("auction", "lot", timeout=timeout, at_revision=1),
        lambda: engine.get_state("member", world.member_id, timeout=timeout),
    ]
    for call in calls:
        with pytest.raises(ValueError, match=named):
            await call()
    assert world.validator.started == [("lot", Bid("ann", 10))]  # no handler ran
    assert await engine.resolve("member", NEW) is None
    assert await engine.store.highest_sequence_number("auction|fresh") == 0
    await assert_intact(world)


@pytest.mark.parametrize("command_timeout", [0, 0.0, -1, -0.5, float("-inf"), True, "1"])
async def test_register_refuses_a_command_timeout_that_is_not_positive(world, command_timeout):
    engine = world.engine
    with pytest.raises(ValueError, match="command_timeout must be a positive number, got "):
        engine.register("lots", auction_behavior(world.validator), command_timeout=command_timeout)
    assert "lots" not in engine.entity_types
    engine.register("lots", auction_behavior(world.validator), command_timeout=5)
    assert (await engine.send("lots", "lot", Bid("cy", 1))).revision == 1
    world.log, world.streams = await stored(engine)
    await assert_intact(world)


async def test_register_refuses_a_nan_command_timeout(world):
    with pytest.raises(ValueError, match="command_timeout must be a positive number"):
        world.engine.register(
            "lots", auction_behavior(world.validator), command_timeout=float("nan")
        )


# -- expected_revision -------------------------------------------------------------------------


@pytest.mark.parametrize("expected_revision", [-1, -100, 1.0, "1", True, False, float("nan")])
async def test_an_expected_revision_that_is_not_an_int_of_zero_or_more_is_refused(
    world, expected_revision
):
    engine = world.engine
    named = "expected_revision must be an int >= 0, got "
    calls = [
        lambda: engine.send("auction", "lot", Bid("x", 1), expected_revision=expected_revision),
        lambda: engine.send("auction", "fresh", Bid("x", 1), expected_revision=expected_revision),
        lambda: engine.send_by("member", ANN, Rename("x"), expected_revision=expected_revision),
        lambda: engine.send_by("member", NEW, REGISTER_NEW, expected_revision=expected_revision),
    ]
    for call in calls:
        with pytest.raises(ValueError, match=named):
            await call()
    assert world.validator.started == [("lot", Bid("ann", 10))]  # no handler ran
    assert await engine.resolve("member", NEW) is None
    assert await engine.store.highest_sequence_number("auction|fresh") == 0
    await assert_intact(world)


async def test_a_refused_send_leaves_no_entity_in_memory(world):
    engine = world.engine
    for options in ({"timeout": 0}, {"expected_revision": -1}):
        with pytest.raises(ValueError):
            await engine.send("auction", "ghost", Bid("x", 1), **options)
    assert not engine.is_live("auction", "ghost")


# -- a validation that raises ------------------------------------------------------------------


def failing(error: BaseException) -> Any:
    def decide(validation: Validation) -> None:
        validation.fail(error)

    return decide


def raising(error: BaseException) -> Any:
    def decide(validation: Validation) -> None:
        raise error  # before the check even awaits

    return decide


@pytest.mark.parametrize("how", [failing, raising])
@pytest.mark.parametrize(
    "error",
    [
        ConnectionError("the bid service is unreachable"),
        TimeoutError("the bid service's own timeout"),  # not our command_timeout
        ValueError("malformed answer"),
        KeyError("bidder"),
        ea.ConcurrencyError("the bid service's own conflict"),
        asyncio.CancelledError("the bid service's connection was cancelled"),
    ],
    ids=lambda error: type(error).__name__,
)
async def test_a_validation_that_raises_reaches_the_caller_unchanged(world, how, error):
    engine = world.engine
    world.validator.decide = how(error)
    with pytest.raises(type(error)) as raised:
        await engine.send("auction", "lot", Bid("bob", 20))
    assert raised.value is error  # not wrapped, and a TimeoutError is not our CommandTimeout
    assert await stored(engine) == (world.log, world.streams)
    assert await engine.get_state("auction", "lot") == (Auction(tuple(placed(("ann", 10))), 10), 1)

    world.validator.decide = None  # the next check is decided by hand: it sees the old state
    sending = asyncio.create_task(engine.send("auction", "lot", Bid("cy", 30)))
    check = await world.validator.next()
    assert (check.state, check.command) == (Auction(tuple(placed(("ann", 10))), 10), Bid("cy", 30))
    check.accept()
    assert (await asyncio.wait_for(sending, 10)).revision == 2
    assert await stored_events(engine, "auction", "lot") == placed(("ann", 10), ("cy", 30))
    state, revision = await engine.get_state("auction", "lot")
    assert (state, revision) == (Auction(tuple(placed(("ann", 10), ("cy", 30))), 30), 2)
