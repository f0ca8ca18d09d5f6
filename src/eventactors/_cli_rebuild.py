"""`eventactors rebuild`: replays a projection from the start, with a progress bar.

The application must be stopped first. A projection that runs in another process meanwhile
keeps its own position in memory and goes on writing the read model and the offset, so the
two together count events twice. A rebuild cannot take a lock that the running application
would respect; what it can see is the offset moving under it, to a position it did not write:
then it stops at once, with an error, instead of finishing a corrupt read model. An
application that writes nothing while the rebuild runs goes unseen, and does no harm then.

Only the projection being rebuilt runs: the application's other projections are removed
before the engine starts, so that a rebuild moves no other read model.
"""

from __future__ import annotations

import argparse
import asyncio
import bisect
import contextlib

from ._cli_common import app_engine, run_on_store
from ._cli_output import print_json
from ._cli_progress import Progress, ProgressBar
from .engine import Engine
from .inspection import InspectionError, projection_names
from .projections import ProjectionStatus
from .stores.protocols import OffsetStore, Store

#: How often the watch reads the offset. Its reads must fall between the rebuild's own
#: commits, where another writer's offset lasts until the next one: right after a commit is
#: the worst moment, so it reads on its own clock, not on the rebuild's.
WATCH_INTERVAL = 0.01


def run(args: argparse.Namespace) -> int:
    async def work(store: Store) -> int:
        engine = await app_engine(args.app, store)
        offsets = await _only(engine, args.name)
        watch = None if offsets is None else OffsetWatch(offsets, args.name)
        async with engine:
            with ProgressBar(f"rebuilding {args.name}", quiet=args.json) as on_progress:
                if watch is None:  # partitioned: each partition has an offset of its own
                    status = await engine.rebuild_projection(args.name, on_progress=on_progress)
                else:
                    status = await watch.rebuild(engine, on_progress)
        if watch is not None:
            await watch.check_stopped(engine)
        if args.json:
            print_json(status)
        else:
            print(
                f"rebuilt {args.name!r}: {status.events_handled} events handled, "
                f"now at position {status.position}, lag {status.lag}"
            )
        return 0

    return run_on_store(args, work, read_only=False)


async def _only(engine: Engine, name: str) -> OffsetStore | None:
    """Removes every projection but `name` (and its partitions), before the engine starts;
    returns where `name` keeps its offset (None for a partitioned projection)."""
    names = projection_names(engine)
    members = [n for n in names if n == name or n.startswith(f"{name}/slices-")]
    if not members:
        known = ", ".join(repr(n) for n in names) or "none"
        raise InspectionError(f"no projection named {name!r}; the app has {known}")
    for other in names:
        if other not in members:
            await engine.remove_projection(other)
    if members != [name]:
        return None
    offsets: OffsetStore = engine._projections.get(name).spec.offset_store  # its own, if any
    return offsets


class OffsetWatch:
    """Reads the projection's offset while it is rebuilt, and fails on a position that this
    rebuild did not write.

    The rebuild's own commits only go up, and each is reported (`report`) right after it
    commits, so a read that starts after report `before` and ends after report `after` can
    only see a reported position from `before` on, or the one commit not yet reported: the
    next one after `after`. Anything else was written by someone else. A value seen past
    `after` is judged at the next report; one still unjudged when the rebuild returns is not
    ours, since the rebuild's last commit is its last report."""

    def __init__(self, offsets: OffsetStore, name: str) -> None:
        self._offsets = offsets
        self._name = name
        self._on_progress: Progress | None = None
        self.reported: list[int] = []  # increasing
        self._pending: list[tuple[int, int]] = []  # (seen, the last report when it was seen)
        self._moved: int | None = None
        self._changed = asyncio.Event()  # a report, or a move found

    async def rebuild(self, engine: Engine, on_progress: Progress) -> ProjectionStatus:
        """`engine.rebuild_projection`, failing as soon as the offset moves under it."""
        self._on_progress = on_progress
        watching = asyncio.ensure_future(self._watch())
        rebuilding = asyncio.ensure_future(
            engine.rebuild_projection(self._name, on_progress=self.report)
        )
        try:
            await asyncio.wait({rebuilding, watching}, return_when=asyncio.FIRST_COMPLETED)
            if watching.done():
                watching.result()  # raises: the offset moved
            status = await rebuilding
        finally:
            for task in (rebuilding, watching):
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        if self._moved is None and self._pending:
            self._moved = self._pending[0][0]
        if self._moved is not None:
            raise self.moved(self._moved)
        return status

    def report(self, position: int, head: int) -> None:
        """The rebuild's progress callback: called right after each of its commits."""
        self.reported.append(position)
        self._judge()
        self._changed.set()
        if self._on_progress is not None:
            self._on_progress(position, head)

    async def _watch(self) -> None:
        """Returns only by raising, when the offset moved under the rebuild."""
        while not self.reported:  # the reset comes first: from the first report on, ours
            await self._changed.wait()
            self._changed.clear()
        while self._moved is None:
            before = self.reported[-1]
            seen = await self._offsets.get_offset(self._name) or 0
            after = self.reported[-1]
            if seen > after:
                self._pending.append((seen, after))
            elif seen not in self.reported or seen < before:
                self._moved = seen
            self._judge()
            self._changed.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), WATCH_INTERVAL)
        raise self.moved(self._moved)

    def _judge(self) -> None:
        """Each value seen past a report must be the next report's."""
        for value, at in list(self._pending):
            index = bisect.bisect_right(self.reported, at)
            if index < len(self.reported):
                self._pending.remove((value, at))
                if self.reported[index] != value and self._moved is None:
                    self._moved = value

    async def check_stopped(self, engine: Engine) -> None:
        """After the engine stopped: the offset must be where this rebuild left it. (Commits
        after the rebuild returned and before the engine stopped went unreported.)"""
        stopped = engine.projection_status(self._name).position
        stored = await self._offsets.get_offset(self._name) or 0
        if stored != stopped:
            raise self.moved(stored)

    def moved(self, position: int) -> InspectionError:
        return InspectionError(
            f"the offset of projection {self._name!r} moved to {position} under the rebuild, "
            "a position this rebuild did not write: another process is running the projection. "
            "Stop the application, then rebuild again: until then the read model is incomplete"
        )
