"""The store contract as abstract test classes, so that any store can prove itself.

```python
import pytest
from eventactors.testing.conformance import StoreContract

class TestMyStore(StoreContract):
    @pytest.fixture
    def open_store(self, tmp_path):
        return lambda: MyStore(tmp_path / "data")
```

pytest collects the subclass (its name starts with `Test`), and the classes here, whose names
do not, stay abstract. `open_store` is the one thing to supply: `StoreContractBase` says
exactly what it must do. A store that implements only some protocols combines the classes
it needs (`class TestMyStore(EventStoreContract, SnapshotStoreContract)`); each class's
docstring names the protocols it needs.

This package imports pytest and pytest-asyncio: it is for test code only, and
`eventactors.testing` does not import it.
"""

# ruff: noqa: E402
from __future__ import annotations

import pytest

# Before the modules load: their asserts then explain a failure as a test module's do.
pytest.register_assert_rewrite(
    *(
        f"{__name__}.{module}"
        for module in (
            "base",
            "kit",
            "_envelopes",
            "_identifiers",
            "event_reads",
            "event_writes",
            "event_store",
            "log_following",
            "sequence_at",
            "snapshot_store",
            "state_store",
            "offset_store",
            "command_log_store",
            "identifier_races",
            "identifier_store",
            "lifecycle",
        )
    )
)

from .base import OpenStore, StoreContractBase
from .command_log_store import CommandLogStoreContract
from .event_store import EventStoreContract
from .identifier_store import IdentifierStoreContract
from .kit import Kit
from .lifecycle import LifecycleContract
from .log_following import LogFollowingContract
from .offset_store import OffsetStoreContract
from .sequence_at import SequenceAtContract
from .snapshot_store import SnapshotStoreContract
from .state_store import StateStoreContract
from .suite import StoreContract

__all__ = [
    "CommandLogStoreContract",
    "EventStoreContract",
    "IdentifierStoreContract",
    "Kit",
    "LifecycleContract",
    "LogFollowingContract",
    "OffsetStoreContract",
    "OpenStore",
    "SequenceAtContract",
    "SnapshotStoreContract",
    "StateStoreContract",
    "StoreContract",
    "StoreContractBase",
]
