"""Events and states as text for a person: indented JSON for one value, and one-line
summaries for the rows of a table."""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from .. import inspection
from ..records import EventEnvelope
from ..stores.protocols import Store


def pretty_json(data: Any) -> str:
    """Indented JSON for a person to read; anything JSON cannot hold is shown as text."""
    return json.dumps(data, indent=2, ensure_ascii=False, sort_keys=False, default=str)


def compact_json(data: Any, limit: int = 120) -> str:
    """One line of JSON, cut at `limit` characters with an ellipsis: a table row shows the
    start of a payload, and its event page shows all of it."""
    text = json.dumps(data, ensure_ascii=False, separators=(", ", ": "), default=str)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def event_rows(store: Store, envelopes: Iterable[EventEnvelope]) -> list[dict[str, Any]]:
    """Table rows for events: each envelope with its payload summarised in one line."""
    return [
        {
            "envelope": envelope,
            "summary": compact_json(inspection.payload_as_data(store, envelope)),
        }
        for envelope in envelopes
    ]
