"""What a driver ships to the processes of its cluster: the application, as data.

Shard and projection actors build their engines from it: the same registrations (behavior
classes travel by reference, so their modules must be importable there), the same store
configuration (a store pickles as its configuration), and the same cluster settings.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .._runtime.payload_limit import DEFAULT_MAX_EVENT_BYTES
from .config import RayCluster

if TYPE_CHECKING:
    from ..engine import Engine
    from ..stores.protocols import Store

#: (entity_type, behavior class, register() keyword arguments)
Registration = tuple[str, type, dict[str, Any]]


@dataclass(frozen=True, slots=True)
class AppSpec:
    registrations: tuple[Registration, ...]
    store: Store
    cluster: RayCluster
    max_event_bytes: int | None = DEFAULT_MAX_EVENT_BYTES  # the driver engine's

    @property
    def fingerprint(self) -> tuple[tuple[str, str], ...]:
        """What two processes must agree on to share shards: the types and their behaviors."""
        return tuple(
            (entity_type, f"{cls.__module__}.{cls.__qualname__}")
            for entity_type, cls, _ in self.registrations
        )

    def build_engine(self, *, shard: int | None = None) -> Engine:
        """An engine of this application; with `shard`, the host of that shard's entities."""
        from ..engine import Engine

        engine = Engine(
            store=self.store, cluster=self.cluster, max_event_bytes=self.max_event_bytes,
            _hosted_shard=shard, _host=True,
        )  # fmt: skip
        for entity_type, behavior_class, options in self.registrations:
            engine.register(entity_type, behavior_class, **options)
        return engine
