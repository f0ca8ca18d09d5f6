"""The IdentifierStore contract: natural identifiers claimed with the write that sets them,
unique per entity type, and never written apart from that write."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

import eventactors as ea
from eventactors.errors import IdentifierTaken
from eventactors.records import IdentifierClaim, split_persistence_id

from ._identifiers import ALICE, BOB, assert_untouched, claim, entry, register
from .base import OpenStore
from .identifier_races import IdentifierRaceContract
from .kit import Kit


def bad_claims(stream: str, other: str) -> dict[str, tuple[Any, type[Exception]]]:
    entity_type, entity_id = split_persistence_id(stream)
    return {
        "not_a_claim": ((entity_type, entity_id, ALICE), TypeError),
        "other_entity": (claim(other, ALICE), ValueError),
        "other_entity_type": (IdentifierClaim("customer", entity_id, ALICE), ValueError),
        "identifiers_not_text": (IdentifierClaim(entity_type, entity_id, None), ValueError),  # type: ignore[arg-type]
    }


BAD_CLAIMS = ["not_a_claim", "other_entity", "other_entity_type", "identifiers_not_text"]


class IdentifierStoreContract(IdentifierRaceContract):
    """Needs `IdentifierStore`, with `EventStore`, `StateStore` and `CommandLogStore`: claims
    and entries are written with the events and states."""

    async def test_unknown_identifiers_and_entities_are_none(
        self, store: ea.Store, kit: Kit
    ) -> None:
        await register(store, kit, kit.pid("a"), ALICE)

        assert await store.find_entity("account", BOB) is None
        assert await store.find_entity("customer", ALICE) is None
        assert await store.identifiers_of("account", "nobody") is None
        assert await store.identifiers_of("customer", "a") is None

    async def test_an_append_claims_the_identifiers_with_its_events(
        self, store: ea.Store, kit: Kit
    ) -> None:
        stream = kit.pid("a")

        appended = await store.append(
            stream, kit.records(stream, 1, 2), 0, claim=claim(stream, ALICE), command=entry(stream)
        )

        assert len(appended) == 2
        assert await store.find_entity("account", ALICE) == "a"
        assert await store.identifiers_of("account", "a") == ALICE
        assert await store.highest_sequence_number(stream) == 2
        assert [e.command_id for e in await store.read_commands(stream)] == ["cmd-1"]

    async def test_an_append_without_events_can_claim(self, store: ea.Store, kit: Kit) -> None:
        stream = kit.pid("a")
        await kit.append(stream, 2)

        assert await store.append(stream, [], 2, claim=claim(stream, ALICE)) == []

        assert await store.find_entity("account", ALICE) == "a"
        assert await store.highest_sequence_number(stream) == 2

    async def test_an_upsert_claims_the_identifiers_with_the_state(
        self, store: ea.Store, kit: Kit
    ) -> None:
        stream = kit.pid("d")

        await store.upsert_state(stream, 1, kit.state(stream, 1, 10), claim=claim(stream, ALICE))

        assert await store.find_entity("account", ALICE) == "d"
        assert await store.identifiers_of("account", "d") == ALICE
        stored = await store.get_state(stream)
        assert stored is not None and stored.revision == 1

    async def test_identifiers_are_unique_per_entity_type_only(
        self, store: ea.Store, kit: Kit
    ) -> None:
        account, customer = kit.pid("a"), kit.pid("a", entity_type="customer")
        await register(store, kit, account, ALICE)

        await register(store, kit, customer, ALICE)

        assert await store.find_entity("account", ALICE) == "a"
        assert await store.find_entity("customer", ALICE) == "a"

    async def test_an_append_claiming_taken_identifiers_writes_nothing(
        self, store: ea.Store, kit: Kit
    ) -> None:
        owner, claimant = kit.pid("a"), kit.pid("b")
        await register(store, kit, owner, ALICE)
        before = await kit.read_everything()

        with pytest.raises(IdentifierTaken) as caught:
            await store.append(
                claimant,
                kit.records(claimant, 1, 2),
                0,
                claim=claim(claimant, ALICE),
                command=entry(claimant),
            )

        assert isinstance(caught.value, ea.EventActorsError)
        assert caught.value.entity_type == "account"
        assert caught.value.owner == "a"
        await assert_untouched(store, kit, claimant)
        assert await store.find_entity("account", ALICE) == "a"
        assert await store.identifiers_of("account", "a") == ALICE
        assert [e.event_id for e in await kit.read_everything()] == [e.event_id for e in before]
        # The claimant can still start with identifiers of its own.
        await register(store, kit, claimant, BOB)
        assert await store.find_entity("account", BOB) == "b"

    async def test_a_taken_claim_leaves_an_existing_stream_where_it_was(
        self, store: ea.Store, kit: Kit
    ) -> None:
        owner, claimant = kit.pid("a"), kit.pid("b")
        await register(store, kit, owner, ALICE)
        await register(store, kit, claimant, BOB)
        await kit.append(claimant, 1)

        with pytest.raises(IdentifierTaken):
            await store.append(
                claimant, kit.records(claimant, 3, 1), 2, claim=claim(claimant, ALICE)
            )

        assert await store.highest_sequence_number(claimant) == 2
        assert await store.identifiers_of("account", "b") == BOB
        assert await store.find_entity("account", BOB) == "b"
        assert await store.find_entity("account", ALICE) == "a"

    async def test_an_upsert_claiming_taken_identifiers_writes_nothing(
        self, store: ea.Store, kit: Kit
    ) -> None:
        owner, claimant = kit.pid("a"), kit.pid("b")
        await store.upsert_state(owner, 1, kit.state(owner, 1, 10), claim=claim(owner, ALICE))
        await store.upsert_state(
            claimant, 1, kit.state(claimant, 1, 20), claim=claim(claimant, BOB)
        )

        with pytest.raises(IdentifierTaken) as caught:
            await store.upsert_state(
                claimant,
                2,
                kit.state(claimant, 2, 99),
                claim=claim(claimant, ALICE),
                command=entry(claimant),
            )

        assert caught.value.owner == "a"
        stored = await store.get_state(claimant)
        assert stored is not None
        assert (stored.revision, stored.state.balance) == (1, 20)
        assert await store.read_commands(claimant) == []
        assert await store.identifiers_of("account", "b") == BOB
        assert await store.find_entity("account", ALICE) == "a"
        # A new entity's first revision is not written either.
        fresh = kit.pid("c")
        with pytest.raises(IdentifierTaken):
            await store.upsert_state(fresh, 1, kit.state(fresh, 1, 5), claim=claim(fresh, BOB))
        assert await store.get_state(fresh) is None
        assert await store.identifiers_of("account", "c") is None

    @pytest.mark.parametrize("expected", [1, 3])
    async def test_a_conflicting_append_claims_nothing(
        self, store: ea.Store, kit: Kit, expected: int
    ) -> None:
        stream = kit.pid("a")
        await kit.append(stream, 2)

        with pytest.raises(ea.ConcurrencyError):
            await store.append(
                stream,
                kit.records(stream, expected + 1, 1),
                expected,
                claim=claim(stream, ALICE),
                command=entry(stream),
            )

        assert await store.find_entity("account", ALICE) is None
        assert await store.identifiers_of("account", "a") is None
        assert await store.read_commands(stream) == []
        assert await store.highest_sequence_number(stream) == 2

    async def test_a_conflicting_append_to_a_new_stream_claims_nothing(
        self, store: ea.Store, kit: Kit
    ) -> None:
        stream = kit.pid("new")

        with pytest.raises(ea.ConcurrencyError):
            await store.append(stream, kit.records(stream, 4, 1), 3, claim=claim(stream, ALICE))

        await assert_untouched(store, kit, stream)
        assert await store.find_entity("account", ALICE) is None

    @pytest.mark.parametrize("revision", [1, 3])
    async def test_a_conflicting_upsert_claims_nothing(
        self, store: ea.Store, kit: Kit, revision: int
    ) -> None:
        stream = kit.pid("d")
        await store.upsert_state(stream, 1, kit.state(stream, 1, 10))

        with pytest.raises(ea.ConcurrencyError):
            await store.upsert_state(
                stream,
                revision,
                kit.state(stream, revision, 99),
                claim=claim(stream, ALICE),
                command=entry(stream),
            )

        assert await store.find_entity("account", ALICE) is None
        assert await store.read_commands(stream) == []

    async def test_a_new_claim_replaces_the_old_identifiers(
        self, store: ea.Store, kit: Kit
    ) -> None:
        stream, other = kit.pid("a"), kit.pid("b")
        await register(store, kit, stream, ALICE)

        await store.append(stream, kit.records(stream, 2, 1), 1, claim=claim(stream, BOB))

        assert await store.identifiers_of("account", "a") == BOB
        assert await store.find_entity("account", BOB) == "a"
        assert await store.find_entity("account", ALICE) is None
        # The old identifiers are free for another entity.
        await register(store, kit, other, ALICE)
        assert await store.find_entity("account", ALICE) == "b"
        assert await store.identifiers_of("account", "b") == ALICE
        assert await store.identifiers_of("account", "a") == BOB

    async def test_an_upsert_re_keys_too(self, store: ea.Store, kit: Kit) -> None:
        stream = kit.pid("d")
        await store.upsert_state(stream, 1, kit.state(stream, 1, 10), claim=claim(stream, ALICE))

        await store.upsert_state(stream, 2, kit.state(stream, 2, 20), claim=claim(stream, BOB))

        assert await store.identifiers_of("account", "d") == BOB
        assert await store.find_entity("account", ALICE) is None
        assert await store.find_entity("account", BOB) == "d"

    async def test_claiming_the_identifiers_already_held_is_a_no_op(
        self, store: ea.Store, kit: Kit
    ) -> None:
        stream = kit.pid("a")
        await register(store, kit, stream, ALICE)

        appended = await store.append(
            stream, kit.records(stream, 2, 2), 1, claim=claim(stream, ALICE)
        )
        await store.append(stream, [], 3, claim=claim(stream, ALICE))

        assert [e.sequence_number for e in appended] == [2, 3]
        assert await store.find_entity("account", ALICE) == "a"
        assert await store.identifiers_of("account", "a") == ALICE

    async def test_an_empty_claim_releases_the_identifiers(self, store: ea.Store, kit: Kit) -> None:
        stream, other = kit.pid("a"), kit.pid("b")
        await register(store, kit, stream, ALICE)

        await store.append(stream, kit.records(stream, 2, 1), 1, claim=claim(stream, ""))

        assert await store.identifiers_of("account", "a") is None
        assert await store.find_entity("account", ALICE) is None
        assert await store.find_entity("account", "") is None
        assert await store.highest_sequence_number(stream) == 2
        # Free for another entity, and the released entity can claim again.
        await register(store, kit, other, ALICE)
        assert await store.find_entity("account", ALICE) == "b"
        await store.append(stream, [], 2, claim=claim(stream, BOB))
        assert await store.identifiers_of("account", "a") == BOB

    async def test_releasing_identifiers_never_held_is_a_no_op(
        self, store: ea.Store, kit: Kit
    ) -> None:
        stream, other = kit.pid("a"), kit.pid("b")
        await register(store, kit, other, ALICE)

        await store.append(stream, kit.records(stream, 1, 1), 0, claim=claim(stream, ""))
        await store.append(stream, [], 1, claim=claim(stream, ""))

        assert await store.identifiers_of("account", "a") is None
        assert await store.find_entity("account", ALICE) == "b"
        assert await store.highest_sequence_number(stream) == 1

    async def test_an_upsert_releases_too(self, store: ea.Store, kit: Kit) -> None:
        stream, other = kit.pid("d"), kit.pid("e")
        await store.upsert_state(stream, 1, kit.state(stream, 1, 10), claim=claim(stream, ALICE))

        await store.upsert_state(stream, 2, kit.state(stream, 2, 20), claim=claim(stream, ""))

        assert await store.identifiers_of("account", "d") is None
        await store.upsert_state(other, 1, kit.state(other, 1, 5), claim=claim(other, ALICE))
        assert await store.find_entity("account", ALICE) == "e"

    async def test_a_conflicting_write_releases_nothing(self, store: ea.Store, kit: Kit) -> None:
        stream, state = kit.pid("a"), kit.pid("d")
        await register(store, kit, stream, ALICE)
        await store.upsert_state(state, 1, kit.state(state, 1, 10), claim=claim(state, BOB))

        with pytest.raises(ea.ConcurrencyError):
            await store.append(stream, kit.records(stream, 1, 1), 0, claim=claim(stream, ""))
        with pytest.raises(ea.ConcurrencyError):
            await store.upsert_state(state, 1, kit.state(state, 1, 20), claim=claim(state, ""))

        assert await store.find_entity("account", ALICE) == "a"
        assert await store.find_entity("account", BOB) == "d"

    async def test_writes_without_a_claim_keep_the_identifiers(
        self, store: ea.Store, kit: Kit
    ) -> None:
        stream, state = kit.pid("a"), kit.pid("d")
        await register(store, kit, stream, ALICE)
        await store.upsert_state(state, 1, kit.state(state, 1, 10), claim=claim(state, BOB))

        await kit.append(stream, 3)
        await store.upsert_state(state, 2, kit.state(state, 2, 20))
        await store.delete_events_to(stream, 4)

        assert await store.identifiers_of("account", "a") == ALICE
        assert await store.identifiers_of("account", "d") == BOB

    async def test_a_taken_claim_fails_only_its_own_append(self, store: ea.Store, kit: Kit) -> None:
        """Appends written together (a group commit) still succeed or fail one by one."""
        owner = kit.pid("owner")
        await register(store, kit, owner, ALICE)
        plain, claimant, free = kit.pid("plain"), kit.pid("claimant"), kit.pid("free")

        results = await asyncio.gather(
            store.append(plain, kit.records(plain, 1, 1), 0, command=entry(plain)),
            store.append(claimant, kit.records(claimant, 1, 1), 0, claim=claim(claimant, ALICE)),
            # Expects the claimant's append, which is never written.
            store.append(claimant, kit.records(claimant, 2, 1), 1),
            store.append(free, kit.records(free, 1, 1), 0, claim=claim(free, BOB)),
            return_exceptions=True,
        )

        assert isinstance(results[0], list), results[0]
        assert isinstance(results[1], IdentifierTaken), results[1]
        assert isinstance(results[2], ea.ConcurrencyError), results[2]
        assert isinstance(results[3], list), results[3]
        await assert_untouched(store, kit, claimant)
        assert await store.highest_sequence_number(plain) == 1
        assert len(await store.read_commands(plain)) == 1
        assert await store.find_entity("account", BOB) == "free"
        assert await store.find_entity("account", ALICE) == "owner"

    # -- bad input ------------------------------------------------------------------------------

    @pytest.mark.parametrize("case", BAD_CLAIMS)
    async def test_append_refuses_a_bad_claim_and_writes_nothing(
        self, store: ea.Store, kit: Kit, case: str
    ) -> None:
        stream, other = kit.pid("a"), kit.pid("b")
        bad, error = bad_claims(stream, other)[case]

        with pytest.raises(error):
            await store.append(
                stream, kit.records(stream, 1, 1), 0, claim=bad, command=entry(stream)
            )

        await assert_untouched(store, kit, stream)
        await assert_untouched(store, kit, other)
        assert await store.find_entity("account", ALICE) is None
        assert await store.find_entity("customer", ALICE) is None

    @pytest.mark.parametrize("case", BAD_CLAIMS)
    async def test_upsert_state_refuses_a_bad_claim_and_writes_nothing(
        self, store: ea.Store, kit: Kit, case: str
    ) -> None:
        stream, other = kit.pid("a"), kit.pid("b")
        bad, error = bad_claims(stream, other)[case]

        with pytest.raises(error):
            await store.upsert_state(
                stream, 1, kit.state(stream, 1, 10), claim=bad, command=entry(stream)
            )

        assert await store.get_state(stream) is None
        assert await store.read_commands(stream) == []
        assert await store.find_entity("account", ALICE) is None
        assert await store.find_entity("customer", ALICE) is None

    # -- lifecycle ------------------------------------------------------------------------------

    async def test_identifiers_survive_close_and_are_seen_by_another_store(
        self, store: ea.Store, reopen: OpenStore, kit: Kit
    ) -> None:
        a, b = kit.pid("a"), kit.pid("b")
        await register(store, kit, a, ALICE)
        await register(store, kit, b, BOB)
        await store.append(
            a, kit.records(a, 2, 1), 1, claim=claim(a, '{"email":"new@example.com"}')
        )
        await store.close()

        other = reopen()
        assert await other.find_entity("account", ALICE) is None
        assert await other.find_entity("account", '{"email":"new@example.com"}') == "a"
        assert await other.identifiers_of("account", "b") == BOB
        with pytest.raises(IdentifierTaken):
            await other.append(kit.pid("c"), kit.records(kit.pid("c"), 1, 1), 0,
                               claim=claim(kit.pid("c"), BOB))  # fmt: skip
        # The closed store reopens on its next call and sees the other store's writes.
        await other.append(b, [], 1, claim=claim(b, ALICE))
        assert await store.find_entity("account", ALICE) == "b"
