"""The console as a Starlette application: routes, error pages, headers, and its lifespan.

The lifespan starts the lag sampler and, when given one, the application's engine (for
states at a revision and for commands); on shutdown it stops both and closes the store.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Sequence
from pathlib import Path

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.middleware.trustedhost import TrustedHostMiddleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ..engine import Engine
from ..errors import EventActorsError, StoreUnavailable
from ..stores.protocols import Store
from . import views_charts, views_commands, views_entity, views_streams
from .lag_sampler import LagSampler
from .pages import Console, PageError, make_templates, render

STATIC = Path(__file__).parent / "static"

#: Loopback names: a console bound to 127.0.0.1 answers only to these, so that a page on
#: another site cannot reach it through a name that resolves to 127.0.0.1 (DNS rebinding).
LOCAL_HOSTS = ("127.0.0.1", "localhost")

SECURITY_HEADERS = [
    (
        b"content-security-policy",
        b"default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        b"frame-ancestors 'none'; form-action 'self'; base-uri 'none'",
    ),
    (b"x-frame-options", b"DENY"),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"same-origin"),
]


def create_app(
    store: Store,
    *,
    engine: Engine | None = None,
    allow_commands: bool = False,
    sample_interval: float = 5.0,
    allowed_hosts: Sequence[str] = LOCAL_HOSTS,
) -> Starlette:
    """The console over `store`. With `engine` (an application's engine on the same store,
    started here if it is not running), it shows states at a revision; with
    `allow_commands` too, it offers a form that sends commands."""
    if engine is not None and engine.store is not store:
        raise ValueError("the engine must run on the console's store")
    console = Console(
        store=store,
        engine=engine,
        allow_commands=allow_commands,
        sampler=LagSampler(store, sample_interval),
    )

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        started_engine = engine is not None and not engine.is_running
        if engine is not None and started_engine:
            await engine.start()
        sampler = asyncio.get_running_loop().create_task(
            console.sampler.run(), name="eventactors console lag sampler"
        )
        try:
            yield
        finally:
            sampler.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await sampler
            if engine is not None and started_engine:
                await engine.stop()
            await store.close()

    routes = [
        Route("/", views_streams.browse, name="streams"),
        Route("/events/{position}", views_streams.event_detail, name="event"),
        Route("/stream", views_entity.timeline, name="timeline"),
        Route("/stream/command", views_commands.send_command, methods=["POST"], name="command"),
        Route("/lag", views_charts.lag, name="lag"),
        Route("/throughput", views_charts.throughput, name="throughput"),
        Mount("/static", StaticFiles(directory=STATIC), name="static"),
    ]
    app = Starlette(
        routes=routes,
        middleware=[
            Middleware(SecurityHeaders),
            Middleware(TrustedHostMiddleware, allowed_hosts=list(allowed_hosts)),
        ],
        exception_handlers={
            PageError: _page_error,
            HTTPException: _http_error,
            StoreUnavailable: _store_unavailable,
        },
        lifespan=lifespan,
    )
    app.state.console = console
    app.state.templates = make_templates()
    return app


async def _page_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, PageError)
    return _error_page(request, exc.status, exc.title, exc.detail)


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    if exc.status_code == 404:
        return _error_page(request, 404, "Not found", f"nothing at {request.url.path}")
    if exc.status_code == 405:
        return _error_page(request, 405, "Method not allowed", f"{request.method} is not allowed")
    return _error_page(request, exc.status_code, "Error", str(exc.detail))


async def _store_unavailable(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, EventActorsError)
    return _error_page(request, 503, "Store unavailable", str(exc))


def _error_page(request: Request, status: int, title: str, detail: str) -> Response:
    return render(request, "error.html", {"title": title, "detail": detail}, status=status)


class SecurityHeaders:
    """Adds a strict content security policy and framing headers to every response: even a
    payload that escaped its escaping could run no script."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), *SECURITY_HEADERS]
            await send(message)

        await self.app(scope, receive, send_with_headers)
