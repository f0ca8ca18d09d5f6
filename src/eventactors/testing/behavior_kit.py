"""Given / when / then for behaviors, as eGo's and Akka's testkits offer.

```python
kit = BehaviorTestKit(AccountBehavior)
kit.given(Opened(owner="ann"), Deposited(100))
(await kit.when(Withdraw(30))).then_events(Withdrawn(30)).then_state(Account("ann", 70))
(await kit.when(Withdraw(500))).then_rejected("insufficient funds", meta={"balance": 70})
```

Each `when` runs the command through the real runtime (the same validation, serialization,
declared-event checks and command timeout as in production) on a private `MemoryStore`: an
engine recovers the entity from what is given and stored so far, handles the command, and
stops. So a scenario's steps build on each other, every step also proves that the state
survives a replay, and nothing is left running between steps.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Generic, TypeVar

from .._ids import uuid7
from ..behavior import DurableStateBehavior, EventSourcedBehavior
from ..engine import Engine
from ..errors import Rejected
from ..records import EventEnvelope, EventRecord, StateRecord, persistence_id_of
from ..stores.memory import MemoryStore
from ..upcasting import event_version

S = TypeVar("S")

ENTITY_TYPE = "entity"


@dataclass(frozen=True, slots=True)
class CommandOutcome(Generic[S]):
    """What one command did; the `then_*` methods assert on it and return it, to chain."""

    command: Any
    events: tuple[Any, ...]
    state: S
    revision: int
    error: BaseException | None = None
    envelopes: tuple[EventEnvelope, ...] = ()

    def then_events(self, *expected: Any) -> CommandOutcome[S]:
        """The command persisted exactly these events, in this order."""
        self._succeeded("events")
        if list(self.events) != list(expected):
            raise AssertionError(
                f"{self._name()} persisted {list(self.events)!r}, expected {list(expected)!r}"
            )
        return self

    def then_no_events(self) -> CommandOutcome[S]:
        """Nothing was persisted (the command changed nothing, or was refused)."""
        if self.events:
            raise AssertionError(f"{self._name()} persisted {list(self.events)!r}, expected none")
        return self

    def then_state(self, expected: S) -> CommandOutcome[S]:
        """The entity's state after the command (after a rejection: the unchanged state)."""
        if self.state != expected:
            raise AssertionError(
                f"after {self._name()} the state is {self.state!r}, expected {expected!r}"
            )
        return self

    def then_revision(self, expected: int) -> CommandOutcome[S]:
        if self.revision != expected:
            raise AssertionError(
                f"after {self._name()} the revision is {self.revision}, expected {expected}"
            )
        return self

    def then_rejected(
        self, reason: str | None = None, *, meta: dict[str, Any] | None = None
    ) -> CommandOutcome[S]:
        """The handler refused the command (with this reason and meta, when given)."""
        if not isinstance(self.error, Rejected):
            raise AssertionError(f"{self._name()} was not rejected: {self._what_happened()}")
        if reason is not None and self.error.reason != reason:
            raise AssertionError(
                f"{self._name()} was rejected with {self.error.reason!r}, expected {reason!r}"
            )
        if meta is not None and self.error.meta != meta:
            raise AssertionError(
                f"{self._name()} was rejected with meta {self.error.meta!r}, expected {meta!r}"
            )
        return self

    def then_error(self, error_type: type[BaseException], match: str = "") -> CommandOutcome[S]:
        """The command failed with this error type (whose message contains `match`)."""
        if not isinstance(self.error, error_type) or match not in str(self.error):
            raise AssertionError(
                f"{self._name()} was expected to raise {error_type.__name__}"
                + (f" containing {match!r}" if match else "")
                + f": {self._what_happened()}"
            )
        return self

    def _succeeded(self, what: str) -> None:
        if self.error is not None:
            raise AssertionError(
                f"expected {what} from {self._name()}, but it raised {self.error!r}"
            ) from self.error

    def _what_happened(self) -> str:
        if self.error is None:
            return f"it persisted {list(self.events)!r}"
        return f"it raised {self.error!r}"

    def _name(self) -> str:
        return type(self.command).__qualname__


class BehaviorTestKit(Generic[S]):
    """A behavior under test, one entity of it. See the module docstring."""

    def __init__(
        self,
        behavior_class: type[EventSourcedBehavior[S]] | type[DurableStateBehavior[S]],
        *,
        entity_id: str = "test-entity",
        command_timeout: float | None = None,
        **register_options: Any,
    ) -> None:
        self.behavior_class = behavior_class
        self.entity_id = entity_id
        self.store = MemoryStore()
        self._options = {"command_timeout": command_timeout, **register_options}
        self._new_engine()  # checks the behavior and options now, not at the first step
        self.persistence_id = persistence_id_of(ENTITY_TYPE, entity_id)
        self._given: list[Any] = []
        self._given_state: tuple[Any, int] | None = None
        self._seeded = False

    @property
    def is_event_sourced(self) -> bool:
        return issubclass(self.behavior_class, EventSourcedBehavior)

    def given(self, *events: Any) -> BehaviorTestKit[S]:
        """History the entity already has (event-sourced behaviors)."""
        if not self.is_event_sourced:
            raise TypeError(
                f"{self.behavior_class.__qualname__} keeps durable state: use given_state()"
            )
        self._before_any_command("given")
        declared = set(getattr(self.behavior_class, "events", ()))
        for event in events:
            if type(event) not in declared:
                raise TypeError(
                    f"given event {type(event).__qualname__} is not declared in "
                    f"{self.behavior_class.__qualname__}.events"
                )
        self._given.extend(events)
        return self

    def given_state(self, state: S, revision: int = 1) -> BehaviorTestKit[S]:
        """The state a durable-state entity already has, at `revision`."""
        if self.is_event_sourced:
            raise TypeError(
                f"{self.behavior_class.__qualname__} is event-sourced: use given(*events)"
            )
        self._before_any_command("given_state")
        if isinstance(revision, bool) or not isinstance(revision, int) or revision < 1:
            raise ValueError(f"revision must be an int >= 1, got {revision!r}")
        self._given_state = (state, revision)
        return self

    async def when(self, command: Any, **send_options: Any) -> CommandOutcome[S]:
        """Runs the command (`send_options` as for `Engine.send`); returns what it did."""
        async with self._step() as engine:
            try:
                reply = await engine.send(ENTITY_TYPE, self.entity_id, command, **send_options)
            except Exception as error:
                state, revision = await engine.get_state(ENTITY_TYPE, self.entity_id)
                return CommandOutcome(command, (), state, revision, error)
            events = tuple(envelope.event for envelope in reply.events)
            return CommandOutcome(
                command, events, reply.state, reply.revision, envelopes=reply.events
            )

    async def state(self) -> tuple[S, int]:
        """The entity's (state, revision), recovered from what is given and stored."""
        async with self._step() as engine:
            current: tuple[S, int] = await engine.get_state(ENTITY_TYPE, self.entity_id)
            return current

    @contextlib.asynccontextmanager
    async def _step(self) -> AsyncIterator[Engine]:
        """A fresh engine on the kit's store: it recovers the entity, and stops afterwards."""
        async with self._new_engine() as engine:
            await self._seed()
            yield engine

    def _new_engine(self) -> Engine:
        engine = Engine(store=self.store)
        engine.register(ENTITY_TYPE, self.behavior_class, **self._options)
        return engine

    def _before_any_command(self, what: str) -> None:
        if self._seeded:
            raise RuntimeError(f"{what}() comes before the first when()")

    async def _seed(self) -> None:
        if self._seeded:
            return
        self._seeded = True
        serializer = self.store.serializer
        now = datetime.now(UTC)
        if self._given:
            records = [
                EventRecord(
                    event_id=uuid7(),
                    persistence_id=self.persistence_id,
                    entity_type=ENTITY_TYPE,
                    entity_id=self.entity_id,
                    sequence_number=number,
                    event_type=serializer.type_name(type(event)),
                    payload=serializer.encode(event),
                    timestamp=now,
                    event_version=event_version(type(event)),
                )
                for number, event in enumerate(self._given, start=1)
            ]
            await self.store.append(self.persistence_id, records, 0)
        if self._given_state is not None:
            state, revision = self._given_state
            name = serializer.type_name(type(state))
            for number in range(1, revision + 1):  # the store takes one revision at a time
                record = StateRecord(self.persistence_id, number, name, state, now)
                await self.store.upsert_state(self.persistence_id, number, record)
