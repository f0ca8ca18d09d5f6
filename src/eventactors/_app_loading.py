"""Loading an application, named as `module:attr`, on the store a tool opened.

Part of `eventactors.inspection`, which re-exports every public name here. An application
module is arbitrary code: whatever it raises while it is imported or while it builds its
engine becomes one `InspectionError` that names the spec and the error, never a traceback.

An application whose engine encrypts (an `EncryptedStore`) gets the tool's store wrapped the
same way, so that the tool reads its payloads opened and writes them sealed, and sees its
erasures: a tool must never write plaintext into an encrypted database, nor recreate an
entity that was erased there.
"""

from __future__ import annotations

import importlib
import inspect
import sys
from typing import TYPE_CHECKING, Any

from ._inspection_stores import InspectionError, one_line
from .engine import Engine
from .errors import EventActorsError
from .stores.protocols import Store

if TYPE_CHECKING:
    from .stores.encrypted import EncryptedStore


async def load_app(spec: str, store: Store) -> Engine:
    """The application's engine on `store`, not started.

    `module:attr` names an `Engine` (its entity types and projections are declared again on
    `store`, which takes the engine's serializer, inside an `EncryptedStore` like the
    engine's if it has one: see `engine_on`) or a callable that takes a store and returns an
    engine, or an awaitable of one (it gets `store` as opened, serializer and all).
    """
    target = _resolve(spec)
    if isinstance(target, Engine):
        return await engine_on(target, store, projections=True)
    if not callable(target):
        raise InspectionError(f"app {spec!r} is neither an Engine nor a factory of one")
    try:
        engine = target(store)
        if inspect.isawaitable(engine):
            engine = await engine
    except (Exception, SystemExit) as exc:  # SystemExit: a factory calling sys.exit
        raise InspectionError(f"app {spec!r} failed to build its engine: {_what(exc)}") from exc
    if not isinstance(engine, Engine):
        raise InspectionError(f"app {spec!r} returned {engine!r}, not an Engine")
    return engine


def _resolve(spec: str) -> object:
    module_name, _, attribute = spec.partition(":")
    if not module_name or not attribute:
        raise InspectionError(f"an app is given as module:engine or module:factory, got {spec!r}")
    try:
        module = importlib.import_module(module_name)
    except (Exception, SystemExit) as exc:  # any error of the module's own code, or its exit
        raise InspectionError(f"cannot load app {spec!r}: {_what(exc)}") from None
    try:
        return getattr(module, attribute)
    except AttributeError as exc:
        raise InspectionError(f"cannot load app {spec!r}: {one_line(exc)}") from None


def _what(exc: BaseException) -> str:
    """The error's type and message: `KeyError: 'NOPE'`, not a bare `NOPE`."""
    text = " ".join(str(exc).split())
    if isinstance(exc, EventActorsError):
        return text or type(exc).__name__
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def registrations(engine: Engine) -> list[tuple[str, type, dict[str, Any]]]:
    """The engine's (entity type, behavior class, register options), in registration order."""
    return list(engine.registrations())


def projection_names(engine: Engine) -> list[str]:
    """The names under which an engine's projections keep offsets (one per partition)."""
    return list(engine.projection_names())


async def engine_on(
    app: Engine, store: Store, *, projections: bool, passivate_after: float | None = None
) -> Engine:
    """A local engine on `store` with `app`'s registrations and, with `projections`, its
    projections (as the cluster replays registrations in `AppSpec.build_engine`).

    When `app` runs on an `EncryptedStore` and `store` is another store object, the engine
    runs on `store` wrapped like the application's (`EncryptedStore.around`): same master
    key, same options.

    `passivate_after` replaces every entity type's own: a tool that sends commands beside the
    running application must not keep an entity in memory that the application moves on."""
    store = _like_the_apps(app, store)
    engine = Engine(store=store, serializer=app.serializer, max_event_bytes=app.max_event_bytes)
    for entity_type, behavior_class, options in app.registrations():
        if passivate_after is not None:
            options = {**options, "passivate_after": passivate_after}
        engine.register(entity_type, behavior_class, **options)
    if not projections:
        return engine
    for runner in app._projections.runners():
        spec = runner.spec  # a partition is added alone, under its own name and slices
        await engine.add_projection(
            spec.name, spec.handler, from_start=spec.from_start, batch_size=spec.batch_size,
            policy=spec.policy, entity_types=spec.entity_types, event_types=spec.event_types,
            tags=spec.tags, batched=spec.batched, transactional=spec.transactional,
            reset=spec.reset, poll_interval=spec.poll_interval, slices=spec.slices,
            offset_store=None if spec.offset_store is app.store else spec.offset_store,
        )  # fmt: skip
    engine._partitions.update({name: list(members) for name, members in app._partitions.items()})
    return engine


def _like_the_apps(app: Engine, store: Store) -> Store:
    """`store`, inside an `EncryptedStore` like the application's if the application's store
    is one (and `store` is not already it, or its own wrapped store)."""
    # Looked up, not imported: cryptography is an optional extra, and without the module
    # loaded no application's store can be an EncryptedStore.
    module = sys.modules.get("eventactors.stores.encrypted")
    app_store = app.store
    if module is None or not isinstance(app_store, module.EncryptedStore):
        return store
    encrypted: EncryptedStore = app_store
    if store is encrypted.inner:
        return encrypted
    wrapped = isinstance(store, module.EncryptedStore)  # by the caller: as it is
    return store if wrapped else encrypted.around(store)
