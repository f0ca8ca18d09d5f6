"""A person browsing the bank: finding streams, reading an event, walking an entity's timeline."""

from __future__ import annotations

import re

from console_seed import LONG_STREAM, UNKNOWN_TYPE
from playwright.sync_api import Page, expect


def search(page: Page, text: str, by: str) -> None:
    page.get_by_label("Search").fill(text)
    page.get_by_label("by").select_option(label=by)
    page.get_by_role("button", name="Search").click()


def test_search_streams_by_id_then_open_the_timeline(page: Page, console: str) -> None:
    page.goto(console)
    expect(page.get_by_role("heading", name="Streams")).to_be_visible()
    expect(page.get_by_role("link", name="account|acc-6")).to_be_visible()

    search(page, "ACC-1", "persistence id")  # case does not matter
    expect(page.get_by_text("Streams whose id contains “ACC-1”.")).to_be_visible()
    rows = page.get_by_role("row")
    expect(rows).to_have_count(2)  # the header and account|acc-1
    expect(rows.nth(1)).to_contain_text("account|acc-1")
    expect(rows.nth(1)).to_contain_text("5")  # events

    search(page, "no-such-account", "persistence id")
    expect(page.get_by_text("No stream id contains “no-such-account”.")).to_be_visible()


def test_search_by_event_type_and_open_an_event(page: Page, console: str) -> None:
    page.goto(console)
    search(page, "Opened", "event type")
    expect(page.get_by_role("heading", name="Events of type Opened")).to_be_visible()
    # six imported, mallory, acc-cmd, bob and the blank id
    expect(page.get_by_role("row")).to_have_count(1 + 10)
    bo = page.get_by_role("row").filter(has_text="account|acc-2")
    expect(bo).to_contain_text('{"owner": "Bo Chen"}')

    search(page, "Deposited", "event type")
    ann = page.get_by_role("row").filter(has_text="account|acc-1").filter(has_text='"amount": 300')
    expect(ann).to_contain_text('{"amount": 300}')
    ann.get_by_role("link", name=re.compile("^#")).click()

    expect(page.get_by_role("heading", name=re.compile("^Deposited #"))).to_be_visible()
    expect(page.locator("#payload")).to_have_text('{\n  "amount": 300\n}')
    fields = page.locator("table.fields")
    expect(fields.get_by_role("row", name="Sequence number")).to_contain_text("5")
    expect(fields.get_by_role("row", name="Stream")).to_contain_text("account|acc-1")
    expect(fields.get_by_role("row", name="Correlation id")).to_contain_text("corr-ann-300")
    command_id = fields.get_by_role("row", name="Command id").locator("td")
    expect(command_id).to_have_text(re.compile(r"^[0-9a-f-]{36}$"))
    expect(fields.get_by_role("row", name="channel")).to_contain_text("teller")
    expect(fields.get_by_role("row", name="branch")).to_contain_text("north")
    expect(fields.get_by_role("row", name="Timestamp (UTC)")).to_contain_text("+00:00")
    expect(fields.get_by_role("row", name="Event id")).to_have_text(re.compile("[0-9a-f-]{36}"))


def test_timeline_shows_the_state_at_a_chosen_revision(page: Page, console: str) -> None:
    page.goto(console)
    page.get_by_role("link", name="account|acc-1").click()
    expect(page.get_by_role("heading", name="account|acc-1")).to_be_visible()
    expect(page.get_by_text("5 events · entity type account")).to_be_visible()
    timeline = page.locator("section.timeline").get_by_role("row")
    expect(timeline).to_have_count(6)
    expect(timeline.nth(1)).to_contain_text("Opened")
    expect(timeline.nth(5)).to_contain_text("Deposited")
    # The latest state by default: 1000 + 2000 - 700 + 300 (acc-1's history and its deposit).
    expect(page.get_by_role("heading", name="State at revision 5")).to_be_visible()
    expect(page.locator("#state")).to_contain_text('"balance": 2600')

    page.get_by_label("Revision").fill("2")
    page.get_by_role("button", name="Show state").click()
    expect(page.get_by_role("heading", name="State at revision 2")).to_be_visible()
    expect(page.locator("#state")).to_contain_text('"owner": "Ann Lee"')
    expect(page.locator("#state")).to_contain_text('"balance": 1000')

    timeline.nth(1).get_by_role("link", name="1", exact=True).click()
    expect(page.get_by_role("heading", name="State at revision 1")).to_be_visible()
    expect(page.locator("#state")).to_contain_text('"balance": 0')
    # Without --allow-commands there is nothing to send.
    expect(page.get_by_text("Send a command")).to_have_count(0)


def test_bad_input_gets_a_page_that_names_it(page: Page, console: str) -> None:
    cases = [
        ("/stream?id=account|acc-1&at=9", 400, "'account|acc-1' is at revision 5; revision 9"),
        ("/stream?id=account|acc-1&at=two", 400, "at must be a whole number, got 'two'"),
        ("/stream?id=account|acc-1&at=0", 400, "at must be at least 1, got 0"),
        ("/stream?id=account|nobody", 404, "no stream named 'account|nobody'"),
        ("/events/abc", 400, "position must be a whole number, got 'abc'"),
        ("/events/99999", 404, "no event at global position 99999"),
        ("/?q=x&by=colour", 400, "by must be 'id' or 'type', got 'colour'"),
        ("/throughput?window=2y", 400, "window must be one of 15m, 1h, 6h, 24h, 7d, got '2y'"),
        ("/no/such/page", 404, "nothing at /no/such/page"),
        # Past a 64-bit integer: the database driver would overflow.
        ("/events/99999999999999999999", 400,
         "position must be at most 9223372036854775807, got '99999999999999999999'"),
        ("/stream?id=account|acc-1&from=99999999999999999999999", 400,
         "from must be at most 9223372036854775807, got '99999999999999999999999'"),
        ("/?q=Opened&by=type&after=99999999999999999999", 400,
         "after must be at most 9223372036854775807, got '99999999999999999999'"),
        ("/?page=-99999999999999999999", 400, "page must be at least 1, got '-9999"),
        ("/events/9223372036854775807", 404, "no event at global position 9223372036854775807"),
    ]  # fmt: skip
    for path, status, message in cases:
        response = page.goto(console + path)
        assert response is not None and response.status == status, path
        expect(page.locator("p.detail")).to_contain_text(message)
        expect(page.get_by_text("Traceback")).to_have_count(0)


def test_timeline_keeps_the_events_when_the_state_cannot_be_rebuilt(
    page: Page, console: str
) -> None:
    # One event of a type no behavior registers: the behavior cannot replay it.
    response = page.goto(console + "/stream?id=account|raw")
    assert response is not None and response.status == 200
    rows = page.locator("section.timeline").get_by_role("row")
    expect(rows).to_have_count(2)
    expect(rows.nth(1)).to_contain_text(UNKNOWN_TYPE)
    expect(rows.nth(1)).to_contain_text('{"reason": "audit"}')
    expect(page.get_by_role("heading", name="State at revision 1")).to_be_visible()
    expect(page.locator("#state-note")).to_contain_text("Cannot rebuild the state at revision 1:")
    expect(page.locator("#state-note")).to_contain_text(UNKNOWN_TYPE)

    # A blank entity id, which the engine refuses to address.
    response = page.goto(console + "/stream?id=account|")
    assert response is not None and response.status == 200
    expect(rows).to_have_count(2)
    expect(rows.nth(1)).to_contain_text('{"owner": "Nobody"}')
    expect(page.locator("#state-note")).to_have_text(
        "Cannot rebuild the state at revision 1: entity id must not be empty or blank, got ''"
    )


def test_a_long_timeline_opens_on_the_page_of_the_revision_shown(page: Page, console: str) -> None:
    page.goto(console)
    page.get_by_role("link", name="account|bob").click()
    expect(page.get_by_text(f"{LONG_STREAM} events · entity type account")).to_be_visible()
    expect(page.get_by_role("heading", name=f"State at revision {LONG_STREAM}")).to_be_visible()
    rows = page.locator("section.timeline tbody").get_by_role("row")
    expect(rows).to_have_count(LONG_STREAM - 100)  # revisions 101 to 123
    expect(rows.first.locator("td").first).to_have_text("101")
    highlighted = page.locator("section.timeline tr.current")
    expect(highlighted.locator("td").first).to_have_text(str(LONG_STREAM))

    page.get_by_role("link", name="« First events").click()
    expect(rows).to_have_count(100)
    expect(rows.first.locator("td").first).to_have_text("1")
    expect(page.get_by_role("heading", name=f"State at revision {LONG_STREAM}")).to_be_visible()
    expect(highlighted).to_have_count(0)  # revision 123 is on the next page

    page.get_by_role("link", name="Later events →").click()
    rows.nth(9).get_by_role("link", name="110", exact=True).click()
    expect(page.get_by_role("heading", name="State at revision 110")).to_be_visible()
    expect(highlighted.locator("td").first).to_have_text("110")
    expect(page.locator("#state")).to_contain_text('"owner": "Bob Stone"')

    # From the event, the state before and after it open on its page, with its row marked.
    highlighted.get_by_role("link", name=re.compile("^#")).click()
    expect(page.get_by_role("heading", name=re.compile("^Deposited #"))).to_be_visible()
    page.get_by_role("link", name="State before").click()
    expect(page.get_by_role("heading", name="State at revision 109")).to_be_visible()
    expect(highlighted.locator("td").first).to_have_text("109")
    page.go_back()
    page.get_by_role("link", name="State after this event").click()
    expect(page.get_by_role("heading", name="State at revision 110")).to_be_visible()
    expect(highlighted.locator("td").first).to_have_text("110")


def test_paging_past_the_end_says_so(page: Page, console: str) -> None:
    page.goto(console + "/?page=3")
    expect(page.get_by_text("Page 3 is past the end of the list.")).to_be_visible()
    expect(page.get_by_text("The store holds no streams yet.")).to_have_count(0)
    page.get_by_role("link", name="« First page").click()
    expect(page.get_by_role("link", name="account|acc-1")).to_be_visible()

    page.goto(console + "/?q=acc&page=2")
    expect(page.get_by_text("Page 2 is past the end of the list.")).to_be_visible()
    expect(page.get_by_text("No stream id contains")).to_have_count(0)

    page.goto(console + "/stream?id=account|acc-2&from=40")
    expect(page.locator("section.timeline")).to_contain_text(
        "Revision 40 is past the end: the stream ends at revision 6."
    )
    expect(page.get_by_text("may have been deleted")).to_have_count(0)
