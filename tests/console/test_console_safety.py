"""What keeps the console safe: payloads shown as text, read-only by default, commands only
with --allow-commands and the page's own token, and only for local host names."""

from __future__ import annotations

import http.client
import json
import re
from pathlib import Path
from urllib.parse import urlsplit

from console_seed import XSS_OWNER, XSS_PROJECTION
from console_support import LoopThread, ServedConsole
from playwright.sync_api import Page, expect
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

import eventactors as ea
from eventactors.console import create_app


def assert_no_script_ran(page: Page) -> None:
    assert page.evaluate("() => window.pwned") is None


def one_line_json(data: object) -> str:
    """A payload as a table row prints it."""
    return json.dumps(data, ensure_ascii=False, separators=(", ", ": "))


def test_payloads_are_escaped_in_the_html_itself(page: Page, console: str) -> None:
    """The CSP would stop an unescaped script from running; this checks the escaping alone:
    the HTML as served holds the payload as entities, and the page's text is the payload."""
    html = page.request.get(console + "/stream?id=account|mallory").text()
    assert "&lt;script&gt;window.pwned=1&lt;/script&gt;&lt;img src=x onerror=" in html
    assert "<script>window.pwned" not in html and "<img src=x" not in html
    page.goto(console + "/stream?id=account|mallory")
    summary = page.locator("section.timeline").get_by_role("row").nth(1).locator("code")
    expect(summary).to_have_text(one_line_json({"owner": XSS_OWNER}))
    expect(page.locator("#state")).to_contain_text(json.dumps(XSS_OWNER, ensure_ascii=False))

    # A projection name inside the lag chart's JSON block cannot end the block.
    html = page.request.get(console + "/lag").text()
    assert XSS_PROJECTION not in html
    assert "&lt;/script&gt;&lt;script&gt;window.pwned=4" in html  # the table's cell
    page.goto(console + "/lag")
    expect(page.get_by_role("cell", name=XSS_PROJECTION, exact=True)).to_be_visible()
    chart = json.loads(page.locator("#lag-data").text_content() or "")
    assert XSS_PROJECTION in [series["name"] for series in chart["series"]]
    assert_no_script_ran(page)


def test_payloads_are_shown_as_text_and_never_run(page: Page, console: str) -> None:
    page.goto(console)
    page.get_by_role("link", name="account|mallory").click()
    timeline = page.locator("section.timeline")
    expect(timeline.get_by_role("row").nth(1)).to_contain_text(XSS_OWNER.replace('"', '\\"'))
    expect(page.locator("#state")).to_contain_text(XSS_OWNER.replace('"', '\\"'))
    assert_no_script_ran(page)

    timeline.get_by_role("row").nth(1).get_by_role("link", name=re.compile("^#")).click()
    expect(page.get_by_role("heading", name=re.compile("^Opened #"))).to_be_visible()
    expect(page.locator("#payload")).to_contain_text("<script>window.pwned=1</script>")
    expect(page.locator("#payload")).to_contain_text('<img src=x onerror=\\"window.pwned=2\\">')
    expect(page.locator("main img")).to_have_count(0)
    assert_no_script_ran(page)

    page.get_by_role("link", name="Streams", exact=True).click()
    page.get_by_label("Search").fill("Opened")
    page.get_by_label("by").select_option(label="event type")
    page.get_by_role("button", name="Search").click()
    expect(page.get_by_role("row").filter(has_text="account|mallory")).to_contain_text(
        "<script>window.pwned=1</script>"
    )
    assert_no_script_ran(page)

    # A search text is user input too.
    page.get_by_label("by").select_option(label="persistence id")
    page.get_by_label("Search").fill("<script>window.pwned=3</script>")
    page.get_by_role("button", name="Search").click()
    expect(
        page.get_by_text("No stream id contains “<script>window.pwned=3</script>”.")
    ).to_be_visible()
    assert_no_script_ran(page)


def test_read_only_console_offers_no_commands_and_refuses_them(page: Page, console: str) -> None:
    page.goto(console + "/stream?id=account|acc-2")
    expect(page.get_by_text("read-only", exact=True)).to_be_visible()
    expect(page.get_by_role("heading", name="State at revision")).to_be_visible()
    expect(page.get_by_text("Send a command")).to_have_count(0)
    expect(page.get_by_role("button", name="Send")).to_have_count(0)

    form = {"id": "account|acc-2", "command": "Deposit", "body": '{"amount": 1}'}
    response = page.request.post(console + "/stream/command", form=form)
    assert response.status == 403
    assert "this console is read-only: start it with --allow-commands" in response.text()
    page.reload()
    expect(page.get_by_text("6 events · entity type account")).to_be_visible()

    # A link cannot make the page claim that a command was accepted.
    page.goto(console + "/stream?id=account|acc-2&sent=Deposit&at=6")
    expect(page.get_by_role("heading", name="State at revision 6")).to_be_visible()
    expect(page.get_by_text("accepted")).to_have_count(0)


def test_allowed_commands_are_sent_and_appear_in_the_timeline(
    page: Page, commands_console: str
) -> None:
    page.goto(commands_console + "/stream?id=account|acc-cmd")
    expect(page.get_by_text("commands allowed", exact=True)).to_be_visible()
    expect(page.get_by_text("2 events · entity type account")).to_be_visible()
    expect(page.get_by_role("heading", name="Send a command")).to_be_visible()
    expect(page.get_by_label("Command")).to_contain_text("Deposit (amount: int)")

    page.get_by_label("Command").select_option("Deposit")
    expect(page.get_by_label("Body (JSON)")).to_have_value('{"amount":0}')  # a starting point
    page.get_by_label("Body (JSON)").fill('{"amount": 250}')
    page.get_by_role("button", name="Send").click()

    expect(page.get_by_role("status")).to_have_text(
        "Deposit accepted: the entity is now at revision 3."
    )
    expect(page.get_by_text("3 events · entity type account")).to_be_visible()
    newest = page.locator("section.timeline").get_by_role("row").nth(3)
    expect(newest).to_contain_text("Deposited")
    expect(newest).to_contain_text('{"amount": 250}')
    expect(page.locator("#state")).to_contain_text('"balance": 750')

    cases = [
        ("Withdraw", '{"amount": 10000}', 422,
         "Withdraw was rejected: insufficient funds (balance=750, requested=10000)"),
        ("Deposit", '{"amount": "lots"}', 400,
         "the body does not fit Deposit: Expected `int`, got `str` - at `$.amount`"),
        ("Deposit", '{"amount": 5', 400, "the body is not valid JSON"),
    ]  # fmt: skip
    for command, body, status, message in cases:
        page.goto(commands_console + "/stream?id=account|acc-cmd")
        page.get_by_label("Command").select_option(command)
        page.get_by_label("Body (JSON)").fill(body)
        with page.expect_response(re.compile("/stream/command$")) as sent:
            page.get_by_role("button", name="Send").click()
        assert sent.value.status == status
        expect(page.locator("p.detail")).to_contain_text(message)
    page.goto(commands_console + "/stream?id=account|acc-cmd")
    expect(page.get_by_text("3 events · entity type account")).to_be_visible()

    # Only the console's own redirect carries a notice: not a link, nor a guessed signature.
    for forged in ["sent=Withdraw&at=3", "sent=Withdraw&at=3&sig=00", "sent=Open&at=2&sig="]:
        page.goto(commands_console + "/stream?id=account|acc-cmd&" + forged)
        expect(page.get_by_role("heading", name=re.compile("^State at revision"))).to_be_visible()
        expect(page.get_by_role("status")).to_have_count(0)


def test_a_cross_site_form_cannot_send_commands(page: Page, commands_console: str) -> None:
    # Another site's page, posting to the console without the console's token.
    page.set_content(
        f'<form method="post" action="{commands_console}/stream/command">'
        '<input name="id" value="account|acc-cmd"><input name="command" value="Withdraw">'
        '<input name="body" value=\'{"amount": 500}\'><button>Win a prize</button></form>'
    )
    with page.expect_navigation() as navigation:
        page.get_by_role("button", name="Win a prize").click()
    assert navigation.value is not None and navigation.value.status == 403
    expect(page.locator("p.detail")).to_have_text(
        "the form's CSRF token is missing or wrong: reload the page"
    )
    # A token outside ASCII is just as wrong, not a server error.
    form = {"csrf": "é", "id": "account|acc-cmd", "command": "Withdraw", "body": "{}"}
    response = page.request.post(commands_console + "/stream/command", form=form)
    assert response.status == 403
    assert "the form&#39;s CSRF token is missing or wrong" in response.text()
    page.goto(commands_console + "/stream?id=account|acc-cmd")
    expect(page.get_by_text("2 events · entity type account")).to_be_visible()


def test_answers_only_to_local_host_names(console: str) -> None:
    address = urlsplit(console)
    hosts = [("evil.example", 400), ("localhost", 200), ("127.0.0.1", 200), ("[::1]", 200)]
    for host, status in hosts:
        connection = http.client.HTTPConnection(address.hostname, address.port, timeout=5)
        try:
            connection.request("GET", "/", headers={"Host": f"{host}:{address.port}"})
            assert connection.getresponse().status == status, host
        finally:
            connection.close()


def test_an_unexpected_error_gets_the_error_page_and_the_headers(
    page: Page, loop: LoopThread, bank_db: tuple[Path, object]
) -> None:
    async def broken_view(request: Request) -> Response:
        raise RuntimeError("a bug in a view")

    app = create_app(ea.SQLiteStore(bank_db[0]))
    app.router.routes.append(Route("/broken", broken_view))  # a view with a bug
    served = ServedConsole(loop, app)
    try:
        response = page.goto(served.url + "/broken")
        assert response is not None and response.status == 500
        expect(page.get_by_role("heading", name="Internal error")).to_be_visible()
        expect(page.locator("p.detail")).to_have_text(
            "the console failed on this page; the error is in the console's log"
        )
        expect(page.get_by_text("Traceback")).to_have_count(0)
        expect(page.get_by_text("a bug in a view")).to_have_count(0)
        headers = response.all_headers()
        assert headers["content-security-policy"].startswith("default-src 'self'")
        assert headers["x-frame-options"] == "DENY"
        assert headers["x-content-type-options"] == "nosniff"
    finally:
        served.stop()
