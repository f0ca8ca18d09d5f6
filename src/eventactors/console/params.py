"""Reading a request's parameters, and `PageError`, which turns bad input into a page.

A view raises `PageError`; the app turns it into an error page with a 4xx status that names
what was wrong, never a traceback.
"""

from __future__ import annotations

import re

from starlette.requests import Request

#: The largest number a parameter may hold: positions and sequence numbers are signed 64-bit
#: integers in every store, and a larger one overflows the database driver.
MAX_INT = 2**63 - 1
_WHOLE = re.compile(r"[+-]?[0-9]+")


class PageError(Exception):
    """Bad input or a missing thing, shown to the person as a page with this status."""

    def __init__(self, status: int, title: str, detail: str) -> None:
        super().__init__(detail)
        self.status = status
        self.title = title
        self.detail = detail


def int_param(request: Request, name: str, *, default: int, minimum: int = 0) -> int:
    """A whole-number query parameter, or a 400 page naming the parameter and the value."""
    return parse_int(name, request.query_params.get(name, ""), default=default, minimum=minimum)


def parse_int(name: str, raw: str, *, default: int, minimum: int = 0) -> int:
    """`raw` as a whole number from `minimum` to `MAX_INT` (`default` when blank)."""
    raw = raw.strip()
    if not raw:
        return default
    if _WHOLE.fullmatch(raw) is None:
        raise PageError(400, "Bad parameter", f"{name} must be a whole number, got {_shown(raw)}")
    # More than 19 digits is past any 64-bit value (and int() refuses past 4300 digits).
    value = int(raw) if len(raw.lstrip("+-").lstrip("0")) <= 19 else None
    if value is None:
        bound = f"at least {minimum}" if raw.startswith("-") else f"at most {MAX_INT}"
        raise PageError(400, "Bad parameter", f"{name} must be {bound}, got {_shown(raw)}")
    if value < minimum:
        raise PageError(400, "Bad parameter", f"{name} must be at least {minimum}, got {value}")
    if value > MAX_INT:
        raise PageError(400, "Bad parameter", f"{name} must be at most {MAX_INT}, got {value}")
    return value


def _shown(raw: str, limit: int = 80) -> str:
    return repr(raw if len(raw) <= limit else raw[:limit] + "…")
