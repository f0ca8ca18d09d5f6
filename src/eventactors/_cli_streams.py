"""`eventactors streams`: which streams a store holds, how long, and when last written.

"last seq" is the highest sequence number ever written, "events" how many the store still
holds (fewer once `delete_events_to` removed some); `--json` names them `highest_sequence`
and `events`, beside `persistence_id`, `entity_type`, `entity_id` and `last_timestamp`."""

from __future__ import annotations

import argparse

from ._cli_common import run_on_store
from ._cli_output import moment, note, print_json, print_table
from .inspection import list_streams
from .stores.protocols import Store


def run(args: argparse.Namespace) -> int:
    async def work(store: Store) -> int:
        limit = args.limit or None
        streams = await list_streams(
            store, entity_type=args.type, search=args.search,
            limit=None if limit is None else limit + 1,
        )  # fmt: skip
        shown = streams[:limit]
        if args.json:
            print_json(shown)
        else:
            rows = [
                (s.persistence_id, s.highest_sequence, s.events, moment(s.last_timestamp))
                for s in shown
            ]
            print_table(
                ("stream", "last seq", "events", "last event (UTC)"),
                rows,
                numbers=("last seq", "events"),
            )
        if limit is not None and len(streams) > limit:
            note(args.command, f"showing the first {limit} streams; --limit 0 shows them all")
        elif not shown:
            note(args.command, "no streams match")
        return 0

    return run_on_store(args, work)
