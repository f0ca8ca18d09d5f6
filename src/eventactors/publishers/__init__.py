"""Publishers: projections that forward the event log to a message broker.

`JetStreamPublisher` (module `eventactors.publishers.nats`) needs the optional extra
`eventactors[nats]`; it loads on first use, so importing this package never needs nats-py.
Its errors, its statistics, and `encode_token` / `decode_token` (the subject and header
escaping, for consumers) need nothing beyond eventactors.
"""

from typing import TYPE_CHECKING, Any

from ._nats_format import decode_token as decode_token
from ._nats_format import encode_token as encode_token
from ._nats_types import PublisherStatistics as PublisherStatistics
from ._nats_types import PublisherUnavailable as PublisherUnavailable
from ._nats_types import PublishRejected as PublishRejected
from ._nats_types import StreamMismatch as StreamMismatch

if TYPE_CHECKING:
    from .nats import JetStreamPublisher as JetStreamPublisher


def __getattr__(name: str) -> Any:
    if name == "JetStreamPublisher":
        from .nats import JetStreamPublisher

        return JetStreamPublisher
    raise AttributeError(f"module 'eventactors.publishers' has no attribute {name!r}")


__all__ = [
    "JetStreamPublisher",
    "PublishRejected",
    "PublisherStatistics",
    "PublisherUnavailable",
    "StreamMismatch",
    "decode_token",
    "encode_token",
]
