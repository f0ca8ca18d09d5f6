"""Projection lag over time: the store keeps only each projection's current offset, so the
console samples offsets against the head while it runs, into a bounded ring buffer."""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from dataclasses import dataclass
from typing import Any

from .. import inspection
from ..errors import EventActorsError
from ..stores.protocols import Store

logger = logging.getLogger(__name__)

#: At the default interval of 5 s, an hour of history.
DEFAULT_CAPACITY = 720


@dataclass(frozen=True, slots=True)
class LagSample:
    at: float  # Unix time, seconds
    lags: dict[str, int]  # projection name -> events behind the head


class LagSampler:
    """Samples `projection_offsets` every `interval` seconds; the oldest samples fall off."""

    def __init__(self, store: Store, interval: float, capacity: int = DEFAULT_CAPACITY) -> None:
        if not interval > 0:
            raise ValueError(f"sample_interval must be a positive number, got {interval!r}")
        self.store = store
        self.interval = interval
        self.samples: deque[LagSample] = deque(maxlen=capacity)
        self.last_error: str | None = None

    async def sample(self) -> None:
        try:
            offsets = await inspection.projection_offsets(self.store)
        except (EventActorsError, OSError, ValueError) as exc:
            self.last_error = str(exc) or type(exc).__name__
            return
        self.last_error = None
        self.samples.append(LagSample(time.time(), {offset.name: offset.lag for offset in offsets}))

    async def run(self) -> None:
        """Samples until cancelled (the app's lifespan owns this task). An unexpected error
        is shown on the lag page and logged, and sampling goes on: a chart that silently
        stopped would say the lag stood still."""
        task = asyncio.current_task()
        while True:
            try:
                await self.sample()
            except Exception as exc:
                self.last_error = f"the lag sampler failed: {exc!r}"
                logger.exception("the console's lag sampler failed; it samples again")
            if task is not None and task.cancelling():
                # A store's connect can swallow the cancellation (on Python 3.11, one that
                # meets asyncio.wait_for's own timeout comes out as TimeoutError, which
                # `sample` takes for an OSError): stop all the same.
                raise asyncio.CancelledError
            await asyncio.sleep(self.interval)

    def chart_data(self) -> dict[str, Any]:
        """Columns for the chart: times, and per projection its lag at each time (None where
        the projection had no offset yet)."""
        samples = list(self.samples)
        names = sorted({name for sample in samples for name in sample.lags})
        return {
            "times": [round(sample.at, 3) for sample in samples],
            "series": [
                {"name": name, "values": [sample.lags.get(name) for sample in samples]}
                for name in names
            ],
        }
