"""The eventactors benchmark harness: one command runs every scenario and writes the results.

Usage, from the repository root with the virtualenv (`pip install -e '.[bench,postgres]'`):

    python -m benchmarks                 # everything, full sizes (about 10 minutes on 2 cores)
    python -m benchmarks --quick         # tiny sizes, a smoke test (under a minute)
    python -m benchmarks --only bank,raw # some scenarios: bank, raw, recovery, memory, catch_up,
                                         #   cluster
    python -m benchmarks --postgres off  # SQLite only (default DSN:
                                         #   postgresql://postgres@127.0.0.1:5432/test)
    python -m benchmarks --uvloop        # eventactors on uvloop instead of asyncio's loop
    make bench                           # installs the bench extra, then the full run

Scenarios (each module's docstring says exactly what it measures, and why that way):
- bank: durable deposits per second and p50/p99 latency at 1, 16 and 256 clients, on an SQLite
  file and on PostgreSQL, against the `eventsourcing` library (the peer) in the same run.
- raw: the same rows inserted with no framework, in transactions of the batch eventactors'
  group commit reached (from bank: this run's, or the last recorded); eventactors as a % of it.
- recovery: replay of 1 x 100,000 and 10,000 x 10 events, and with snapshots every 100.
- memory: RSS per idle live entity with 1,000,000 entities, in a fresh subprocess.
- catch_up: a reader and a projection through the whole log, against the peer's reader.
- cluster: the bank's deposits on PostgreSQL through a Ray cluster of 1, 2 and 4 shard actors,
  at 16 and 256 clients, against the single-process engine: the cost of the hop through Ray
  (commands/s and the driver's CPU per command). Needs the ray extra.

Writes results.json (every figure, the machine, the command), results.md (tables a README can
include) and throughput.png (commands/s against clients) into benchmarks/, or into
benchmarks/quick/ with --quick (not committed); --output DIR overrides. With --only, the other
scenarios' figures already in results.json are kept. Every PostgreSQL measurement works in
schemas of its own (bench_*), dropped before and after, and runs again if the shared server
restarts meanwhile; SQLite files go to a temporary directory (--scratch to choose where; it
must be a real disk, not tmpfs, or fsync is free). The machine is shared and noisy: compare
ratios within one run, not absolute rates across runs.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import json
import os
import platform
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

from .common import FULL, QUICK, Context, log, phase
from .output import markdown, plot, summarize, write_json
from .pg import SERVER_GONE, fetchval, wait_for_server

SCENARIOS: dict[str, Callable[[Context, dict[str, Any]], dict[str, Any]]] = {
    "bank": lambda context, results: scenario("bank").run(context),
    "raw": lambda context, results: scenario("raw").run(context, results.get("bank")),
    "recovery": lambda context, results: scenario("recovery").run(context),
    "memory": lambda context, results: scenario("memory").run(context),
    "catch_up": lambda context, results: scenario("catch_up").run(context),
    "cluster": lambda context, results: scenario("cluster").run(context),
}
DEFAULT_POSTGRES = "postgresql://postgres@127.0.0.1:5432/test"
HERE = Path(__file__).parent


def scenario(name: str) -> Any:
    """A scenario's module, imported when it runs: those that need the peer (bank, catch_up)
    or Ray (cluster) need it only then."""
    return importlib.import_module(f".{name}", __package__)


def parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks", description=__doc__.splitlines()[0] if __doc__ else None
    )
    parser.add_argument("--quick", action="store_true", help="tiny sizes, for a smoke test")
    parser.add_argument("--only", default=",".join(SCENARIOS), help="comma-separated scenarios")
    parser.add_argument("--postgres", default=DEFAULT_POSTGRES, help='a DSN, or "off"')
    parser.add_argument("--uvloop", action="store_true", help="run eventactors on uvloop")
    parser.add_argument("--output", type=Path, help="where the results go")
    parser.add_argument("--scratch", type=Path, help="where the SQLite files go")
    args = parser.parse_args(argv)
    args.scenarios = [name.strip() for name in args.only.split(",") if name.strip()]
    unknown = sorted(set(args.scenarios) - set(SCENARIOS))
    if unknown or not args.scenarios:
        parser.error(f"unknown scenario(s) {unknown}; choose from {', '.join(SCENARIOS)}")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    started = time.perf_counter()
    output: Path = args.output or (HERE / "quick" if args.quick else HERE)
    output.mkdir(parents=True, exist_ok=True)
    partial_run = set(args.scenarios) != set(SCENARIOS)
    results = previous(output / "results.json") if partial_run else {}
    postgres = None if args.postgres == "off" else args.postgres
    factory = None
    if args.uvloop:
        import uvloop

        factory = uvloop.new_event_loop
    command = " ".join(["python -m benchmarks", *sys.argv[1:]] if argv is None else argv)
    with (
        tempfile.TemporaryDirectory(prefix="eventactors-bench-", dir=args.scratch) as scratch,
        asyncio.Runner(loop_factory=factory) as runner,
    ):
        context = Context(
            QUICK if args.quick else FULL, postgres, Path(scratch), runner,
            "uvloop" if args.uvloop else "asyncio",
        )  # fmt: skip
        if postgres:
            try:
                runner.run(wait_for_server(postgres, timeout=15))
            except SERVER_GONE as exc:
                print(f"PostgreSQL is not reachable at {postgres} ({exc}); start it, or "
                      "pass --postgres off", file=sys.stderr)  # fmt: skip
                return 2
        results["machine"] = machine(context, command)
        results.setdefault("runs", {})
        log(f"benchmarks {'(quick) ' if args.quick else ''}{', '.join(args.scenarios)}; "
            f"PostgreSQL {'off' if postgres is None else 'on'}; {context.loop} loop; "
            f"writing to {output}")  # fmt: skip
        for name in args.scenarios:
            seconds: dict[str, float] = {}
            with phase(f"scenario {name}", seconds):
                results[name] = SCENARIOS[name](context, results)
            results["runs"][name] = {
                "date": results["machine"]["date"],
                "command": command,
                "seconds": seconds[f"scenario {name}"],
            }
    summarize(results)
    results["total_seconds"] = round(time.perf_counter() - started, 1)
    write_json(results, output / "results.json")
    (output / "results.md").write_text(markdown(results))
    redraw = bool({"bank", "raw"} & set(args.scenarios))  # the plot shows only their figures
    plotted = redraw and plot(results, output / "throughput.png")
    print()
    print(markdown(results))
    log(f"wrote {output / 'results.json'}, results.md" + (", throughput.png" if plotted else ""))
    log(f"total {results['total_seconds']:.0f} s")
    return 0


def previous(path: Path) -> dict[str, Any]:
    """The last results, whose other scenarios a partial run keeps."""
    try:
        loaded: dict[str, Any] = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return loaded


def machine(context: Context, command: str) -> dict[str, Any]:
    postgres = (
        context.run(fetchval(context.postgres, "SHOW server_version")) if context.postgres else None
    )
    return {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "command": command,
        "quick": context.settings is QUICK,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "sqlite": sqlite3.sqlite_version,
        "postgres": postgres,
        "event_loop": context.loop,
        "scratch_filesystem": filesystem(context.scratch),
        "git": git_revision(),
        **{package: version(package) for package in
           ("eventactors", "eventsourcing", "asyncpg", "psycopg", "msgspec", "uvloop", "ray")},
    }  # fmt: skip


def version(package: str) -> str | None:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return None


def git_revision() -> str | None:
    """The commit measured, with "+changes" if the working tree differs from it."""
    try:
        revision = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=True,
            cwd=HERE,
        ).stdout.strip()  # fmt: skip
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"], capture_output=True,
            text=True, check=True, cwd=HERE,
        ).stdout.strip()  # fmt: skip
    except (OSError, subprocess.CalledProcessError):
        return None
    return revision + ("+changes" if dirty else "")


def filesystem(path: Path) -> str | None:
    """The file system type under `path` (/proc/mounts: the longest matching mount point)."""
    try:
        mounts = [line.split()[1:3] for line in Path("/proc/mounts").read_text().splitlines()]
    except OSError:
        return None
    resolved = str(path.resolve())
    matches = [(point, kind) for point, kind in mounts
               if resolved == point or resolved.startswith(point.rstrip("/") + "/")]  # fmt: skip
    return max(matches, key=lambda match: len(match[0]))[1] if matches else None


if __name__ == "__main__":
    sys.exit(main())
