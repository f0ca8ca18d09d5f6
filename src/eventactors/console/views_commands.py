"""Sending a command from the entity page: only with `--allow-commands`, only with the token.

The form is urlencoded; it is parsed here with the standard library, so the console needs no
multipart parser. After a command is accepted, the redirect to the timeline carries a notice
signed with the console's key, so that no link can make the page claim a command was sent.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from urllib.parse import parse_qs, urlencode

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from ..errors import EventActorsError, Rejected
from ..records import split_persistence_id
from .command_forms import build_command, find_command
from .console_state import Console, console_of
from .params import PageError

MAX_FORM_BYTES = 256 * 1024
SEND_TIMEOUT = 10.0


async def send_command(request: Request) -> Response:
    """Sends one command through the console's engine and shows the timeline after it.

    Every check comes before the send, each with its own page, because a person who gets
    "failed" must know whether anything was written: only the engine's answer says a command
    was accepted (303 to the timeline), rejected by the behavior (422), or not applied (409).
    """
    console = console_of(request)
    if not console.allow_commands:
        raise PageError(
            403, "Read-only console", "this console is read-only: start it with --allow-commands"
        )
    form = await _form(request)
    # Bytes, not str: compare_digest refuses a str with characters outside ASCII.
    if not secrets.compare_digest(form.get("csrf", "").encode(), console.csrf_token.encode()):
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
    revision = str(reply.revision)
    query = urlencode(
        {
            "id": persistence_id,
            "at": revision,
            "sent": name,
            "sig": notice_signature(console, persistence_id, name, revision),
        }
    )
    return RedirectResponse(f"/stream?{query}", status_code=303)


def notice_signature(console: Console, persistence_id: str, name: str, revision: str) -> str:
    """The signature of "command `name` took `persistence_id` to `revision`"."""
    message = "\0".join((persistence_id, name, revision)).encode()
    return hmac.new(console.notice_key, message, hashlib.sha256).hexdigest()


def sent_notice(request: Request, persistence_id: str) -> str | None:
    """The name of the command the console just sent to this stream, if the request carries
    the console's own signed notice (and commands are allowed); else None."""
    console = console_of(request)
    params = request.query_params
    name, revision = params.get("sent", ""), params.get("at", "")
    if not console.allow_commands or not name:
        return None
    expected = notice_signature(console, persistence_id, name, revision)
    if not hmac.compare_digest(params.get("sig", "").encode(), expected.encode()):
        return None
    return name


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
