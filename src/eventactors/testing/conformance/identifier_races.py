"""The IdentifierStore contract under racing writers: every identifier claimed once."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable

import pytest

import eventactors as ea
from eventactors.errors import IdentifierTaken

from ._identifiers import ALICE, assert_untouched, claim, entry, one_winner, register
from .base import OpenStore, StoreContractBase
from .kit import Kit


class IdentifierRaceContract(StoreContractBase):
    """Needs `IdentifierStore`, with `EventStore` and `CommandLogStore`."""

    # -- racing claims --------------------------------------------------------------------------

    async def test_racing_appends_from_one_store_claim_once(
        self, store: ea.Store, kit: Kit
    ) -> None:
        streams = [kit.pid(f"e{n}") for n in range(10)]

        results = await asyncio.gather(
            *(
                store.append(s, kit.records(s, 1, 1), 0, claim=claim(s, ALICE), command=entry(s))
                for s in streams
            ),
            return_exceptions=True,
        )

        winner = one_winner(results)
        assert await store.find_entity("account", ALICE) == f"e{winner}"
        for n, stream in enumerate(streams):
            if n != winner:
                await assert_untouched(store, kit, stream)
        assert len(await kit.read_everything()) == 1

    @pytest.mark.parametrize("write", ["append", "upsert_state"])
    async def test_racing_stores_claim_the_same_identifiers_once(
        self, reopen: OpenStore, kit: Kit, write: str
    ) -> None:
        """Separate store objects (connections, processes) on the same data: exactly one entity
        gets the identifiers, and the others write nothing at all."""
        stores = [reopen() for _ in range(4)]
        for round_ in range(6):
            identifiers = f'{{"email":"user{round_}@example.com"}}'
            streams = [kit.pid(f"r{round_}-{n}") for n in range(len(stores))]

            def writing(
                store: ea.Store, stream: str, identifiers: str = identifiers
            ) -> Awaitable[object]:
                if write == "append":
                    return store.append(
                        stream,
                        kit.records(stream, 1, 1),
                        0,
                        claim=claim(stream, identifiers),
                        command=entry(stream),
                    )
                return store.upsert_state(
                    stream,
                    1,
                    kit.state(stream, 1, 10),
                    claim=claim(stream, identifiers),
                    command=entry(stream),
                )

            results = await asyncio.gather(
                *(writing(s, stream) for s, stream in zip(stores, streams, strict=True)),
                return_exceptions=True,
            )

            winner = one_winner(results)
            for n, stream in enumerate(streams):
                entity_id = f"r{round_}-{n}"
                store = stores[(n + 1) % len(stores)]  # read through another store
                won = n == winner
                assert await store.identifiers_of("account", entity_id) == (
                    identifiers if won else None
                )
                assert len(await store.read_commands(stream)) == (1 if won else 0)
                if write == "append":
                    assert await store.highest_sequence_number(stream) == (1 if won else 0)
                else:
                    assert (await store.get_state(stream) is not None) == won
            assert await stores[0].find_entity("account", identifiers) == f"r{round_}-{winner}"

    async def test_racing_release_and_claim_never_share_identifiers(
        self, reopen: OpenStore, kit: Kit
    ) -> None:
        """One entity releases its keys while others, through other stores, try to take them:
        at most one taker wins, and never while the keys are still held."""
        stores = [reopen() for _ in range(4)]
        for round_ in range(6):
            identifiers = f'{{"email":"moved{round_}@example.com"}}'
            holder = kit.pid(f"h{round_}")
            await register(stores[0], kit, holder, identifiers)
            takers = [kit.pid(f"t{round_}-{n}") for n in range(3)]

            results = await asyncio.gather(
                stores[0].append(holder, [], 1, claim=claim(holder, "")),
                *(
                    s.append(t, kit.records(t, 1, 1), 0, claim=claim(t, identifiers))
                    for s, t in zip(stores[1:], takers, strict=True)
                ),
                return_exceptions=True,
            )

            assert results[0] == [], results[0]
            taken = [r for r in results[1:] if not isinstance(r, BaseException)]
            assert len(taken) <= 1, results
            assert all(isinstance(r, IdentifierTaken) for r in results[1:] if r not in taken)
            owner = await stores[1].find_entity("account", identifiers)
            assert await stores[2].identifiers_of("account", f"h{round_}") is None
            if taken:
                (winner,) = [n for n, r in enumerate(results[1:]) if r in taken]
                assert owner == f"t{round_}-{winner}"
            else:
                assert owner is None

    async def test_racing_re_keys_and_claims_never_share_identifiers(
        self, reopen: OpenStore, kit: Kit
    ) -> None:
        """Entities swapping and taking each other's keys at once, through several stores: at
        the end, every key set has at most one owner, and the two maps agree."""
        stores = [reopen() for _ in range(3)]
        keys = [f'{{"n":{n}}}' for n in range(4)]
        streams = [kit.pid(f"k{n}") for n in range(4)]
        for stream, key in zip(streams, keys, strict=True):
            await register(stores[0], kit, stream, key)

        async def re_key(n: int, target: int) -> object:
            stream, store = streams[n], stores[n % len(stores)]
            highest = await store.highest_sequence_number(stream)
            return await store.append(
                stream,
                kit.records(stream, highest + 1, 1),
                highest,
                claim=claim(stream, keys[target]),
            )

        # Each entity tries to take the next one's keys: in any order, all but the last fail,
        # and with a cycle none can succeed while every key is held.
        results = await asyncio.gather(
            *(re_key(n, (n + 1) % 4) for n in range(4)), return_exceptions=True
        )

        assert all(isinstance(result, IdentifierTaken) for result in results), results
        for n, key in enumerate(keys):
            assert await stores[n % 3].find_entity("account", key) == f"k{n}"
            assert await stores[(n + 1) % 3].identifiers_of("account", f"k{n}") == key
            assert await stores[0].highest_sequence_number(streams[n]) == 1
