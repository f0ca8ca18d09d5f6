"""`eventactors rebuild`: replays a projection from the start, with a progress bar."""

from __future__ import annotations

import asyncio
import importlib
import inspect
import sys
import time
from collections.abc import Callable
from typing import Any

from .engine import Engine
from .errors import EventActorsError
from .stores.locate import open_store
from .stores.protocols import Store


def load_factory(spec: str) -> Callable[[Store], Any]:
    """`module:attribute`, the application's engine factory."""
    module_name, _, attribute = spec.partition(":")
    if not module_name or not attribute:
        raise ValueError(f"--app must look like module:factory, got {spec!r}")
    try:
        factory = getattr(importlib.import_module(module_name), attribute)
    except (ImportError, AttributeError) as exc:
        raise ValueError(f"cannot load --app {spec!r}: {exc}") from exc
    if not callable(factory):
        raise ValueError(f"--app {spec!r} is not callable")
    return factory  # type: ignore[no-any-return]


def rebuild(name: str, app: str, location: str, schema: str) -> int:
    try:
        factory = load_factory(app)
        status = asyncio.run(_rebuild(name, factory, open_store(location, schema=schema)))
    except (EventActorsError, ValueError, KeyError) as exc:
        print(f"eventactors rebuild: {exc}", file=sys.stderr)
        return 1
    print(
        f"rebuilt {name!r}: {status.events_handled} events handled, "
        f"now at position {status.position}, lag {status.lag}"
    )
    return 0


async def _rebuild(name: str, factory: Callable[[Store], Any], store: Store) -> Any:
    engine = factory(store)
    if inspect.isawaitable(engine):
        engine = await engine
    if not isinstance(engine, Engine):
        raise ValueError(f"the --app factory returned {engine!r}, not an Engine")
    async with engine:
        with progress_bar(f"rebuilding {name}") as on_progress:
            return await engine.rebuild_projection(name, on_progress=on_progress)


class progress_bar:
    """A rich progress bar when rich is installed (the `cli` extra), else a line per 10%."""

    def __init__(self, title: str) -> None:
        self._title = title
        self._bar: Any = None
        self._task: Any = None
        self._shown = -1
        self._started = time.monotonic()

    def __enter__(self) -> Callable[[int, int], None]:
        try:
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeRemainingColumn
        except ImportError:
            return self._print
        self._bar = Progress(
            "[progress.description]{task.description}", BarColumn(), MofNCompleteColumn(),
            TimeRemainingColumn(),
        )  # fmt: skip
        self._bar.start()
        self._task = self._bar.add_task(self._title, total=None)
        return self._advance

    def _advance(self, position: int, head: int) -> None:
        self._bar.update(self._task, completed=position, total=max(head, position))

    def _print(self, position: int, head: int) -> None:
        percent = 100 if head <= 0 else min(100, position * 100 // head)
        if percent // 10 > self._shown:
            self._shown = percent // 10
            elapsed = time.monotonic() - self._started
            print(f"{self._title}: {position}/{head} ({percent}%, {elapsed:.1f}s)", flush=True)

    def __exit__(self, *exc: object) -> None:
        if self._bar is not None:
            self._bar.stop()
