"""The progress bar of `eventactors rebuild`: rich's when rich is installed (the `cli`
extra), else a line per tenth of the way, and nothing with `--json` (stdout is the document's).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import rich.progress

Progress = Callable[[int, int], None]


class ProgressBar:
    """A context manager whose value is the `on_progress(position, head)` callback."""

    def __init__(self, title: str, *, quiet: bool = False) -> None:
        self._title = title
        self._quiet = quiet
        self._bar: rich.progress.Progress | None = None
        self._task: rich.progress.TaskID | None = None
        self._shown = -1
        self._started = time.monotonic()

    def __enter__(self) -> Progress:
        if self._quiet:
            return self._ignore
        try:
            from rich.markup import escape
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeRemainingColumn
        except ImportError:
            return self._print
        self._bar = Progress(
            "[progress.description]{task.description}", BarColumn(), MofNCompleteColumn(),
            TimeRemainingColumn(),
        )  # fmt: skip
        self._bar.start()
        self._task = self._bar.add_task(escape(self._title), total=None)  # a name, not markup
        return self._advance

    def _ignore(self, position: int, head: int) -> None:
        pass

    def _advance(self, position: int, head: int) -> None:
        assert self._bar is not None and self._task is not None
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
