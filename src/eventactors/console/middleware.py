"""What wraps every response: security headers outside, and an error page for anything a
view did not expect inside them, so that even a 500 carries the headers."""

from __future__ import annotations

import logging

from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .rendering import error_page

logger = logging.getLogger("eventactors.console")

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


class ServerErrors:
    """Turns an unexpected exception into the console's error page (500): logged in full
    for whoever runs the console, shown without a traceback to whoever reads it. Starlette's
    own handler for this sits outside every middleware, so its page would have no headers."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def send_noting_start(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, receive, send_noting_start)
        except Exception:
            logger.exception("the console failed on %s %s", scope["method"], scope["path"])
            if started:  # too late for a page: the connection is cut short instead
                raise
            request = Request(scope)
            detail = "the console failed on this page; the error is in the console's log"
            response = error_page(request, 500, "Internal error", detail)
            await response(scope, receive, send)
