"""The stream browser (search by persistence id or by event type) and the event detail view."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from .. import inspection
from .console_state import console_of
from .formatting import event_rows
from .params import PageError, int_param, parse_int
from .rendering import render

PAGE_SIZE = 50
SEARCH_MODES = ("id", "type")


async def browse(request: Request) -> Response:
    """Streams whose id contains the search text, or events of one type, a page at a time."""
    store = console_of(request).store
    query = request.query_params.get("q", "").strip()
    mode = request.query_params.get("by", "id")
    if mode not in SEARCH_MODES:
        raise PageError(400, "Bad search", f"by must be 'id' or 'type', got {mode!r}")
    context: dict[str, object] = {"nav": "streams", "q": query, "by": mode}
    if mode == "type" and query:
        after = int_param(request, "after", default=0)
        found = await inspection.find_events(
            store, event_type=query, after_position=after, limit=PAGE_SIZE + 1
        )
        events = found[:PAGE_SIZE]
        context |= {
            "events": event_rows(store, events),
            "after": after,
            "next_after": events[-1].global_position if len(found) > PAGE_SIZE else None,
        }
        return render(request, "events_by_type.html", context)
    page = int_param(request, "page", default=1, minimum=1)
    streams = await inspection.list_streams(
        store, search=query or None, offset=(page - 1) * PAGE_SIZE, limit=PAGE_SIZE + 1
    )
    context |= {
        "streams": streams[:PAGE_SIZE],
        "page": page,
        "has_next": len(streams) > PAGE_SIZE,
    }
    return render(request, "streams.html", context)


async def event_detail(request: Request) -> Response:
    """One event with everything stored beside its payload (ids, causation, metadata), since
    a person asking "why did this happen" needs the command and correlation ids, not only
    the payload the tables summarise."""
    store = console_of(request).store
    position = parse_int("position", request.path_params["position"], default=0, minimum=1)
    envelope = await inspection.event_by_position(store, position)
    if envelope is None:
        raise PageError(404, "No such event", f"no event at global position {position}")
    return render(
        request,
        "event.html",
        {
            "nav": "streams",
            "envelope": envelope,
            "payload": inspection.payload_as_data(store, envelope),
            "metadata": sorted(envelope.metadata.items()),
        },
    )
