"""Publishers: projections that forward the event log to a message broker.

The canonical import path is the publisher's own module, `eventactors.publishers.nats`
(it needs the optional extra `eventactors[nats]`): `JetStreamPublisher`, its errors, its
statistics, and `encode_token` / `decode_token` for consumers. This package forwards those
names on first use, so that importing it never needs nats-py.
"""

import importlib
from typing import Any


def __getattr__(name: str) -> Any:
    if not name.startswith("_"):
        nats = importlib.import_module(".nats", __name__)
        if name in nats.__all__:
            return getattr(nats, name)
    raise AttributeError(f"module 'eventactors.publishers' has no attribute {name!r}")
