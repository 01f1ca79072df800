"""Group calls that arrive together into one round trip (the group-commit pattern, applied to RPC).

Public checks are the busiest path, and each one through nameko costs an RPC hop and a database commit in
verification. Here the first caller to find a free slot sends at once (no waiting at low load); callers that
arrive while a batch is in flight queue up, and when it returns, the longest-waiting of them sends everything
queued in one call. Throughput then grows with load instead of latency. Each caller's outcome is its own:
verification still checks, logs and limits every item on its own.
"""

from __future__ import annotations

import asyncio
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
        outcomes: list[tuple[bool, object]] = [(False, RuntimeError("the batch was interrupted"))] * len(batch)
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


class AsyncBatcher:
    """``Batcher`` for asyncio (the uvicorn gateway, gateway/asgi.py), with the same rule: the first caller to
    find a free slot sends at once; callers that arrive while ``max_in_flight`` batches are out queue, and when
    a batch returns, everything queued (up to ``max_batch``) goes in the next one. ``send`` is a coroutine
    function; its batch runs in a task of its own, so a caller that goes away (a client that disconnects)
    does not cancel the others' answers."""

    def __init__(self, max_batch: int = 64, max_in_flight: int = 2):
        self.max_batch = max_batch
        self.max_in_flight = max_in_flight
        self._queue: deque = deque()
        self._in_flight = 0
        self._tasks: set = set()  # the loop keeps only weak references to tasks
        self.batches_sent = 0
        self.items_sent = 0

    async def submit(self, item, send):
        future = asyncio.get_running_loop().create_future()
        self._queue.append((item, future, send))
        if self._in_flight < self.max_in_flight:
            self._in_flight += 1
            self._send_next()
        return await future

    def _send_next(self) -> None:
        batch = [self._queue.popleft() for _ in range(min(self.max_batch, len(self._queue)))]
        task = asyncio.get_running_loop().create_task(self._send(batch))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _send(self, batch: list) -> None:
        try:
            results = await batch[0][2]([item for item, _future, _send in batch])
            if len(results) != len(batch):
                raise RuntimeError(f"a batch of {len(batch)} got {len(results)} answers")
            for (_item, future, _send), result in zip(batch, results, strict=True):
                if not future.done():
                    future.set_result(result)
        except BaseException as error:  # every caller in the batch gets the same failure, even a cancellation
            for _item, future, _send in batch:
                if not future.done():
                    future.set_exception(error if isinstance(error, Exception) else RuntimeError(
                        "the batch was interrupted"))
            if not isinstance(error, Exception):
                raise
        finally:
            self.batches_sent += 1
            self.items_sent += len(batch)
            if self._queue:
                self._send_next()
            else:
                self._in_flight -= 1
