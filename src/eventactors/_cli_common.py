"""Running an inspector subcommand: open the store it names, fail in one line, always close.

Every failure a user can cause (a missing file, an unreachable server, a bad `--app`, an
unknown name) ends as one line on stderr and exit code 1, never a traceback.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from collections.abc import Awaitable, Callable

from ._cli_output import error
from .engine import Engine
from .errors import EventActorsError
from .inspection import check_reachable, load_app, open_existing_store
from .stores.protocols import Store

Work = Callable[[Store], Awaitable[int]]


def run_on_store(args: argparse.Namespace, work: Work, *, interrupted: int = 130) -> int:
    """Runs `work` on the store of `--store` and `--schema`; Ctrl-C exits with `interrupted`."""
    try:
        store = open_existing_store(args.store, schema=args.schema)
        return asyncio.run(_checked(store, work))
    except KeyboardInterrupt:
        return interrupted
    except BrokenPipeError:  # the reader went away (`| head`): not our failure
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except (EventActorsError, ValueError, KeyError, OSError) as exc:
        return error(args.command, one_line(exc))


async def _checked(store: Store, work: Work) -> int:
    try:
        await check_reachable(store)
        return await work(store)
    finally:
        await store.close()


def one_line(exc: BaseException) -> str:
    text = str(exc.args[0]) if isinstance(exc, KeyError) and exc.args else str(exc)
    return " ".join(text.split()) or type(exc).__name__


async def app_engine(spec: str, store: Store) -> Engine:
    """`--app`, importable from the current directory as under `python -m`."""
    if "" not in sys.path and os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    return await load_app(spec, store)
