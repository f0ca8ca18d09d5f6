"""The crash campaign, long mode: the bank workload SIGKILLed at random moments, restarted on
the same database every time, and checked after every kill (tests/crash_campaign.py has the
harness and the checks; tests/test_crash_campaign.py runs a short mode of it in CI).

Usage, from the repository root:

    .venv/bin/python -m benchmarks.crash_campaign                  # 50 kills on each store
    .venv/bin/python -m benchmarks.crash_campaign --kills 80 --store sqlite --seed 7

Writes benchmarks/crash_campaign_results.json (--output to choose): per store the kills, the
commands acknowledged, the anomalies by kind (all must be 0), where the kills landed, and the
duration; with the seed that drew the kill moments (the timings themselves are the machine's).
The SQLite file goes to a temporary directory (--scratch) and PostgreSQL runs in a schema of
its own (bench_crash_*); either is kept, to be read, if an anomaly was found.
Not part of `python -m benchmarks`: it measures correctness, not speed.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import platform
import sqlite3
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from .__main__ import DEFAULT_POSTGRES, git_revision
from .common import log
from .pg import drop_schemas, fetchval, server_started, wait_for_server

HERE = Path(__file__).parent
sys.path.insert(0, str(HERE.parent / "tests"))  # the harness lives with the tests

import crash_campaign  # noqa: E402 - after the path it is found on
import crash_records  # noqa: E402


def parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.crash_campaign")
    parser.add_argument("--kills", type=int, default=50, help="kills per store (default 50)")
    parser.add_argument("--store", choices=["sqlite", "postgres", "both"], default="both")
    parser.add_argument("--seed", type=int, default=None, help="default: drawn and recorded")
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--accounts", type=int, default=24)
    parser.add_argument("--postgres", default=DEFAULT_POSTGRES, help="the DSN")
    parser.add_argument("--scratch", type=Path, help="where the SQLite file goes")
    parser.add_argument("--output", type=Path, default=HERE / "crash_campaign_results.json")
    args = parser.parse_args(argv)
    if args.kills < 1:
        parser.error("--kills must be at least 1")
    return args


async def campaign_on(
    store: str, args: argparse.Namespace, seed: int, scratch: Path
) -> dict[str, Any]:
    def progress(line: str) -> None:
        log(f"{store} {line}")

    options = dict(kills=args.kills, seed=seed, workdir=scratch, clients=args.clients,
                   accounts=args.accounts, progress=progress)  # fmt: skip
    if store == "sqlite":
        database = scratch / "crash-campaign.db"
        sqlite_result = await crash_campaign.run_campaign(
            crash_campaign.Target(str(database)), **options
        )
        summary = sqlite_result.summary()
        if sqlite_result.anomalies:
            kept = Path(tempfile.gettempdir()) / f"crash-campaign-{seed}.db"
            with sqlite3.connect(database) as source, sqlite3.connect(kept) as copy:
                source.backup(copy)
            log(f"anomalies found: the database is kept as {kept}")
            summary["kept_database"] = str(kept)
        return summary
    await wait_for_server(args.postgres, timeout=30)
    schema = f"bench_crash_{uuid.uuid4().hex[:12]}"
    started = await server_started(args.postgres)
    result = await crash_campaign.run_campaign(
        crash_campaign.Target(args.postgres, schema), **options
    )
    summary = result.summary()
    summary["postgres_version"] = await fetchval(args.postgres, "SHOW server_version")
    summary["server_restarted_during_run"] = await server_started(args.postgres) != started
    if result.anomalies:
        log(f"anomalies found: schema {schema} is kept for inspection")
        summary["kept_schema"] = schema
    else:
        await drop_schemas(args.postgres, schema)
    return summary


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    seed = args.seed if args.seed is not None else int.from_bytes(uuid.uuid4().bytes[:4])
    stores = ["sqlite", "postgres"] if args.store == "both" else [args.store]
    started = time.monotonic()
    results: dict[str, Any] = {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "command": " ".join(["python -m benchmarks.crash_campaign", *(argv or sys.argv[1:])]),
        "git": git_revision(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "sqlite": sqlite3.sqlite_version,
        "seed": seed,
        "kills_per_store": args.kills,
        "clients": args.clients,
        "accounts": args.accounts,
        "anomaly_kinds": crash_records.ANOMALY_KINDS,
        "stores": {},
    }
    with tempfile.TemporaryDirectory(prefix="crash-campaign-", dir=args.scratch) as scratch:
        for store in stores:
            log(f"{store}: {args.kills} kills, seed {seed}")
            summary = {**asyncio.run(campaign_on(store, args, seed, Path(scratch))), "store": store}
            results["stores"][store] = summary
            log(f"{store}: {summary['kills']} kills, {summary['acknowledged_commands']} "
                f"commands acknowledged, {summary['anomalies']} anomalies, "
                f"{summary['seconds']} s")  # fmt: skip
    results["total_seconds"] = round(time.monotonic() - started, 1)
    args.output.write_text(json.dumps(results, indent=2) + "\n")
    log(f"wrote {args.output}")
    clean = all(
        s["anomalies"] == 0 and s["kills"] >= args.kills for s in results["stores"].values()
    )
    return 0 if clean else 1


if __name__ == "__main__":
    sys.exit(main())
