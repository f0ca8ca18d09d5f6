"""`eventactors stats`: how many events, of which types, on which days, for which entities."""

from __future__ import annotations

import argparse

from ._cli_common import run_on_store
from ._cli_output import print_json, print_table
from .inspection import count_events
from .stores.protocols import Store


def run(args: argparse.Namespace) -> int:
    async def work(store: Store) -> int:
        counts = await count_events(store, since=args.since)
        if args.json:
            print_json(counts)
            return 0
        since = "" if args.since is None else f" since {args.since:%Y-%m-%d}"
        print(f"{counts.total} events{since}")
        for title, column, table in (
            ("by event type", "event type", counts.by_type),
            ("by entity type", "entity type", counts.by_entity_type),
            ("by day (UTC)", "day", counts.by_day),
        ):
            if table:
                print()
                rows = list(table.items())
                print_table((column, "events"), rows, title=title, numbers=("events",))
        return 0

    return run_on_store(args, work)
