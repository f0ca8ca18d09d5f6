"""The child of the multi-process creation race in test_natural_identifiers.py.

Usage: identity_child.py EMAIL NAME sqlite PATH | identity_child.py EMAIL NAME postgres DSN SCHEMA

Starts an engine on the database, prints "ready", waits for a line on stdin, then registers a
member by EMAIL with `send_by(create=True)` and prints "won <entity id>" or
"taken <owner>", so that the parent can release every child at once.
"""

from __future__ import annotations

import asyncio
import sys

from identity_behaviors import Register, open_child_store, register_library

import eventactors as ea


async def main(email: str, name: str, where: list[str]) -> None:
    engine = ea.Engine(store=open_child_store(where))
    register_library(engine)
    async with engine:
        print("ready", flush=True)
        await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)
        try:
            reply = await engine.send_by(
                "member", {"email": email}, Register(email, name), create=True, timeout=30
            )
        except ea.IdentifierTaken as taken:
            print(f"taken {taken.owner}", flush=True)
        else:
            print(f"won {reply.entity_id}", flush=True)


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2], sys.argv[3:]))
