"""The console as a Starlette application: routes, error pages, middleware, and its lifespan.

The lifespan starts the lag sampler and, when given one that is not running, the
application's engine (for states at a revision and for commands); on shutdown it stops
both and closes the store.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
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

from ..engine import Engine
from ..errors import EventActorsError, StoreUnavailable
from ..stores.protocols import Store
from . import views_charts, views_commands, views_entity, views_streams
from .console_state import Console
from .hosts import LOCAL_HOSTS
from .lag_sampler import LagSampler
from .middleware import SecurityHeaders, ServerErrors
from .params import PageError
from .rendering import error_page, make_templates

STATIC = Path(__file__).parent / "static"
#: How long shutdown waits for the lag sampler, which may be inside a store call.
SAMPLER_STOP_TIMEOUT = 5.0

logger = logging.getLogger("eventactors.console")


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
    `allow_commands` too, it offers a form that sends commands.

    The console owns `store`: it closes it on shutdown (through the engine when it started
    the engine, whose `stop` closes its store). An engine that was already running is its
    starter's to stop, and so is its store."""
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
            try:
                # wait, not await: a sampler that died, or does not stop, must not keep the
                # steps below from running
                await asyncio.wait({sampler}, timeout=SAMPLER_STOP_TIMEOUT)
                if not sampler.done():
                    logger.error("the console's lag sampler did not stop; shutting down")
                elif not sampler.cancelled() and sampler.exception() is not None:
                    logger.error("the console's lag sampler had died: %r", sampler.exception())
            finally:
                if engine is not None and started_engine:
                    await engine.stop()  # closes the store
                elif engine is None:
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
            Middleware(ServerErrors),
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
    return error_page(request, exc.status, exc.title, exc.detail)


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    if exc.status_code == 404:
        return error_page(request, 404, "Not found", f"nothing at {request.url.path}")
    if exc.status_code == 405:
        return error_page(request, 405, "Method not allowed", f"{request.method} is not allowed")
    return error_page(request, exc.status_code, "Error", str(exc.detail))


async def _store_unavailable(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, EventActorsError)
    return error_page(request, 503, "Store unavailable", str(exc))
