"""`eventactors serve --app ... --allow-commands` on an encrypted database: the console reads
through the application's encryption and writes through it, and an erased entity stays
erased. Over plain HTTP, so that it needs no browser."""

from __future__ import annotations

import html
import http.client
import importlib
import os
import re
import textwrap
from pathlib import Path
from types import ModuleType
from urllib.parse import urlencode, urlsplit

import pytest
from console_support import LoopThread
from test_console_serve import STARTED, ServeProcess

import eventactors as ea

KEY = bytes(range(32))

APP_MODULE = """
import msgspec
import eventactors as ea


class Write(msgspec.Struct, frozen=True):
    text: str


class Written(msgspec.Struct, frozen=True):
    text: str


class Notebook(msgspec.Struct, frozen=True):
    pages: tuple[str, ...] = ()


class NotebookBehavior(ea.EventSourcedBehavior[Notebook]):
    commands = (Write,)
    events = (Written,)

    def initial_state(self):
        return Notebook()

    def handle_command(self, state, command):
        return Written(command.text)

    def handle_event(self, state, event):
        return Notebook((*state.pages, event.text))


engine = ea.Engine(store=ea.EncryptedStore(ea.SQLiteStore({path!r}), bytes.fromhex({key!r})))
engine.register("notebook", NotebookBehavior)
"""


@pytest.fixture
def app(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    """An application whose engine encrypts `tmp_path/notes.db`, importable here and by the
    `serve` process (through PYTHONPATH)."""
    name = f"encrypted_notes_{tmp_path.name}".replace("-", "_")
    text = APP_MODULE.format(path=str(tmp_path / "notes.db"), key=KEY.hex())
    (tmp_path / f"{name}.py").write_text(textwrap.dedent(text))
    monkeypatch.syspath_prepend(str(tmp_path))
    paths = [str(tmp_path), os.environ.get("PYTHONPATH", "")]
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(path for path in paths if path))
    return importlib.import_module(name)


async def seed(app: ModuleType) -> None:
    async with app.engine:
        await app.engine.send("notebook", "n", app.Write("first secret page"))
        await app.engine.send("notebook", "gone", app.Write("forgotten secret page"))
        await app.engine.erase_entity("notebook", "gone")


class Console:
    """A console's pages over HTTP (no browser needed): pages, and the command form."""

    def __init__(self, url: str) -> None:
        parts = urlsplit(url)
        self.host, self.port = str(parts.hostname), int(parts.port or 80)

    def request(self, method: str, target: str, body: str | None = None) -> tuple[int, str]:
        connection = http.client.HTTPConnection(self.host, self.port, timeout=10)
        try:
            headers = {"Content-Type": "application/x-www-form-urlencoded"} if body else {}
            connection.request(method, target, body=body, headers=headers)
            response = connection.getresponse()
            return response.status, html.unescape(response.read().decode())
        finally:
            connection.close()

    def page(self, persistence_id: str) -> str:
        status, text = self.request("GET", "/stream?" + urlencode({"id": persistence_id}))
        assert status == 200, text
        return text

    def send(self, persistence_id: str, body: str) -> tuple[int, str]:
        """Posts a Write as the command form does, with the console's token (the form of
        notebook|n holds it; an erased entity's page offers no form)."""
        token = re.search(r'name="csrf" value="([^"]+)"', self.page("notebook|n"))
        assert token is not None, "no command form: is --allow-commands on?"
        form = {"csrf": token.group(1), "id": persistence_id, "command": "Write", "body": body}
        return self.request("POST", "/stream/command", urlencode(form))


def test_the_console_reads_and_writes_through_the_applications_encryption(
    tmp_path: Path, loop: LoopThread, app: ModuleType
) -> None:
    loop.run(seed(app))
    path = tmp_path / "notes.db"
    serve = ServeProcess(
        "--store", str(path), "--app", f"{app.__name__}:engine", "--allow-commands",
        "--port", "0",
    )  # fmt: skip
    try:
        url, _ = serve.wait_for(STARTED).groups()
        console = Console(url)
        assert "first secret page" in console.page("notebook|n")  # the events, opened
        status, text = console.send("notebook|n", '{"text": "console secret page"}')
        assert status == 303, text  # accepted: to the timeline
        assert "console secret page" in console.page("notebook|n")
        assert "was erased" in console.page("notebook|gone")  # and its state is not rebuilt
        status, text = console.send("notebook|gone", '{"text": "resurrected page"}')
        assert status == 409 and "Command failed" in text and "was erased" in text
    finally:
        assert serve.stop() == 0, "".join(serve.output)

    raw = b"".join(file.read_bytes() for file in tmp_path.glob("notes.db*"))
    assert b"secret" not in raw and b"resurrected" not in raw  # sealed at rest, all of it
    loop.run(check_the_application_reads(app))


async def check_the_application_reads(app: ModuleType) -> None:
    async with app.engine:
        state, revision = await app.engine.get_state("notebook", "n")
        assert (state.pages, revision) == (("first secret page", "console secret page"), 2)
        with pytest.raises(ea.EntityErased):
            await app.engine.get_state("notebook", "gone")
        assert await app.engine.store.highest_sequence_number("notebook|gone") == 1
