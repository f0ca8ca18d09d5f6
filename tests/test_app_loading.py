"""Loading an application for a tool (`eventactors.inspection.load_app`): from an `Engine`
or a factory, on any store; whatever the module raises becomes one error naming the spec."""

from __future__ import annotations

import importlib
import textwrap

import pytest
from test_inspection import bank, store  # noqa: F401 - the fixture, on every backend

import eventactors as ea
from eventactors import inspection
from eventactors.inspection import InspectionError

APP_MODULE = """
import eventactors as ea
from eventactors_examples.bank.domain import register

async def record(envelope):
    pass

engine = ea.Engine()
register(engine)

def factory(store):
    return engine

def not_an_engine(store):
    return 42

def broken(store):
    raise RuntimeError("no database configured")

async def with_projection(store):
    built = ea.Engine(store=store)
    register(built)
    await built.add_projection("audit", record)
    return built
"""


@pytest.fixture
def app_module(tmp_path, monkeypatch) -> str:
    name = f"inspect_app_{tmp_path.name}".replace("-", "_")
    (tmp_path / f"{name}.py").write_text(textwrap.dedent(APP_MODULE))
    monkeypatch.syspath_prepend(str(tmp_path))
    return name


async def test_load_app_from_an_engine_or_a_factory(store, app_module):  # noqa: F811
    await bank(store)
    module = importlib.import_module(app_module)
    await module.engine.add_projection("audit", module.record, batch_size=7)
    engine = await inspection.load_app(f"{app_module}:engine", store)
    assert engine.store is store and engine.entity_types == ("account",)
    assert inspection.projection_names(engine) == ["audit"]
    assert engine._projections.get("audit").spec.offset_store is store
    async with engine:
        state, revision = await engine.get_state("account", "ann", at_revision=2)
        assert (state.balance, revision) == (100, 2)
    bare = await inspection.engine_on(engine, store, projections=False, passivate_after=0.5)
    assert bare.entity_types == ("account",) and inspection.projection_names(bare) == []
    assert [options["passivate_after"] for *_, options in inspection.registrations(bare)] == [0.5]
    built = await inspection.load_app(f"{app_module}:with_projection", store)
    assert inspection.projection_names(built) == ["audit"]
    with pytest.raises(InspectionError, match="failed to build its engine: TypeError: the bal"):
        await inspection.load_app("eventactors_examples.bank.app:build_engine", ea.MemoryStore())


@pytest.mark.parametrize(
    ("attribute", "message"),
    [
        ("", "module:engine or module:factory, got"),
        (":nope", "cannot load app .*nope"),
        (":not_an_engine", "returned 42, not an Engine"),
        (":broken", "failed to build its engine: RuntimeError: no database configured"),
        (":ea", "neither an Engine nor a factory"),
    ],
)
async def test_load_app_names_the_spec_on_any_failure(app_module, attribute, message):
    with pytest.raises(InspectionError, match=message):
        await inspection.load_app(f"{app_module}{attribute}", ea.MemoryStore())
    with pytest.raises(InspectionError, match=r"cannot load app 'no\.such\.module:x'"):
        await inspection.load_app("no.such.module:x", ea.MemoryStore())


BAD_MODULES = {
    "raises": ("raise RuntimeError('boom at import')\n", "RuntimeError: boom at import"),
    "undefined": ("undefined_name\n", "NameError: name 'undefined_name' is not defined"),
    "environ": ("import os\nos.environ['EA_NO_SUCH_VARIABLE']\n", "KeyError: 'EA_NO_SUCH"),
    "exits": ("import sys\nsys.exit(3)\n", "SystemExit: 3"),
}


@pytest.mark.parametrize("kind", sorted(BAD_MODULES))
async def test_load_app_names_the_spec_and_the_error_of_a_module_that_fails(
    tmp_path, monkeypatch, kind
):
    body, message = BAD_MODULES[kind]
    name = f"bad_{kind}_{tmp_path.name}".replace("-", "_")
    (tmp_path / f"{name}.py").write_text(body)
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(InspectionError) as refused:
        await inspection.load_app(f"{name}:x", ea.MemoryStore())
    assert str(refused.value).startswith(f"cannot load app '{name}:x': ")
    assert message in str(refused.value)


async def ignore(envelope: ea.EventEnvelope) -> None:
    pass


async def test_engine_projection_names_are_the_names_offsets_are_kept_under():
    engine = ea.Engine()
    await engine.add_projection("audit", ignore)
    await engine.add_projection("mail", ignore, partitions=2)
    assert engine.projection_names() == ("audit", "mail/slices-0-511", "mail/slices-512-1023")
    assert inspection.projection_names(engine) == list(engine.projection_names())
    await engine.remove_projection("mail")
    assert engine.projection_names() == ("audit",)


ENCRYPTED_APP_MODULE = """
import eventactors as ea
from eventactors_examples.bank.domain import register

engine = ea.Engine(store=ea.EncryptedStore(ea.MemoryStore(), bytes(range(32)), key_cache_ttl=7))
register(engine)
"""


async def test_an_encrypted_application_gets_the_tools_store_wrapped_like_its_own(
    tmp_path, monkeypatch
):
    name = f"encrypted_app_{tmp_path.name}".replace("-", "_")
    (tmp_path / f"{name}.py").write_text(ENCRYPTED_APP_MODULE)
    monkeypatch.syspath_prepend(str(tmp_path))
    app = importlib.import_module(name).engine
    path = tmp_path / "bank.db"
    written = await inspection.load_app(f"{name}:engine", ea.SQLiteStore(path))
    wrapper = written.store
    assert isinstance(wrapper, ea.EncryptedStore) and isinstance(wrapper.inner, ea.SQLiteStore)
    assert wrapper._keys._cache_ttl == 7.0  # the application's options, and its master key
    await bank(wrapper)  # sealed, under the application's master key
    await wrapper.close()
    raw = b"".join(file.read_bytes() for file in tmp_path.glob("bank.db*"))
    assert b"account|ann" in raw and b"amount" not in raw  # stream names stay plain

    read_only = ea.SQLiteStore(path, read_only=True)
    await read_only.head_position()  # a tool checks the store before it loads the app
    engine = await inspection.load_app(f"{name}:engine", read_only)
    assert engine.store is not wrapper and engine.store.inner is read_only
    async with engine:
        state, revision = await engine.get_state("account", "ann", at_revision=2)
        assert (state.balance, revision) == (100, 2)
        with pytest.raises(ea.EventActorsError, match="read-only"):
            await engine.store.erase("account|ann")
    # Nothing is wrapped twice: the application's own store, or one already wrapped.
    on_its_own = await inspection.engine_on(app, app.store.inner, projections=False)
    assert on_its_own.store is app.store
    on_the_wrapper = await inspection.engine_on(app, wrapper, projections=False)
    assert on_the_wrapper.store is wrapper
