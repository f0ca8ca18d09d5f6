"""`eventactors serve`: the web console, which lives in `eventactors.console` (the `console`
extra); imported only when asked for, so the command works without it."""

from __future__ import annotations

import argparse
import asyncio
import importlib

from ._cli_output import error
from .inspection import InspectionError, open_checked

#: What the `console` extra installs: only their absence means the console is not installed.
CONSOLE_PACKAGES = frozenset({"starlette", "uvicorn", "jinja2"})


def run(args: argparse.Namespace) -> int:
    try:
        server = importlib.import_module("eventactors.console.server")
    except ModuleNotFoundError as exc:
        if exc.name is None or exc.name.partition(".")[0] not in CONSOLE_PACKAGES:
            raise  # a bug in the console, not a missing extra: show it as one
        return error(
            args.command,
            f"the web console is not installed ({exc}): pip install 'eventactors[console]'",
        )
    try:
        # Checked read-only first, so a file that is not a store never gets tables; the
        # store comes back unconnected, for the server's own loop, which closes it. It can
        # write only when commands are allowed.
        store = asyncio.run(
            open_checked(args.store, schema=args.schema, read_only=not args.allow_commands)
        )
    except InspectionError as exc:
        return error(args.command, str(exc))
    status: int = server.serve(
        store, location=args.store, app=args.app, host=args.host, port=args.port,
        allow_commands=args.allow_commands,
    )  # fmt: skip
    return status
