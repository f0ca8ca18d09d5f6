"""Running an inspector subcommand: open the store it names, fail in one line, always close.

Every failure a user can cause (a missing file, an unreachable server, a bad `--app`, an
unknown name) ends as one line on stderr and exit code 1, never a traceback. The store is
opened read-only: only `rebuild` asks for a writable one.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from collections.abc import Awaitable, Callable

from ._cli_output import error
from ._inspection_stores import InspectionError, one_line, open_checked, serializer_named
from .engine import Engine
from .errors import EventActorsError, SerializationError
from .inspection import load_app
from .stores.protocols import Store

Work = Callable[[Store], Awaitable[int]]


def run_on_store(
    args: argparse.Namespace, work: Work, *, interrupted: int = 130, read_only: bool = True
) -> int:
    """Runs `work` on the store of `--store`, `--schema` and `--serializer`; Ctrl-C exits
    with `interrupted`."""
    try:
        return asyncio.run(_checked(args, work, read_only))
    except KeyboardInterrupt:
        return interrupted
    except BrokenPipeError:  # the reader went away (`| head`): not our failure
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except (EventActorsError, ValueError, KeyError, OSError) as exc:
        return error(args.command, one_line(exc))


async def _checked(args: argparse.Namespace, work: Work, read_only: bool) -> int:
    serializer = serializer_named(args.serializer)
    store = await open_checked(
        args.store, schema=args.schema, read_only=read_only, serializer=serializer
    )
    try:
        return await work(store)
    finally:
        await store.close()


async def app_engine(spec: str, store: Store) -> Engine:
    """`--app`, importable from the current directory as under `python -m`. A factory that
    cannot register its types with the store's serializer is told where to choose another."""
    if "" not in sys.path and os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    try:
        return await load_app(spec, store)
    except InspectionError as exc:
        if isinstance(exc.__cause__, SerializationError):
            raise InspectionError(
                f"{exc} (written by another serializer? see --serializer)"
            ) from None
        raise
