"""The console's state, shared by every view: its store, the application's engine, its mode,
the lag sampler, and the secrets that guard its forms and notices."""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from starlette.requests import Request

from ..stores.protocols import Store

if TYPE_CHECKING:
    from ..engine import Engine
    from .lag_sampler import LagSampler


@dataclass
class Console:
    """Everything a view needs, kept on `app.state.console`."""

    store: Store
    engine: Engine | None
    allow_commands: bool
    sampler: LagSampler
    #: One random token per process: a cross-site page cannot read it, so it cannot post.
    csrf_token: str = field(default_factory=lambda: secrets.token_urlsafe(32))
    #: Signs the "command accepted" notice carried in a redirect, so a link cannot fake one.
    notice_key: bytes = field(default_factory=lambda: secrets.token_bytes(32))


def console_of(request: Request) -> Console:
    """The console serving `request`: views reach it through the app, not a global, so that
    two consoles in one process (as in the tests) never share a store or a token."""
    console: Console = request.app.state.console
    return console
