"""Serving the console in-process for browser tests.

The console, its store and its engine live on an asyncio loop in a thread of their own; the
test's thread drives Chromium through Playwright's sync API. Every wait has a deadline.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any, TypeVar

import uvicorn
from starlette.applications import Starlette

T = TypeVar("T")


def wait_for(condition: Callable[[], bool], timeout: float = 10.0, what: str = "condition") -> None:
    """Polls `condition` from a plain thread until it holds; fails past `timeout`."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} not met within {timeout}s")
        time.sleep(0.01)


class LoopThread:
    """An asyncio loop running in a thread; `run` hands it a coroutine and waits for it."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._main, name="console-loop", daemon=True)
        self._thread.start()

    def _main(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.loop.run_forever()
        self.loop.run_until_complete(self.loop.shutdown_asyncgens())
        self.loop.run_until_complete(self.loop.shutdown_default_executor())
        self.loop.close()

    def run(self, coroutine: Coroutine[Any, Any, T], timeout: float = 30.0) -> T:
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(timeout)

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(timeout=10)
        assert not self._thread.is_alive(), "the console's loop thread did not stop"


class ServedConsole:
    """A console app served by uvicorn on a free port of 127.0.0.1, until `stop`."""

    def __init__(self, loop: LoopThread, app: Starlette, store_path: Path | None = None) -> None:
        self.app = app
        self.loop = loop
        self.store_path = store_path
        config = uvicorn.Config(
            app, host="127.0.0.1", port=0, ws="none", lifespan="on", log_config=None,
            log_level="warning", timeout_graceful_shutdown=5,
        )  # fmt: skip
        self.server = uvicorn.Server(config)
        self._done = asyncio.run_coroutine_threadsafe(self.server.serve(), loop.loop)
        wait_for(lambda: self.server.started or self._done.done(), what="the console started")
        if not self.server.started:
            self._done.result(timeout=1)  # raises what stopped it
            raise AssertionError("the console did not start")
        port = self.server.servers[0].sockets[0].getsockname()[1]
        self.url = f"http://127.0.0.1:{port}"

    def stop(self) -> None:
        self.server.should_exit = True
        self._done.result(timeout=15)
