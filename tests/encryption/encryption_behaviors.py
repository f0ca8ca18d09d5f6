"""Behaviors whose commands, events, snapshots and states each carry text of their own, so
that a test can look for each of them in the raw database."""

from __future__ import annotations

import asyncio
from typing import Any

import msgspec

import eventactors as ea


class Write(msgspec.Struct, frozen=True):
    text: str  # goes into the event
    note: str = ""  # stays in the command (and its command-log entry) only


class Written(msgspec.Struct, frozen=True):
    text: str


class Notebook(msgspec.Struct, frozen=True):
    pages: tuple[str, ...] = ()
    mirrored: str = ""  # the last text reversed: found only in snapshots (and replies)


class Gate:
    """Holds the commands whose note names it in flight: `arrived` is set when one starts
    waiting, and they carry on once `release` is set."""

    def __init__(self) -> None:
        self.arrived = asyncio.Event()
        self.release = asyncio.Event()


GATES: dict[str, Gate] = {}


class NotebookBehavior(ea.EventSourcedBehavior[Notebook]):
    commands = (Write,)
    events = (Written,)

    def initial_state(self) -> Notebook:
        return Notebook()

    async def handle_command(self, state: Notebook, command: Write) -> Any:
        if not command.text:
            raise ea.Rejected("nothing to write")
        gate = GATES.get(command.note)
        if gate is not None:
            gate.arrived.set()
            await gate.release.wait()
        return Written(command.text)

    def handle_event(self, state: Notebook, event: Written) -> Notebook:
        return Notebook((*state.pages, event.text), event.text[::-1])


class SetProfile(msgspec.Struct, frozen=True):
    name: str


class Profile(msgspec.Struct, frozen=True):
    name: str = ""


class ProfileBehavior(ea.DurableStateBehavior[Profile]):
    commands = (SetProfile,)

    def initial_state(self) -> Profile:
        return Profile()

    def handle_command(self, state: Profile, command: SetProfile) -> Profile:
        return Profile(command.name)


def notebook_engine(store: ea.Store, **options: Any) -> ea.Engine:
    engine = ea.Engine(store=store)
    engine.register("notebook", NotebookBehavior, **options)
    engine.register("profile", ProfileBehavior, command_log=options.get("command_log", False))
    return engine
