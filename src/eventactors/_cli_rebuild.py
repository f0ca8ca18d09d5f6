"""`eventactors rebuild`: replays a projection from the start, with a progress bar."""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from typing import Any

from ._cli_common import app_engine, run_on_store
from ._cli_output import print_json
from .stores.protocols import Store


def run(args: argparse.Namespace) -> int:
    async def work(store: Store) -> int:
        engine = await app_engine(args.app, store)
        async with engine:
            with progress_bar(f"rebuilding {args.name}", quiet=args.json) as on_progress:
                status = await engine.rebuild_projection(args.name, on_progress=on_progress)
        if args.json:
            print_json(status)
        else:
            print(
                f"rebuilt {args.name!r}: {status.events_handled} events handled, "
                f"now at position {status.position}, lag {status.lag}"
            )
        return 0

    return run_on_store(args, work)


class progress_bar:
    """A rich progress bar when rich is installed (the `cli` extra), else a line per 10%."""

    def __init__(self, title: str, *, quiet: bool = False) -> None:
        self._title = title
        self._quiet = quiet  # `--json`: stdout is for the document
        self._bar: Any = None
        self._task: Any = None
        self._shown = -1
        self._started = time.monotonic()

    def __enter__(self) -> Callable[[int, int], None]:
        if self._quiet:
            return self._ignore
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

    def _ignore(self, position: int, head: int) -> None:
        pass

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
