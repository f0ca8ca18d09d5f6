"""`eventactors serve`: the web console, which lives in `eventactors.console` (the `console`
extra); imported only when asked for, so the command works without it."""

from __future__ import annotations

import argparse
import importlib

from ._cli_output import error
from .inspection import InspectionError, open_existing_store


def run(args: argparse.Namespace) -> int:
    try:
        server = importlib.import_module("eventactors.console.server")
    except ImportError as exc:
        return error(
            args.command,
            f"the web console is not installed ({exc}): pip install 'eventactors[console]'",
        )
    try:
        # A missing file fails here, at once; stores connect on first use, so the store is
        # handed to the server unopened, and the server closes it.
        store = open_existing_store(args.store, schema=args.schema)
    except InspectionError as exc:
        return error(args.command, str(exc))
    status: int = server.serve(
        store, location=args.store, app=args.app, host=args.host, port=args.port,
        allow_commands=args.allow_commands,
    )  # fmt: skip
    return status
