"""Pages from templates: one Jinja2 environment that escapes everything, and `render`, which
gives every template the console's mode."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import jinja2
from starlette.requests import Request
from starlette.responses import Response
from starlette.templating import Jinja2Templates

from .console_state import console_of
from .formatting import pretty_json

TEMPLATES = Path(__file__).parent / "templates"


def make_templates() -> Jinja2Templates:
    """Autoescaping for every template whatever its file name, since payloads, ids and
    projection names are data anyone who can write to the store chose; and strict undefined
    names, so that a template's typo fails its test instead of rendering blank."""
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


def error_page(request: Request, status: int, title: str, detail: str) -> Response:
    return render(request, "error.html", {"title": title, "detail": detail}, status=status)
