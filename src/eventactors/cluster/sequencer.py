"""Keeps batches from one sender in the order they were sent, whatever order Ray runs the
calls in (Ray guarantees submission order only for synchronous actors without retries).

Each sender numbers its batches to a shard 0, 1, 2... and says with each one its `base`: the
lowest number whose call has not yet returned to it, so every batch below `base` was either
handled or failed for good. A batch waits for its predecessor; a predecessor that never comes
(its call died with a previous incarnation of the shard) is skipped once `base` passes it, or
after `gap_timeout` seconds.
"""

from __future__ import annotations

import asyncio

from ..errors import ShardUnavailable

#: How long a batch waits for a predecessor that may have been lost with a dead incarnation.
GAP_TIMEOUT = 2.0


class Sequencer:
    def __init__(self, gap_timeout: float = GAP_TIMEOUT) -> None:
        self._gap_timeout = gap_timeout
        self._expected: dict[str, int] = {}  # sender -> the batch number whose turn it is
        self._waiting: dict[tuple[str, int], asyncio.Future[None]] = {}

    async def turn(self, sender: str, number: int, base: int) -> None:
        """Returns when it is this batch's turn; then call `done` before any await."""
        expected = self._expected.get(sender)
        if expected is None or base > expected:
            self._expected[sender] = expected = base
            self._wake(sender, expected)
        if number < expected:
            raise ShardUnavailable(
                f"batch {number} from {sender} arrived after its successors were handled: "
                "dropped, its commands were not run"
            )
        if number == expected:
            return
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiting[(sender, number)] = waiter
        try:
            await asyncio.wait_for(asyncio.shield(waiter), self._gap_timeout)
        except TimeoutError:  # the predecessor is lost: go on without it
            self._expected[sender] = max(self._expected[sender], number)
        finally:
            self._waiting.pop((sender, number), None)

    def done(self, sender: str, number: int) -> None:
        """The batch is in its mailboxes: its successor's turn."""
        self._expected[sender] = number + 1
        self._wake(sender, number + 1)

    def _wake(self, sender: str, number: int) -> None:
        waiter = self._waiting.get((sender, number))
        if waiter is not None and not waiter.done():
            waiter.set_result(None)
