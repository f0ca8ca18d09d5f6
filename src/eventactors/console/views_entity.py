"""The entity timeline: a stream's events in order, and the state at a chosen revision.

The state is rebuilt by the application's own behavior (`engine.get_state(..., at_revision=)`),
so it needs `--app`; without it the page shows the events only and says so.
"""

from __future__ import annotations

from typing import Any

import msgspec
from starlette.requests import Request
from starlette.responses import Response

from .. import inspection
from ..engine import Engine
from ..errors import EventActorsError
from ..records import split_persistence_id
from .commands import command_choices
from .pages import PageError, compact_json, console_of, int_param, render

PAGE_SIZE = 100
STATE_TIMEOUT = 10.0


async def timeline(request: Request) -> Response:
    console = console_of(request)
    persistence_id = request.query_params.get("id", "")
    if not persistence_id:
        raise PageError(400, "No stream given", "the timeline needs ?id=<persistence id>")
    highest = await console.store.highest_sequence_number(persistence_id)
    if highest == 0:
        raise PageError(404, "No such stream", f"no stream named {persistence_id!r}")
    entity_type, entity_id = split_persistence_id(persistence_id)
    start = int_param(request, "from", default=1, minimum=1)
    at = _revision_param(request, persistence_id, highest)
    envelopes = await inspection.stream_events(
        console.store, persistence_id, from_sequence=start, limit=PAGE_SIZE
    )
    rows = [
        {
            "envelope": envelope,
            "summary": compact_json(inspection.payload_as_data(console.store, envelope)),
        }
        for envelope in envelopes
    ]
    last = envelopes[-1].sequence_number if envelopes else start - 1
    context: dict[str, Any] = {
        "nav": "streams",
        "persistence_id": persistence_id,
        "entity_type": entity_type,
        "entity_id": entity_id,
        "highest": highest,
        "rows": rows,
        "start": start,
        "next_from": last + 1 if last < highest else None,
        "at": at,
        "state": None,
        "state_note": None,
        "sent": request.query_params.get("sent", ""),
        "commands": [],
    }
    engine = console.engine
    if engine is None:
        context["state_note"] = (
            "State needs --app: start the console with --app module:engine so that it can "
            "rebuild states with the application's behaviors."
        )
    elif entity_type not in engine.entity_types:
        context["state_note"] = (
            f"The --app engine does not register the entity type {entity_type!r}, "
            "so the console cannot rebuild its state."
        )
    else:
        context["state"] = await _state_at(engine, entity_type, entity_id, at)
        if console.allow_commands:
            context["commands"] = command_choices(engine, entity_type)
    return render(request, "timeline.html", context)


def _revision_param(request: Request, persistence_id: str, highest: int) -> int:
    at = int_param(request, "at", default=highest, minimum=1)
    if at > highest:
        raise PageError(
            400,
            "Bad revision",
            f"{persistence_id!r} is at revision {highest}; revision {at} is beyond it",
        )
    return at


async def _state_at(engine: Engine, entity_type: str, entity_id: str, at: int) -> Any:
    try:
        state, _ = await engine.get_state(
            entity_type, entity_id, at_revision=at, timeout=STATE_TIMEOUT
        )
    except (EventActorsError, ValueError) as exc:
        raise PageError(
            409, "Cannot rebuild the state", f"{entity_type}|{entity_id} at revision {at}: {exc}"
        ) from None
    try:
        return msgspec.to_builtins(state)
    except TypeError:  # a state type msgspec cannot walk (a protobuf message): show its text
        return repr(state)
