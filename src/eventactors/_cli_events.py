"""`eventactors events`: a stream's history (or the whole log's), and with `--follow` what
comes after it, live, until Ctrl-C.

A listing is read and printed a page at a time, as a table per page (or a line per event
with `--json` or `--follow`), so that the whole log can be listed in bounded memory."""

from __future__ import annotations

import argparse
from collections.abc import AsyncIterator

from ._cli_common import app_engine, run_on_store
from ._cli_output import note, print_event, print_events
from ._inspection_data import PAGE, log_pages
from .inspection import follow_events, stream_events
from .records import EventEnvelope
from .serialization import Serializer
from .stores.protocols import Store


def run(args: argparse.Namespace) -> int:
    async def work(store: Store) -> int:
        serializer = store.serializer
        if args.app is not None:  # to decode payloads with the application's own types
            engine = await app_engine(args.app, store)
            # and to read through its store: `store` itself, or `store` inside an
            # EncryptedStore like the application's, which opens the payloads
            store, serializer = engine.store, engine.serializer
        head = await store.head_position()  # where following starts, at the latest
        last = 0
        title: str | None = "the log" if args.all else args.persistence_id
        page: list[EventEnvelope] = []
        async for envelope in _history(store, args):
            last = envelope.global_position
            if args.follow or args.json:
                print_event(serializer, envelope, json_lines=args.json)
                continue
            page.append(envelope)
            if len(page) == PAGE:
                print_events(serializer, page, title=title, one_stream=not args.all)
                page, title = [], None
        if page:
            print_events(serializer, page, title=title, one_stream=not args.all)
        if last == 0:
            note(args.command, await _nothing(store, args))
        if args.follow:
            await _follow(store, args, serializer, after=max(head, last))
        return 0

    return run_on_store(args, work, interrupted=0 if args.follow else 130)


async def _follow(
    store: Store, args: argparse.Namespace, serializer: Serializer, after: int
) -> None:
    """The live tail: events after `after` (every event the history printed, or the head read
    before it), never before `--from`."""
    if args.all:
        events = follow_events(store, after_position=max(after, args.from_ - 1))
    else:
        events = follow_events(
            store,
            after_position=after,
            persistence_id=args.persistence_id,
            from_sequence=args.from_,
        )
    async for envelope in events:
        print_event(serializer, envelope, json_lines=args.json)


async def _nothing(store: Store, args: argparse.Namespace) -> str:
    if args.all:
        return "no events in that range of the log"
    if await store.highest_sequence_number(args.persistence_id) == 0:
        return f"no stream {args.persistence_id!r} in this store (see `eventactors streams`)"
    return f"no events of {args.persistence_id!r} in that range"


async def _history(store: Store, args: argparse.Namespace) -> AsyncIterator[EventEnvelope]:
    """The events asked for, in order, read a page at a time: sequence numbers of a stream,
    or global positions of the log with `--all`."""
    left = args.limit
    if args.all:
        pages = log_pages(store, after_position=max(0, args.from_ - 1))
    else:
        pages = _stream_pages(store, args.persistence_id, args.from_, args.to)
    async for page in pages:
        for envelope in page:
            if args.all and args.to is not None and envelope.global_position > args.to:
                return
            if left is not None:
                if left == 0:
                    return
                left -= 1
            yield envelope


async def _stream_pages(
    store: Store, persistence_id: str, first: int, to: int | None
) -> AsyncIterator[list[EventEnvelope]]:
    while page := await stream_events(
        store, persistence_id, from_sequence=first, to_sequence=to, limit=PAGE
    ):
        yield page
        first = page[-1].sequence_number + 1
