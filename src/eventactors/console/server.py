"""`eventactors serve`: the web console on uvicorn, bound to 127.0.0.1 unless told otherwise.

Binding anywhere else prints a one-line warning, since anyone who can reach the address can
read every event. The console then answers only to Host names it is served under (see
`hosts.allowed_hosts`). Commands are refused on every interface at once (0.0.0.0, ::): to
allow them off this machine, bind the one address they should be sent to.
"""

from __future__ import annotations

import asyncio
import sys
from dataclasses import dataclass

import uvicorn

from .. import inspection
from ..engine import Engine
from ..errors import EventActorsError
from ..stores.protocols import Store
from . import hosts
from .app import create_app

__all__ = ["console_engine", "create_app", "serve"]

#: How long the console's engine keeps an entity after its last command. The application
#: writes the same streams, so an entity kept between requests would decide on a stale state
#: and its next append would fail; this passivates it on the sweep after its reply (10 ms).
PASSIVATE_AFTER = 0.001


@dataclass(frozen=True)
class Options:
    location: str  # as given: for messages
    app: str | None
    host: str
    port: int
    allow_commands: bool


def serve(
    store: Store,
    *,
    location: str,
    app: str | None,
    host: str,
    port: int,
    allow_commands: bool,
) -> int:
    """Serves the console on `store` (opened, not yet used; the console closes it) until
    interrupted; 1 with a one-line message if it cannot start."""
    options = Options(location, app, host, port, allow_commands)
    try:
        return asyncio.run(_serve(store, options))
    except (EventActorsError, ValueError, OSError) as exc:
        print(f"eventactors serve: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 0


async def _serve(store: Store, options: Options) -> int:
    server: uvicorn.Server | None = None
    try:
        _check(options)
        with hosts.bind(options.host, options.port) as sock:
            await inspection.check_reachable(store)
            engine = None
            if options.app is not None:
                engine = await console_engine(await inspection.load_app(options.app, store))
            console = create_app(
                # The engine's store: `store` itself, or `store` inside an EncryptedStore like
                # the application's, through which the console reads what the application
                # wrote and writes as it does (see `inspection.engine_on`).
                store if engine is None else engine.store,
                engine=engine,
                allow_commands=options.allow_commands,
                allowed_hosts=hosts.allowed_hosts(options.host),
            )
            _announce(options, sock.getsockname()[1])
            config = uvicorn.Config(console, ws="none", lifespan="on")
            server = uvicorn.Server(config)
            await server.serve(sockets=[sock])
            return 0 if server.started else 1
    finally:
        if server is None or not server.started:  # once it started, its lifespan closes it
            await store.close()


def _check(options: Options) -> None:
    if options.allow_commands and options.app is None:
        raise ValueError("--allow-commands needs --app: the console sends through its engine")
    if options.allow_commands and hosts.is_wildcard(options.host):
        raise ValueError(
            f"--allow-commands is refused on every interface (--host {options.host!r}): "
            "bind the one address that commands may come to"
        )


def _announce(options: Options, port: int) -> None:
    mode = "commands allowed" if options.allow_commands else "read-only"
    if not hosts.is_loopback(options.host):
        names = ", ".join(hosts.allowed_hosts(options.host))
        print(
            f"eventactors serve: warning: {options.host or 'every interface'} is not a "
            "loopback address: anyone who can reach it can read every event in the store; "
            f"the console answers only to the host names {names}",
            file=sys.stderr,
        )
    url = f"http://{hosts.header_name(options.host) or '0.0.0.0'}:{port}"
    print(f"eventactors console at {url} on {options.location} ({mode})", file=sys.stderr)
    sys.stderr.flush()


async def console_engine(app: Engine) -> Engine:
    """The application's entity types on its store, without its projections: the console
    rebuilds states and sends commands, and must not run the application's read models
    beside the application itself. Its entities leave memory after each command (see
    `PASSIVATE_AFTER`)."""
    return await inspection.engine_on(
        app, app.store, projections=False, passivate_after=PASSIVATE_AFTER
    )
