"""Projection lag over time and write throughput, as charts with their numbers beside them."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from starlette.requests import Request
from starlette.responses import Response

from .. import inspection
from ..errors import EventActorsError
from .pages import PageError, console_of, render

#: The throughput windows a person can pick: (label, window, bucket, bucket label).
WINDOWS: dict[str, tuple[str, timedelta, timedelta, str]] = {
    "15m": ("last 15 minutes", timedelta(minutes=15), timedelta(seconds=15), "15 seconds"),
    "1h": ("last hour", timedelta(hours=1), timedelta(minutes=1), "minute"),
    "6h": ("last 6 hours", timedelta(hours=6), timedelta(minutes=5), "5 minutes"),
    "24h": ("last 24 hours", timedelta(hours=24), timedelta(minutes=30), "30 minutes"),
    "7d": ("last 7 days", timedelta(days=7), timedelta(hours=6), "6 hours"),
}


async def lag(request: Request) -> Response:
    console = console_of(request)
    try:
        offsets = await inspection.projection_offsets(console.store)
        error = None
    except (EventActorsError, ValueError) as exc:
        offsets, error = [], str(exc)
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
    )


async def throughput(request: Request) -> Response:
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
