"""The two charts: projection lag as sampled while the console runs, and write throughput."""

from __future__ import annotations

import re
import time

from console_seed import LAGGING
from playwright.sync_api import Locator, Page, expect


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


def test_throughput_chart_per_window(page: Page, console: str, bank_db) -> None:
    _, seeded = bank_db
    page.goto(console)
    page.get_by_role("link", name="Write throughput").click()
    # All of the seeded history lies in the last hour.
    expect(page.get_by_text(f"{seeded.head} events in the last hour, per minute.")).to_be_visible()
    expect(page.get_by_text(re.compile(r"Busiest: \d+ events? from .* UTC\."))).to_be_visible()
    chart = page.locator(".chart")
    expect(chart.locator("canvas")).to_be_visible()
    expect(chart).to_have_attribute("data-points", "60")  # one bucket per minute
    hover_plot(chart, at=0.98)
    expect(chart.locator(".u-legend .u-series").filter(has_text="events")).to_contain_text(
        re.compile(r"\d")
    )

    page.get_by_label("Window").select_option(label="last 15 minutes")
    page.get_by_role("button", name="Show").click()
    summary = page.get_by_text(re.compile(r"^\d+ events? in the last 15 minutes, per 15 seconds"))
    expect(summary).to_be_visible()
    assert int(summary.inner_text().split()[0]) < seeded.head
    expect(chart).to_have_attribute("data-points", "60")
