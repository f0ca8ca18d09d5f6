"""The web console: `eventactors serve --store PATH|DSN [--app module:engine]`.

Server-rendered pages over a store (streams, events, entity timelines, projection lag, write
throughput), read-only unless started with `--allow-commands`. Needs the `console` extra.
"""

from .app import create_app as create_app
from .server import serve as serve

__all__ = ["create_app", "serve"]
