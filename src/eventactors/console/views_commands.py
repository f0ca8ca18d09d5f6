"""Sending a command from the entity page: only with `--allow-commands`, only with the token.

The form is urlencoded; it is parsed here with the standard library, so the console needs no
multipart parser.
"""

from __future__ import annotations

import secrets
from urllib.parse import parse_qs, urlencode

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from ..errors import EventActorsError, Rejected
from ..records import split_persistence_id
from .commands import build_command, find_command
from .pages import PageError, console_of

MAX_FORM_BYTES = 256 * 1024
SEND_TIMEOUT = 10.0


async def send_command(request: Request) -> Response:
    console = console_of(request)
    if not console.allow_commands:
        raise PageError(
            403, "Read-only console", "this console is read-only: start it with --allow-commands"
        )
    form = await _form(request)
    if not secrets.compare_digest(form.get("csrf", ""), console.csrf_token):
        raise PageError(
            403, "Form expired", "the form's CSRF token is missing or wrong: reload the page"
        )
    engine = console.engine
    if engine is None:
        raise PageError(400, "No application", "sending commands needs --app module:engine")
    persistence_id = form.get("id", "")
    entity_type, entity_id = split_persistence_id(persistence_id)
    if entity_type not in engine.entity_types:
        raise PageError(
            400, "Unknown entity type", f"the --app engine does not register {entity_type!r}"
        )
    name = form.get("command", "")
    cls = find_command(engine, entity_type, name)
    if cls is None:
        raise PageError(
            400, "Unknown command", f"{entity_type!r} declares no command type named {name!r}"
        )
    try:
        command = build_command(cls, form.get("body", ""))
    except ValueError as exc:
        raise PageError(400, "Bad command body", str(exc)) from None
    try:
        reply = await engine.send(entity_type, entity_id, command, timeout=SEND_TIMEOUT)
    except Rejected as exc:
        meta = ", ".join(f"{key}={value}" for key, value in exc.meta.items())
        detail = f"{name} was rejected: {exc.reason}" + (f" ({meta})" if meta else "")
        raise PageError(422, "Command rejected", detail) from None
    except EventActorsError as exc:
        raise PageError(409, "Command failed", f"{name} failed: {exc}") from None
    query = urlencode({"id": persistence_id, "sent": name, "at": reply.revision})
    return RedirectResponse(f"/stream?{query}", status_code=303)


async def _form(request: Request) -> dict[str, str]:
    if request.headers.get("content-type", "").split(";")[0].strip() != (
        "application/x-www-form-urlencoded"
    ):
        raise PageError(
            415, "Unsupported form", "send the form as application/x-www-form-urlencoded"
        )
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_FORM_BYTES:
            raise PageError(413, "Form too large", f"the form is over {MAX_FORM_BYTES} bytes")
    try:
        fields = parse_qs(body.decode("utf-8"), keep_blank_values=True, strict_parsing=False)
    except UnicodeDecodeError:
        raise PageError(400, "Bad form", "the form is not UTF-8") from None
    return {key: values[-1] for key, values in fields.items()}
