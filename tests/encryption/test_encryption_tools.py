"""The tools on an encrypted database, given the application (`--app`): they open the
database themselves, and run the application's engine on their store wrapped like the
application's (`EncryptedStore.around`), so they read its payloads opened, write them sealed,
and see its erasures."""

from __future__ import annotations

import importlib
import json
import textwrap
from pathlib import Path
from types import ModuleType

import pytest
from encryption_support import KEY, Backend
from postgres_support import DSN
from test_cli_inspect import acli, ok

import eventactors as ea
from eventactors import inspection
from eventactors.console.server import console_engine

pytestmark = pytest.mark.timeout(60)

APP_MODULE = """
import msgspec
import eventactors as ea
from eventactors.stores.locate import open_store


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


class SetProfile(msgspec.Struct, frozen=True):
    name: str


class Profile(msgspec.Struct, frozen=True):
    name: str = ""


class ProfileBehavior(ea.DurableStateBehavior[Profile]):
    commands = (SetProfile,)

    def initial_state(self):
        return Profile()

    def handle_command(self, state, command):
        return Profile(command.name)


SEEN = []


async def record(envelope):
    SEEN.append(envelope.event.text)


store = ea.EncryptedStore(open_store({location!r}, schema={schema!r}), bytes.fromhex({key!r}))
engine = ea.Engine(store=store)
engine.register("notebook", NotebookBehavior)
engine.register("profile", ProfileBehavior)
"""


def location(backend: Backend) -> tuple[str, str]:
    """The --store and --schema of the backend's data."""
    if backend.name == "sqlite":
        return str(backend.where), "eventactors"
    return DSN, str(backend.where)


@pytest.fixture
def app(durable_backend: Backend, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    """An application module whose engine encrypts its store, the backend's data."""
    name = f"encrypted_app_{tmp_path.name}".replace("-", "_")
    where, schema = location(durable_backend)
    text = APP_MODULE.format(location=where, schema=schema, key=KEY.hex())
    (tmp_path / f"{name}.py").write_text(textwrap.dedent(text))
    monkeypatch.syspath_prepend(str(tmp_path))
    return importlib.import_module(name)


def spec(app: ModuleType) -> str:
    return f"{app.__name__}:engine"


async def seed(app: ModuleType) -> None:
    """notebook|n with two pages, profile|ann, and profile|gone, erased."""
    async with app.engine:
        await app.engine.send("notebook", "n", app.Write("first secret page"))
        await app.engine.send("notebook", "n", app.Write("second secret page"))
        await app.engine.send("profile", "ann", app.SetProfile("Ann Secret"))
        await app.engine.send("profile", "gone", app.SetProfile("Gone Secret"))
        await app.engine.erase_entity("profile", "gone")


async def test_load_app_wraps_the_tools_store_like_the_applications(durable_backend, app):
    await seed(app)
    for read_only in (True, False):
        where, schema = location(durable_backend)
        store = await inspection.open_checked(where, schema=schema, read_only=read_only)
        try:
            engine = await inspection.load_app(spec(app), store)
            wrapper = engine.store
            assert isinstance(wrapper, ea.EncryptedStore) and wrapper.inner is store
            assert engine.serializer is app.engine.serializer
            async with engine:
                state, revision = await engine.get_state("notebook", "n")
                assert (state.pages, revision) == (("first secret page", "second secret page"), 2)
                assert await engine.get_state("profile", "ann") == (app.Profile("Ann Secret"), 1)
                with pytest.raises(ea.EntityErased):
                    await engine.get_state("profile", "gone")
            page = await wrapper.read_stream("notebook|n")
            assert [envelope.event for envelope in page] == [
                app.Written("first secret page"),
                app.Written("second secret page"),
            ]
            # The console's engine, built from the loaded one, keeps the same wrapper.
            console = await console_engine(engine)
            assert console.store is wrapper
        finally:
            await store.close()


async def test_the_console_engine_writes_sealed_and_an_erased_entity_stays_erased(
    durable_backend, app
):
    await seed(app)
    where, schema = location(durable_backend)
    store = await inspection.open_checked(where, schema=schema, read_only=False)
    engine = await console_engine(await inspection.load_app(spec(app), store))
    async with engine:  # stopping it closes the store
        await engine.send("notebook", "n", app.Write("console secret page"), timeout=5)
        await engine.send("profile", "ann", app.SetProfile("Console Secret"), timeout=5)
        with pytest.raises(ea.EntityErased):
            await engine.send("profile", "gone", app.SetProfile("Resurrected"), timeout=5)
    raw = await durable_backend.raw_text()
    for text in ("Secret", "secret", "Resurrected"):
        assert text not in raw
    reader = ea.Engine(store=durable_backend.encrypted())
    reader.register("notebook", app.NotebookBehavior)
    reader.register("profile", app.ProfileBehavior)
    page = await reader.store.read_stream("notebook|n")
    assert [envelope.event.text for envelope in page][-1] == "console secret page"
    async with reader:
        assert await reader.get_state("profile", "ann") == (app.Profile("Console Secret"), 2)
        with pytest.raises(ea.EntityErased):
            await reader.get_state("profile", "gone")
    assert await reader.store.is_erased("profile|gone")


async def test_cli_state_and_rebuild_read_an_encrypted_database(durable_backend, app, capsys):
    await app.engine.add_projection("pages", app.record)
    await seed(app)
    assert app.SEEN == ["first secret page", "second secret page"]
    app.SEEN.clear()
    where, schema = location(durable_backend)
    store = ("--store", where, "--schema", schema, "--app", spec(app))
    out = await ok(capsys, "state", "notebook", "n", *store, "--json")
    assert json.loads(out)["state"] == {"pages": ["first secret page", "second secret page"]}
    out = await ok(capsys, "state", "notebook", "n", "--at-revision", "1", *store, "--json")
    assert json.loads(out)["state"] == {"pages": ["first secret page"]}
    out = await ok(capsys, "state", "profile", "ann", *store, "--json")
    assert json.loads(out)["state"] == {"name": "Ann Secret"}
    code, _, err = await acli(capsys, "state", "profile", "gone", *store)
    assert code == 1 and "was erased" in err
    out = await ok(capsys, "rebuild", "pages", *store)
    assert "rebuilt 'pages': 2 events handled" in out
    assert app.SEEN == ["first secret page", "second secret page"]  # opened, not sealed


async def test_cli_events_decode_an_encrypted_database(durable_backend, app, capsys):
    await seed(app)
    where, schema = location(durable_backend)
    store = ("--store", where, "--schema", schema, "--app", spec(app))
    out = await ok(capsys, "events", "notebook|n", *store, "--json")
    lines = [json.loads(line) for line in out.splitlines()]
    assert [line["payload"] for line in lines] == [
        {"text": "first secret page"},
        {"text": "second secret page"},
    ]
