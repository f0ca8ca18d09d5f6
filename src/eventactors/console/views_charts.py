"""Projection lag over time and write throughput, as charts with their numbers beside them."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from starlette.requests import Request
from starlette.responses import Response

from .. import inspection
from ..errors import EventActorsError
from .console_state import console_of
from .params import PageError
from .rendering import render

#: The throughput windows a person can pick: (label, window, bucket, bucket label).
WINDOWS: dict[str, tuple[str, timedelta, timedelta, str]] = {
    "15m": ("last 15 minutes", timedelta(minutes=15), timedelta(seconds=15), "15 seconds"),
    "1h": ("last hour", timedelta(hours=1), timedelta(minutes=1), "minute"),
    "6h": ("last 6 hours", timedelta(hours=6), timedelta(minutes=5), "5 minutes"),
    "24h": ("last 24 hours", timedelta(hours=24), timedelta(minutes=30), "30 minutes"),
    "7d": ("last 7 days", timedelta(days=7), timedelta(hours=6), "6 hours"),
}


async def lag(request: Request) -> Response:
    """Each projection's offset and lag now, read from the store, beside the lag over time
    that the sampler kept: the store holds only current offsets, so the history exists only
    while the console runs. A store that cannot be read gives a 503 page that says so and
    still shows the samples taken before."""
    console = console_of(request)
    try:
        offsets = await inspection.projection_offsets(console.store)
        error = None
    except (EventActorsError, OSError, ValueError) as exc:  # StoreUnavailable among them
        offsets, error = [], str(exc) or type(exc).__name__
    sampler = console.sampler
    return render(
        request,
        "lag.html",
        {
            "nav": "lag",
            "offsets": offsets,
            "error": error or sampler.last_error,
            "samples": len(sampler.samples),
            "interval": sampler.interval,
            "chart": sampler.chart_data(),
        },
        status=503 if error is not None else 200,
    )


async def throughput(request: Request) -> Response:
    """Events written per bucket over a chosen window, counted from the events' own
    timestamps: the store keeps no rates, so the window picks how much of the log is read."""
    console = console_of(request)
    key = request.query_params.get("window", "1h")
    if key not in WINDOWS:
        raise PageError(
            400, "Bad window", f"window must be one of {', '.join(WINDOWS)}, got {key!r}"
        )
    label, window, bucket, bucket_label = WINDOWS[key]
    until = datetime.now(UTC)
    rates = await inspection.write_rate(
        console.store, bucket=bucket, since=until - window, until=until
    )
    total = sum(count for _, count in rates)
    busiest = max(rates, key=lambda rate: rate[1], default=None)
    return render(
        request,
        "throughput.html",
        {
            "nav": "throughput",
            "windows": {name: spec[0] for name, spec in WINDOWS.items()},
            "window": key,
            "label": label,
            "bucket_label": bucket_label,
            "total": total,
            "busiest": busiest if busiest is not None and busiest[1] > 0 else None,
            "chart": {
                "times": [start.timestamp() for start, _ in rates],
                "series": [{"name": "events", "values": [count for _, count in rates]}],
            },
        },
    )
