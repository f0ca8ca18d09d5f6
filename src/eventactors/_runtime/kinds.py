"""A registered entity type: its behavior class and the options that govern its actors."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from .._identifiers import IdentifierSpec
from ..behavior import DurableStateBehavior, EventSourcedBehavior
from ..records import EventEnvelope
from ..serialization import Serializer
from ..stores.protocols import Store
from ..upcasting import event_version
from .recorder import CommandCounter, Recorder

if TYPE_CHECKING:
    from .entity import EntityActor


@dataclass(slots=True, eq=False)
class EntityKind:
    """Everything an entity actor needs to know about its type, shared by all its instances."""

    name: str
    behavior_class: type[EventSourcedBehavior[Any]] | type[DurableStateBehavior[Any]]
    store: Store
    serializer: Serializer
    publish: Callable[[Sequence[EventEnvelope]], None]
    state_type: type
    state_type_name: str
    event_types: frozenset[type] = frozenset()
    command_types: frozenset[type] = frozenset()
    snapshot_every: int | None = None
    passivate_after: float | None = None
    command_timeout: float | None = None
    identifiers: IdentifierSpec | None = None
    command_log: bool = False
    #: The engine's `max_event_bytes`: the largest encoded event or state (None: no limit).
    max_event_bytes: int | None = None
    #: The engine that runs this type's entities: behaviors reach other entities through it.
    engine: Any = None
    #: Idle actors in the order they became idle; the passivation sweep reads from the front.
    idle: OrderedDict[str, EntityActor] = field(default_factory=OrderedDict)
    #: The engine's tallies, and this type's own command counts within them.
    recorder: Recorder = field(default_factory=Recorder)
    counts: CommandCounter = field(init=False)
    #: The version each declared event type writes, stored with every event.
    event_versions: dict[type, int] = field(init=False)

    def __post_init__(self) -> None:
        self.counts = self.recorder.counter(self.name)
        self.event_versions = {cls: event_version(cls) for cls in self.event_types}

    @property
    def is_durable_state(self) -> bool:
        return issubclass(self.behavior_class, DurableStateBehavior)
