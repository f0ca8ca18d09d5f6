"""The stream browser (search by persistence id or by event type) and the event detail view."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from .. import inspection
from .pages import PageError, compact_json, console_of, int_param, render

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
        rows = [
            {
                "envelope": envelope,
                "summary": compact_json(inspection.payload_as_data(store, envelope)),
            }
            for envelope in events
        ]
        context |= {
            "events": rows,
            "after": after,
            "next_after": events[-1].global_position if len(found) > PAGE_SIZE else None,
        }
        return render(request, "events_by_type.html", context)
    page = int_param(request, "page", default=1, minimum=1)
    offset = (page - 1) * PAGE_SIZE
    streams = await inspection.list_streams(
        store, search=query or None, limit=offset + PAGE_SIZE + 1
    )
    context |= {
        "streams": streams[offset : offset + PAGE_SIZE],
        "page": page,
        "has_next": len(streams) > offset + PAGE_SIZE,
    }
    return render(request, "streams.html", context)


async def event_detail(request: Request) -> Response:
    store = console_of(request).store
    raw = request.path_params["position"]
    try:
        position = int(raw)
    except ValueError:
        raise PageError(
            400, "Bad event position", f"an event position is a whole number, got {raw!r}"
        ) from None
    envelope = await inspection.event_by_position(store, position) if position > 0 else None
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
