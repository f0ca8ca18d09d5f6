"""Checking `add_projection`'s arguments, so a mistake is named when the projection is added."""

from __future__ import annotations

import inspect
from collections.abc import Callable, Sequence
from typing import Any

from .._slices import NUM_SLICES
from ..projections import FailurePolicy, fail
from ..stores._common import check_filter
from ..stores.protocols import OffsetStore, Store, TransactionalOffsetStore
from .projection_runner import ProjectionSpec


def build_spec(
    store: Store,
    name: str,
    handler: Callable[..., Any],
    *,
    from_start: bool,
    batch_size: int,
    policy: FailurePolicy | None,
    offset_store: OffsetStore | None,
    entity_types: Sequence[str] | None,
    event_types: Sequence[str] | None,
    tags: Sequence[str] | None,
    batched: bool,
    transactional: bool,
    reset: Callable[..., Any] | None,
    poll_interval: float,
    slices: range | None = None,
) -> ProjectionSpec:
    if not isinstance(name, str) or not name.strip():
        raise ValueError(f"a projection needs a non-empty name, got {name!r}")
    if not callable(handler):
        raise TypeError(f"projection {name!r}: the handler must be callable, got {handler!r}")
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"projection {name!r}: batch_size must be an int >= 1, got {batch_size!r}")
    if not poll_interval > 0:
        raise ValueError(f"projection {name!r}: poll_interval must be positive")
    if policy is not None and not isinstance(policy, FailurePolicy):
        raise TypeError(
            f"projection {name!r}: policy must be fail(), retry(...) or retry_then_skip(...)"
        )
    if offset_store is not None and not isinstance(offset_store, OffsetStore):
        raise TypeError(f"projection {name!r}: {offset_store!r} is not an OffsetStore")
    if transactional:
        _check_transactional(store, name, handler, offset_store)
    if slices is not None and (
        not isinstance(slices, range) or slices.step != 1 or not slices
        or slices.start < 0 or slices.stop > NUM_SLICES
    ):  # fmt: skip
        raise ValueError(
            f"projection {name!r}: slices must be a non-empty range within "
            f"range(0, {NUM_SLICES}), got {slices!r}"
        )
    return ProjectionSpec(
        name=name,
        handler=handler,
        from_start=from_start,
        batch_size=batch_size,
        policy=policy or fail(),
        offset_store=offset_store or store,
        entity_types=check_filter(entity_types, "entity_types"),
        event_types=check_filter(event_types, "event_types"),
        tags=check_filter(tags, "tags"),
        batched=batched or transactional,
        transactional=transactional,
        poll_interval=poll_interval,
        reset=reset,
        slices=slices,
    )


def _check_transactional(
    store: Store, name: str, handler: Callable[..., Any], offset_store: OffsetStore | None
) -> None:
    if not isinstance(store, TransactionalOffsetStore):
        raise TypeError(
            f"projection {name!r}: exactly-once (transactional=True) needs a database store "
            f"(SQLiteStore or PostgresStore), not {type(store).__name__}"
        )
    if offset_store is not None and offset_store is not store:
        raise ValueError(
            f"projection {name!r}: a transactional projection keeps its offset in the "
            "engine's store, in the handler's transaction; do not pass offset_store"
        )
    from ..stores.sqlite import SQLiteStore

    wrapped = getattr(store, "inner", store)  # an EncryptedStore commits through its store
    if isinstance(wrapped, SQLiteStore) and inspect.iscoroutinefunction(handler):
        raise TypeError(
            f"projection {name!r}: on SQLite a transactional handler runs on the store's writer "
            "thread inside its transaction, so it must be a plain function, not async"
        )
