"""What every view shares: the console's state, rendering, and errors as pages.

A view raises `PageError` for bad input; the app turns it into an error page with a 4xx
status that names what was wrong, never a traceback.
"""

from __future__ import annotations

import json
import secrets
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import jinja2
from starlette.requests import Request
from starlette.responses import Response
from starlette.templating import Jinja2Templates

from ..stores.protocols import Store

if TYPE_CHECKING:
    from ..engine import Engine
    from .lag_sampler import LagSampler

TEMPLATES = Path(__file__).parent / "templates"


class PageError(Exception):
    """Bad input or a missing thing, shown to the person as a page with this status."""

    def __init__(self, status: int, title: str, detail: str) -> None:
        super().__init__(detail)
        self.status = status
        self.title = title
        self.detail = detail


@dataclass
class Console:
    """Everything a view needs, kept on `app.state.console`."""

    store: Store
    engine: Engine | None
    allow_commands: bool
    sampler: LagSampler
    #: One random token per process: a cross-site page cannot read it, so it cannot post.
    csrf_token: str = field(default_factory=lambda: secrets.token_urlsafe(32))


def console_of(request: Request) -> Console:
    console: Console = request.app.state.console
    return console


def make_templates() -> Jinja2Templates:
    # Autoescape for every template, whatever its name: payloads and ids are user data.
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATES),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
    )
    env.filters["pretty"] = pretty_json
    return Jinja2Templates(env=env)


def render(
    request: Request, template: str, context: dict[str, Any], *, status: int = 200
) -> Response:
    console = console_of(request)
    templates: Jinja2Templates = request.app.state.templates
    full = {
        "console": console,
        "has_engine": console.engine is not None,
        "nav": "",
        **context,
    }
    return templates.TemplateResponse(request, template, full, status_code=status)


def pretty_json(data: Any) -> str:
    """Indented JSON for a person to read; anything JSON cannot hold is shown as text."""
    return json.dumps(data, indent=2, ensure_ascii=False, sort_keys=False, default=str)


def compact_json(data: Any, limit: int = 120) -> str:
    text = json.dumps(data, ensure_ascii=False, separators=(", ", ": "), default=str)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def int_param(request: Request, name: str, *, default: int, minimum: int = 0) -> int:
    """A whole-number query parameter, or a 400 page naming the parameter and the value."""
    raw = request.query_params.get(name, "").strip()
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise PageError(
            400, "Bad parameter", f"{name} must be a whole number, got {raw!r}"
        ) from None
    if value < minimum:
        raise PageError(400, "Bad parameter", f"{name} must be at least {minimum}, got {value}")
    return value
