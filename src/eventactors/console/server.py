"""`eventactors serve`: the web console on uvicorn, bound to 127.0.0.1 unless told otherwise."""

from __future__ import annotations

import asyncio
import sys
from typing import Any

import uvicorn

from .. import inspection
from ..engine import Engine
from ..errors import EventActorsError
from .app import LOCAL_HOSTS, create_app

__all__ = ["console_engine", "create_app", "serve"]

#: Hosts that mean "every interface": the console then answers to any Host header.
ALL_INTERFACES = ("0.0.0.0", "::", "")


def serve(
    location: str,
    *,
    schema: str,
    app: str | None,
    host: str,
    port: int,
    allow_commands: bool,
) -> int:
    """Serves the console until interrupted; 1 with a one-line message if it cannot start."""
    try:
        return asyncio.run(_serve(location, schema, app, host, port, allow_commands))
    except (EventActorsError, ValueError, OSError) as exc:
        print(f"eventactors serve: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 0


async def _serve(
    location: str, schema: str, app: str | None, host: str, port: int, allow_commands: bool
) -> int:
    if allow_commands and app is None:
        raise ValueError("--allow-commands needs --app: the console sends through its engine")
    store = inspection.open_existing_store(location, schema=schema)
    try:
        await inspection.check_reachable(store)
        engine = None if app is None else console_engine(await inspection.load_app(app, store))
    except BaseException:
        await store.close()
        raise
    allowed = ["*"] if host in ALL_INTERFACES else sorted({*LOCAL_HOSTS, host})
    console = create_app(store, engine=engine, allow_commands=allow_commands, allowed_hosts=allowed)
    mode = "commands allowed" if allow_commands else "read-only"
    print(f"eventactors console on {location} ({mode})", file=sys.stderr, flush=True)
    config = uvicorn.Config(console, host=host, port=port, ws="none", lifespan="on")
    server = uvicorn.Server(config)
    await server.serve()
    return 0 if server.started else 1


def console_engine(engine: Engine) -> Engine:
    """An engine with the application's entity types but none of its projections: the
    console rebuilds states and sends commands, and must not run the application's read
    models beside the application itself."""
    console = Engine(store=engine.store)
    registrations: list[tuple[str, Any, dict[str, Any]]] = engine._registrations
    for entity_type, behavior_class, options in registrations:
        console.register(entity_type, behavior_class, **options)
    return console
