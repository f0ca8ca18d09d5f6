"""What users subclass: the decisions (command handlers) and the state transitions (event handlers).

A behavior is instantiated once per live entity, with `entity_id` set before any handler runs.
"""

from __future__ import annotations

import abc
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any, ClassVar, Generic, TypeVar

from .errors import Rejected

if TYPE_CHECKING:
    from .engine import Engine

S = TypeVar("S")

__all__ = ["DurableStateBehavior", "EventSourcedBehavior", "Rejected"]


class _Behavior(abc.ABC, Generic[S]):
    #: When non-empty, commands of other types are refused with `UnknownCommand`
    #: before the handler runs; otherwise every command reaches `handle_command`.
    commands: ClassVar[tuple[type, ...]] = ()

    entity_id: str
    #: The engine running this entity: reach other entities through it (in cluster mode it
    #: sends them to their shards). Set, like `entity_id`, before any handler runs.
    engine: Engine

    @abc.abstractmethod
    def initial_state(self) -> S:
        """The state of an entity that has no history yet."""

    @abc.abstractmethod
    def handle_command(self, state: S, command: Any) -> Any:
        """Decides what a command does; may be `async def` to await external checks.

        Raise `Rejected(reason, meta=...)` to refuse: nothing is persisted.
        """


class EventSourcedBehavior(_Behavior[S]):
    """An entity whose state is the fold of its persisted events.

    `handle_command` returns a list of events, a single event, or None. Every event type it
    can return must be listed in `events`: that list is the decode registry for replay.
    """

    events: ClassVar[tuple[type, ...]] = ()

    @abc.abstractmethod
    def handle_event(self, state: S, event: Any) -> S:
        """Pure: the state after `event`. Used on write and on replay, so it must not fail
        or have side effects."""

    def tags_for(self, event: Any) -> Iterable[str]:
        """Tags stored with an event, for projections that select by tag."""
        return ()


class DurableStateBehavior(_Behavior[S]):
    """An entity that keeps only its latest state, with a revision that grows by one per change.

    `handle_command` returns the new state, or None for no change.
    """
