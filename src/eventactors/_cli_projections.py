"""`eventactors projections`: where each projection's offset stands against the log's head.

The names come from the offsets the store holds, and with `--app` also from the projections
the application declares (one that never saved an offset is at position 0). The application
is not started, and a projection's state and last error live only in the process that runs
it: so each row's state is "not running here", said rather than guessed. Lag is the head's
position minus the offset's.
"""

from __future__ import annotations

import argparse

import msgspec

from ._cli_common import app_engine, run_on_store
from ._cli_output import note, print_json, print_table
from .inspection import projection_names, projection_offsets
from .stores.protocols import Store

#: What the inspector can say of a projection's state: it runs, if at all, elsewhere.
NOT_RUNNING_HERE = "not running here"


def run(args: argparse.Namespace) -> int:
    async def work(store: Store) -> int:
        declared: list[str] = []
        if args.app is not None:
            declared = projection_names(await app_engine(args.app, store))
        offsets = await projection_offsets(store, also=declared)
        rows: list[dict[str, object]] = []
        for offset in offsets:
            row = {**msgspec.structs.asdict(offset), "state": NOT_RUNNING_HERE}
            if args.app is not None:
                row["in_app"] = offset.name in declared
            rows.append(row)
        if args.json:
            print_json(rows)
        elif rows:
            columns = ["projection", "position", "head", "lag", "state"]
            columns += ["in app"] * (args.app is not None)
            cells = [[_cell(value) for value in row.values()] for row in rows]
            print_table(columns, cells, numbers=("position", "head", "lag"))
        if not rows:
            note(args.command, "no projection has saved an offset in this store")
        return 0

    return run_on_store(args, work)


def _cell(value: object) -> object:
    return "yes" if value is True else "no" if value is False else value
