"""Group calls that arrive together into one round trip (the group-commit pattern, applied to RPC).

Public checks are the busiest path, and each one through nameko costs an RPC hop and a database commit in
verification. Here the first caller to find a free slot sends at once (no waiting at low load); callers that
arrive while a batch is in flight queue up, and when it returns, the longest-waiting of them sends everything
queued in one call. Throughput then grows with load instead of latency. Each caller's outcome is its own:
verification still checks, logs and limits every item on its own.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable

import eventlet

_LEAD = object()


class _Waiter:
    __slots__ = ("item", "send", "event")

    def __init__(self, item, send):
        self.item = item
        self.send = send
        self.event = eventlet.event.Event()


class Batcher:
    """``submit(item, send)`` returns this item's result; ``send(items) -> results`` (same length, same order)
    is called in the green thread of whichever caller leads the batch, with at most ``max_batch`` items and at
    most ``max_in_flight`` batches at once. If ``send`` raises, every caller in that batch gets the error."""

    def __init__(self, max_batch: int = 64, max_in_flight: int = 2):
        self.max_batch = max_batch
        self.max_in_flight = max_in_flight
        self._queue: deque[_Waiter] = deque()
        self._in_flight = 0
        self.batches_sent = 0  # for tests and metrics: how many round trips served how many calls
        self.items_sent = 0

    def submit(self, item, send: Callable[[list], list]):
        waiter = _Waiter(item, send)
        if self._in_flight < self.max_in_flight:
            self._in_flight += 1
            self._lead(waiter)
        else:
            self._queue.append(waiter)
        while True:
            outcome = waiter.event.wait()
            if outcome is _LEAD:
                waiter.event = eventlet.event.Event()
                self._lead(waiter)
                continue
            ok, value = outcome
            if ok:
                return value
            raise value

    def _lead(self, leader: _Waiter) -> None:
        batch = [leader]
        while self._queue and len(batch) < self.max_batch:
            batch.append(self._queue.popleft())
        outcomes = [(False, RuntimeError("the batch was interrupted"))] * len(batch)
        try:
            results = leader.send([w.item for w in batch])
            if len(results) != len(batch):
                raise RuntimeError(f"a batch of {len(batch)} got {len(results)} answers")
            outcomes = [(True, result) for result in results]
        except Exception as error:  # every caller in the batch gets the same failure
            outcomes = [(False, error)] * len(batch)
        finally:  # even if the leader itself is killed, its followers are answered and the slot passes on
            self.batches_sent += 1
            self.items_sent += len(batch)
            if self._queue:
                self._queue.popleft().event.send(_LEAD)
            else:
                self._in_flight -= 1
            for waiter, outcome in zip(batch[1:], outcomes[1:], strict=True):
                waiter.event.send(outcome)
        leader.event.send(outcomes[0])
