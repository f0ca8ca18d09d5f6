"""`eventactors state`: an entity's state, rebuilt from its history by the application's own
behaviors, without sending it a command.

The store is read-only and the application's projections are removed before its engine
starts: reading a state writes nothing, moves no read model, and can run beside the
application itself."""

from __future__ import annotations

import argparse
from typing import Any

from ._cli_common import app_engine, run_on_store
from ._cli_output import note, print_json, printable
from ._inspection_data import value_as_data
from .inspection import projection_names
from .records import persistence_id_of
from .stores.protocols import Store


def run(args: argparse.Namespace) -> int:
    async def work(store: Store) -> int:
        engine = await app_engine(args.app, store)
        for name in projection_names(engine):  # reading a state must not move any read model
            await engine.remove_projection(name)
        async with engine:
            state, revision = await engine.get_state(
                args.entity_type, args.entity_id, at_revision=args.at_revision
            )
        persistence_id = persistence_id_of(args.entity_type, args.entity_id)
        data: dict[str, Any] = {
            "persistence_id": persistence_id,
            "revision": revision,
            "state_type": type(state).__qualname__,
            "state": value_as_data(state),
        }
        if args.json:
            print_json(data)
        else:
            print(f"{printable(persistence_id)}  revision {revision}  {data['state_type']}")
            print_json(data["state"])
        if revision == 0:
            note(args.command, f"no history for {persistence_id!r}: this is the initial state")
        return 0

    return run_on_store(args, work)
