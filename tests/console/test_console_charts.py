"""The two charts: projection lag as sampled while the console runs, and write throughput."""

from __future__ import annotations

import json
import math
import re
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

from conftest import browser_page
from console_seed import LAGGING, Seeded
from playwright.sync_api import Browser, Locator, Page, expect


def hover_plot(chart: Locator, at: float = 0.5) -> None:
    """Moves the mouse over the plot, as a person reading a value off the chart would."""
    plot = chart.locator(".u-over")
    box = plot.bounding_box()
    assert box is not None
    plot.hover(position={"x": box["width"] * at, "y": box["height"] / 2})


def test_lag_table_and_chart(page: Page, console: str, bank_db) -> None:
    _, seeded = bank_db
    page.goto(console + "/lag")
    table = page.get_by_role("table").first
    lagging = table.get_by_role("row").filter(has_text=LAGGING)
    expected_lag = seeded.head - seeded.lagging_position
    expect(lagging).to_have_text(
        re.compile(rf"{LAGGING}\s*{seeded.lagging_position}\s*{seeded.head}\s*{expected_lag}")
    )
    expect(table.get_by_role("row").filter(has_text="balances")).to_contain_text(f"{seeded.head}")

    # The sampler runs every 0.2 s: reload until the chart has a line, not a lone point.
    samples = page.get_by_text(re.compile(r"^\d+ samples?, one every 0.2 s"))
    expect(samples).to_be_visible()
    deadline = time.monotonic() + 10
    while int(samples.inner_text().split()[0]) < 3:
        assert time.monotonic() < deadline, "the sampler took no 3 samples in 10 s"
        page.wait_for_timeout(100)
        page.reload()
    chart = page.locator(".chart")
    expect(chart.locator("canvas")).to_be_visible()
    expect(chart).to_have_attribute("data-points", re.compile(r"^[1-9]\d*$"))
    legend = chart.locator(".u-legend")
    expect(legend).to_contain_text(LAGGING)
    expect(legend).to_contain_text("balances")
    hover_plot(chart)
    expect(legend.locator(".u-series").filter(has_text=LAGGING)).to_contain_text(str(expected_lag))


def hover_bucket(chart: Locator, index: int, buckets: int) -> None:
    """Moves the mouse over one bar of a chart of `buckets` evenly spaced bars (just inside
    the plot at either end, where the plot's own edge is)."""
    hover_plot(chart, at=min(max(index / (buckets - 1), 0.002), 0.998))


def bucket_counts(timestamps: Sequence[datetime], times: list[float]) -> list[int]:
    """How many of `timestamps` fall in each bucket that starts at one of `times`."""
    width = times[1] - times[0]
    counts = [0] * len(times)
    for moment in timestamps:
        index = math.floor((moment.timestamp() - times[0]) / width)
        if 0 <= index < len(times):
            counts[index] += 1
    return counts


def utc(seconds: float) -> str:
    return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%d %H:%M:%S")


def test_throughput_counts_every_bucket_in_utc(
    browser: Browser, console: str, bank_db: tuple[Path, Seeded]
) -> None:
    _, seeded = bank_db
    # A browser five and a half hours from UTC: the chart must still read in UTC.
    with browser_page(browser, timezone_id="Asia/Kolkata") as page:
        page.goto(console)
        page.get_by_role("link", name="Write throughput").click()
        # All of the seeded history lies in the last hour.
        summary = f"{seeded.head} events in the last hour, per minute."
        expect(page.get_by_text(summary)).to_be_visible()
        data = json.loads(page.locator("#rate-data").text_content() or "")
        times, [series] = data["times"], data["series"]
        counts = bucket_counts(seeded.timestamps, times)
        assert len(times) == 60 and sum(counts) == seeded.head
        assert len([count for count in counts if count]) >= 10  # history spread over the hour
        assert series["values"] == counts

        busiest = counts.index(max(counts))
        busiest_text = f"Busiest: {counts[busiest]} events from {utc(times[busiest])} UTC."
        expect(page.get_by_text(busiest_text)).to_be_visible()
        chart = page.locator(".chart")
        expect(chart.locator("canvas")).to_be_visible()
        legend = chart.locator(".u-legend .u-series")
        quiet = next(i for i, count in enumerate(counts) if 0 < count < counts[busiest])
        for index in (busiest, quiet):
            hover_bucket(chart, index, len(times))
            expect(legend.filter(has_text="events")).to_have_text(f"events{counts[index]}")
            expect(legend.first).to_have_text(f"Time (UTC){utc(times[index])}")

        page.get_by_label("Window").select_option(label="last 15 minutes")
        page.get_by_role("button", name="Show").click()
        data = json.loads(page.locator("#rate-data").text_content() or "")
        counts = bucket_counts(seeded.timestamps, data["times"])
        assert data["series"][0]["values"] == counts
        assert 0 < sum(counts) < seeded.head
        summary = f"{sum(counts)} events in the last 15 minutes, per 15 seconds."
        expect(page.get_by_text(summary)).to_be_visible()
