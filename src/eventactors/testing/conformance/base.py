"""The fixtures every contract class shares; a store under test supplies only `open_store`."""

from __future__ import annotations

import inspect
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
import pytest_asyncio

import eventactors as ea

from .kit import Kit, register_types

OpenStore = Callable[[], ea.Store]

_EXAMPLE = """
    class TestMyStore(StoreContract):
        @pytest.fixture
        def open_store(self, tmp_path):
            return lambda: MyStore(tmp_path / "data")
"""


class StoreContractBase:
    """Fixtures for the contract classes; subclass those, and define `open_store`.

    `open_store` is a pytest fixture (sync or async, returning or yielding) defined on the
    test class. It gives a function that takes no arguments and returns a store, and:

    - every call returns a store object on the same backing data (a file, a database
      schema), so that tests can check that separate objects (connections, processes) see
      each other's writes and race correctly. A store whose data lives in the object, like
      `MemoryStore`, returns the same object each time;
    - the backing data is empty when the test starts: the fixture makes it fresh for each
      test (a file under `tmp_path`, a new schema) and removes it after, in its teardown;
    - the store has a `serializer` (the suite registers its own event and state types on it
      and encodes payloads with it) and `async close()`. The suite closes every store it
      opened before `open_store` is torn down; a closed store must reopen on its next call.

    Fixtures run in the test's own event loop (function scope). With pytest-asyncio's
    strict mode, decorate an async `open_store` with `@pytest_asyncio.fixture`.

    The store must implement the protocols the chosen contract classes test (see each
    class); `StoreContract` needs a full `ea.Store`.
    """

    pytestmark = pytest.mark.asyncio(loop_scope="function")

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        defined = cls.__dict__.get("open_store")
        # A plain function here would hide the fixture below, and pytest would only say
        # "fixture 'open_store' not found". (pytest < 8.4 marks fixtures on the function.)
        if inspect.isfunction(defined) and not hasattr(defined, "_pytestfixturefunction"):
            raise TypeError(
                f"{cls.__qualname__}.open_store must be a pytest fixture: decorate it with "
                "@pytest.fixture (or @pytest_asyncio.fixture when it is async)"
            )

    @pytest.fixture
    def open_store(self) -> OpenStore:
        pytest.fail(
            f"{type(self).__qualname__} defines no `open_store` fixture. Define one on the "
            "class, returning a function that opens a store on this test's empty backing "
            f"data, for example:\n{_EXAMPLE}\n(see StoreContractBase's docstring)",
            pytrace=False,
        )

    @pytest_asyncio.fixture(loop_scope="function")
    async def reopen(self, open_store: OpenStore) -> AsyncIterator[OpenStore]:
        """Returns a function giving another store, with the test types registered, on the
        same data. Every store it gave out is closed after the test."""
        if not callable(open_store):
            pytest.fail(
                f"{type(self).__qualname__}.open_store gave {open_store!r}: it must return "
                "a function of no arguments that returns a store (`lambda: store` for a store "
                "whose data lives in the object)",
                pytrace=False,
            )
        opened: list[ea.Store] = []

        def open_registered() -> ea.Store:
            store = open_store()
            if not hasattr(store, "serializer"):
                pytest.fail(
                    f"{type(self).__qualname__}.open_store opened {store!r}, which has no "
                    "`serializer`: the suite registers its types on it and encodes with it",
                    pytrace=False,
                )
            register_types(store)
            if not any(store is known for known in opened):
                opened.append(store)
            return store

        try:
            yield open_registered
        finally:
            for store in reversed(opened):
                await store.close()

    @pytest.fixture
    def store(self, reopen: OpenStore) -> ea.Store:
        """A store on empty backing data, with the test types registered; closed after."""
        return reopen()

    @pytest.fixture
    def kit(self, store: ea.Store) -> Kit:
        return Kit(store)
