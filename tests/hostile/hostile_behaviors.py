"""Behaviors for the hostile-input tests: ones whose events and states grow on request, and a
durable-state counter, beside the bank example's account."""

from __future__ import annotations

from typing import Any

import msgspec

import eventactors as ea


class Write(msgspec.Struct, frozen=True):
    """Asks for one event per entry of `sizes`, each carrying that many characters."""

    sizes: tuple[int, ...]


class Wrote(msgspec.Struct, frozen=True):
    data: str


class Notes(msgspec.Struct, frozen=True):
    lengths: tuple[int, ...] = ()


class NotesBehavior(ea.EventSourcedBehavior[Notes]):
    commands = (Write,)
    events = (Wrote,)

    def initial_state(self) -> Notes:
        return Notes()

    def handle_command(self, state: Notes, command: Write) -> list[Wrote]:
        return [Wrote("x" * size) for size in command.sizes]

    def handle_event(self, state: Notes, event: Wrote) -> Notes:
        return Notes((*state.lengths, len(event.data)))


class Fill(msgspec.Struct, frozen=True):
    """Replaces the page's text with `size` characters."""

    size: int


class Page(msgspec.Struct, frozen=True):
    text: str = ""
    edits: int = 0


class PageBehavior(ea.DurableStateBehavior[Page]):
    commands = (Fill,)

    def initial_state(self) -> Page:
        return Page()

    def handle_command(self, state: Page, command: Fill) -> Page:
        return Page("x" * command.size, state.edits + 1)


def encoded_size(value: Any) -> int:
    """What the default serializer makes of `value`, in bytes: the size the limit measures."""
    return len(msgspec.json.encode(value))


def wrote_of_size(size: int) -> int:
    """The number of characters that makes a `Wrote` event exactly `size` bytes encoded."""
    return size - encoded_size(Wrote(""))


def page_of_size(size: int, edits: int) -> int:
    """The number of characters that makes a `Page` state exactly `size` bytes encoded."""
    return size - encoded_size(Page("", edits))
