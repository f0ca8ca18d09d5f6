"""Commands from the console beside the running application, which writes the same streams."""

from __future__ import annotations

from pathlib import Path

from console_support import ServedConsole, wait_for
from eventactors_examples.bank.app import build_engine
from eventactors_examples.bank.domain import Withdraw
from playwright.sync_api import Page, expect

import eventactors as ea


async def application_sends(path: Path, command: object) -> None:
    """The application itself, in its own engine on the same file, sends a command."""
    engine = await build_engine(ea.SQLiteStore(path))
    async with engine:
        await engine.send("account", "acc-cmd", command, timeout=10.0)


def send(page: Page, command: str, body: str) -> None:
    page.get_by_label("Command").select_option(command)
    page.get_by_label("Body (JSON)").fill(body)
    page.get_by_role("button", name="Send").click()


def test_a_command_after_the_application_wrote_sees_what_it_wrote(
    page: Page, commands_served: ServedConsole
) -> None:
    engine = commands_served.app.state.console.engine
    page.goto(commands_served.url + "/stream?id=account|acc-cmd")
    send(page, "Deposit", '{"amount": 250}')
    expect(page.get_by_role("status")).to_have_text(
        "Deposit accepted: the entity is now at revision 3."
    )
    # The console's engine keeps no entity once its command is answered...
    wait_for(
        lambda: not engine.is_live("account", "acc-cmd"),
        timeout=5.0,
        what="the console's engine let go of account|acc-cmd",
    )
    # ...so the application can write next, and the console's next command starts from that.
    assert commands_served.store_path is not None
    commands_served.loop.run(application_sends(commands_served.store_path, Withdraw(700)))
    send(page, "Withdraw", '{"amount": 50}')
    expect(page.get_by_role("status")).to_have_text(
        "Withdraw accepted: the entity is now at revision 5."
    )
    expect(page.locator("#state")).to_contain_text('"balance": 0')  # 500 + 250 - 700 - 50
