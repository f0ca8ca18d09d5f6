"""The disk-full test's child: the bank's accounts on an SQLite file, driven by JSON lines.

Usage: disk_full_child.py PATH

RLIMIT_FSIZE limits the whole process, so the engine runs in a process of its own, whose
limit the parent moves by request. SIGXFSZ is ignored, so a write past the limit fails with
EFBIG, as a full disk fails with ENOSPC, instead of killing the process. Each request is one
JSON object on stdin and gets one JSON line back on stdout:

  {"op": "limit", "headroom": n}        the largest file may grow n bytes more
  {"op": "unlimit"}                     no limit again
  {"op": "send", "account": a, "command": "open" | "deposit" | "withdraw", "amount": n}
  {"op": "fill", "account": a}          deposits 1 until a deposit fails (at most 1000)
  {"op": "burst", "accounts": [...]}    one deposit to each account, all at once
  {"op": "state", "account": a}         its balance and revision
  {"op": "stop"}                        stops the engine, then exits
"""

from __future__ import annotations

import asyncio
import json
import os
import resource
import signal
import sys
from typing import Any

from eventactors_examples.bank.domain import AccountBehavior, Deposit, Open, Withdraw

import eventactors as ea

COMMANDS = {"open": lambda amount: Open("owner"), "deposit": Deposit, "withdraw": Withdraw}


def outcome(result: Any) -> dict[str, Any]:
    if isinstance(result, ea.Reply):
        events = [[e.persistence_id, e.sequence_number, e.event_id] for e in result.events]
        return {"ok": True, "revision": result.revision, "events": events}
    return {"ok": False, "error": type(result).__name__, "message": str(result)}


async def send(engine: ea.Engine, account: str, command: Any) -> dict[str, Any]:
    try:
        return outcome(await engine.send("account", account, command, timeout=60))
    except ea.EventActorsError as exc:
        return outcome(exc)


def set_limit(path: str, headroom: int | None) -> dict[str, Any]:
    _, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    soft = hard
    if headroom is not None:
        files = [path + suffix for suffix in ("", "-wal", "-shm")]
        soft = max(os.path.getsize(f) for f in files if os.path.exists(f)) + headroom
    resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
    return {"limit": soft}


async def handle(engine: ea.Engine, path: str, request: dict[str, Any]) -> dict[str, Any]:
    match request["op"]:
        case "limit":
            return set_limit(path, request["headroom"])
        case "unlimit":
            return set_limit(path, None)
        case "send":
            command = COMMANDS[request["command"]](request.get("amount", 0))
            return await send(engine, request["account"], command)
        case "fill":
            acks: list[dict[str, Any]] = []
            for _ in range(1000):
                result = await send(engine, request["account"], Deposit(1))
                if not result["ok"]:
                    return {"acks": acks, "failure": result}
                acks.append(result)
            return {"acks": acks, "failure": None}
        case "burst":
            accounts = request["accounts"]
            results = await asyncio.gather(
                *(engine.send("account", a, Deposit(1), timeout=60) for a in accounts),
                return_exceptions=True,
            )
            return {"results": [outcome(result) for result in results]}
        case "state":
            state, revision = await engine.get_state("account", request["account"], timeout=60)
            return {"balance": state.balance, "revision": revision}
    raise ValueError(f"unknown request {request!r}")


async def main(path: str) -> None:
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    engine = ea.Engine(store=ea.SQLiteStore(path))
    engine.register("account", AccountBehavior)
    async with engine:
        print(json.dumps({"ready": True}), flush=True)
        while line := await asyncio.to_thread(sys.stdin.readline):
            request = json.loads(line)
            if request["op"] == "stop":
                break
            print(json.dumps(await handle(engine, path, request)), flush=True)
    print(json.dumps({"stopped": True}), flush=True)


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1]))
