"""The entity timeline: a stream's events in order, and the state at a chosen revision.

The state is rebuilt by the application's own behavior (`engine.get_state(..., at_revision=)`),
so it needs `--app`; without it, or when the behavior cannot rebuild it, the page still shows
the events and says in the state panel why there is no state.
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
from .command_forms import command_choices
from .console_state import console_of
from .formatting import event_rows
from .params import PageError, int_param
from .rendering import render
from .views_commands import sent_notice

PAGE_SIZE = 100
STATE_TIMEOUT = 10.0


async def timeline(request: Request) -> Response:
    """A stream's events a page at a time beside its state at revision `at` (the latest by
    default). Without `from`, the page is the one that holds `at`, so that the highlighted
    row and the state shown are always of the same revision."""
    console = console_of(request)
    persistence_id = request.query_params.get("id", "")
    if not persistence_id:
        raise PageError(400, "No stream given", "the timeline needs ?id=<persistence id>")
    highest = await console.store.highest_sequence_number(persistence_id)
    if highest == 0:
        raise PageError(404, "No such stream", f"no stream named {persistence_id!r}")
    entity_type, entity_id = split_persistence_id(persistence_id)
    at = _revision_param(request, persistence_id, highest)
    start = int_param(request, "from", default=page_start(at), minimum=1)
    envelopes = await inspection.stream_events(
        console.store, persistence_id, from_sequence=start, limit=PAGE_SIZE
    )
    last = envelopes[-1].sequence_number if envelopes else start - 1
    context: dict[str, Any] = {
        "nav": "streams",
        "persistence_id": persistence_id,
        "entity_type": entity_type,
        "entity_id": entity_id,
        "highest": highest,
        "rows": event_rows(console.store, envelopes),
        "start": start,
        "previous_from": max(1, start - PAGE_SIZE) if start > 1 else None,
        "next_from": last + 1 if last < highest else None,
        "at": at,
        "state": None,
        "state_note": None,
        "sent": sent_notice(request, persistence_id),
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
        try:
            context["state"] = await _state_at(engine, entity_type, entity_id, at)
        except (EventActorsError, ValueError) as exc:
            # The events are still worth reading: they are what the behavior cannot replay.
            context["state_note"] = f"Cannot rebuild the state at revision {at}: {exc}"
        else:
            if console.allow_commands:
                context["commands"] = command_choices(engine, entity_type)
    return render(request, "timeline.html", context)


def page_start(revision: int) -> int:
    """The first revision of the page of the timeline that shows `revision`."""
    return (revision - 1) // PAGE_SIZE * PAGE_SIZE + 1


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
    state, _ = await engine.get_state(entity_type, entity_id, at_revision=at, timeout=STATE_TIMEOUT)
    try:
        return msgspec.to_builtins(state)
    except TypeError:  # a state type msgspec cannot walk (a protobuf message): show its text
        return repr(state)
