"""eventactors: event-sourced actors and CQRS for Python.

Layout: `behavior` (what users subclass), `engine` (routing and lifecycle), `_runtime/` (the
actor runtime), `records` (what crosses the store boundary), `serialization`, and `stores/`
(one backend per module). Only the names below are public.
"""

from typing import TYPE_CHECKING, Any

from ._statistics import BatchSizes as BatchSizes
from ._statistics import CommandCounts as CommandCounts
from ._statistics import EngineStatistics as EngineStatistics
from ._statistics import LatencyPercentiles as LatencyPercentiles
from .behavior import DurableStateBehavior as DurableStateBehavior
from .behavior import EventSourcedBehavior as EventSourcedBehavior
from .cluster.config import RayCluster as RayCluster
from .engine import Engine as Engine
from .erased import ErasedEvent as ErasedEvent
from .errors import CommandTimeout as CommandTimeout
from .errors import ConcurrencyError as ConcurrencyError
from .errors import EngineNotStarted as EngineNotStarted
from .errors import EntityErased as EntityErased
from .errors import EventActorsError as EventActorsError
from .errors import IdentifierTaken as IdentifierTaken
from .errors import InvalidEntityId as InvalidEntityId
from .errors import InvalidHandlerResult as InvalidHandlerResult
from .errors import InvalidIdentifiers as InvalidIdentifiers
from .errors import PayloadTooLarge as PayloadTooLarge
from .errors import Rejected as Rejected
from .errors import SerializationError as SerializationError
from .errors import ShardUnavailable as ShardUnavailable
from .errors import StoreUnavailable as StoreUnavailable
from .errors import UnknownCommand as UnknownCommand
from .errors import UnknownEntityType as UnknownEntityType
from .errors import WriteRefused as WriteRefused
from .projections import FailurePolicy as FailurePolicy
from .projections import ProjectionState as ProjectionState
from .projections import ProjectionStatus as ProjectionStatus
from .projections import fail as fail
from .projections import retry as retry
from .projections import retry_then_skip as retry_then_skip
from .records import ACCEPTED as ACCEPTED
from .records import FAILED as FAILED
from .records import REJECTED as REJECTED
from .records import TIMED_OUT as TIMED_OUT
from .records import CommandRecord as CommandRecord
from .records import EventEnvelope as EventEnvelope
from .records import EventRecord as EventRecord
from .records import IdentifierClaim as IdentifierClaim
from .records import Reply as Reply
from .records import Snapshot as Snapshot
from .records import StateRecord as StateRecord
from .serialization import JsonSerializer as JsonSerializer
from .serialization import ProtobufSerializer as ProtobufSerializer
from .serialization import Serializer as Serializer
from .stores.group_commit import WriteStatistics as WriteStatistics
from .stores.locate import open_store as open_store
from .stores.memory import MemoryStore as MemoryStore
from .stores.protocols import CommandLogStore as CommandLogStore
from .stores.protocols import EventStore as EventStore
from .stores.protocols import IdentifierStore as IdentifierStore
from .stores.protocols import KeyStore as KeyStore
from .stores.protocols import OffsetStore as OffsetStore
from .stores.protocols import SnapshotStore as SnapshotStore
from .stores.protocols import StateStore as StateStore
from .stores.protocols import Store as Store
from .stores.protocols import TransactionalOffsetStore as TransactionalOffsetStore
from .stores.sqlite import SQLiteStore as SQLiteStore
from .subscription import Subscription as Subscription
from .upcasting import upcaster as upcaster

if TYPE_CHECKING:
    from .stores.encrypted import EncryptedStore as EncryptedStore
    from .stores.postgres import PostgresStore as PostgresStore


def __getattr__(name: str) -> Any:
    """`PostgresStore` and `EncryptedStore` load on first use, so that asyncpg and
    cryptography stay optional extras."""
    if name == "PostgresStore":
        from .stores.postgres import PostgresStore

        return PostgresStore
    if name == "EncryptedStore":
        from .stores.encrypted import EncryptedStore

        return EncryptedStore
    raise AttributeError(f"module 'eventactors' has no attribute {name!r}")


__all__ = [
    "ACCEPTED",
    "FAILED",
    "REJECTED",
    "TIMED_OUT",
    "BatchSizes",
    "CommandCounts",
    "CommandLogStore",
    "CommandRecord",
    "CommandTimeout",
    "ConcurrencyError",
    "DurableStateBehavior",
    "EncryptedStore",
    "Engine",
    "EngineNotStarted",
    "EngineStatistics",
    "EntityErased",
    "ErasedEvent",
    "EventActorsError",
    "EventEnvelope",
    "EventRecord",
    "EventSourcedBehavior",
    "EventStore",
    "FailurePolicy",
    "IdentifierClaim",
    "IdentifierStore",
    "IdentifierTaken",
    "InvalidEntityId",
    "InvalidHandlerResult",
    "InvalidIdentifiers",
    "JsonSerializer",
    "KeyStore",
    "LatencyPercentiles",
    "MemoryStore",
    "OffsetStore",
    "PayloadTooLarge",
    "PostgresStore",
    "ProjectionState",
    "ProjectionStatus",
    "ProtobufSerializer",
    "RayCluster",
    "Rejected",
    "Reply",
    "SQLiteStore",
    "SerializationError",
    "Serializer",
    "ShardUnavailable",
    "Snapshot",
    "SnapshotStore",
    "StateRecord",
    "StateStore",
    "Store",
    "StoreUnavailable",
    "Subscription",
    "TransactionalOffsetStore",
    "UnknownCommand",
    "UnknownEntityType",
    "WriteRefused",
    "WriteStatistics",
    "fail",
    "open_store",
    "retry",
    "retry_then_skip",
    "upcaster",
]
__version__ = "0.1.0"
