"""The gateway's batcher: concurrent calls share round trips, each gets its own answer, failures free the slot."""

from __future__ import annotations

import eventlet
import pytest

from gateway.batching import Batcher


class Echo:
    def __init__(self, delay: float = 0.01, fail_on=None):
        self.delay = delay
        self.fail_on = fail_on
        self.batches: list[list] = []
        self.concurrent = 0
        self.most_concurrent = 0

    def __call__(self, items: list) -> list:
        self.batches.append(list(items))
        self.concurrent += 1
        self.most_concurrent = max(self.most_concurrent, self.concurrent)
        try:
            eventlet.sleep(self.delay)
            if self.fail_on is not None and self.fail_on in items:
                raise ValueError("the service refused the batch")
            return [item * 10 for item in items]
        finally:
            self.concurrent -= 1


def test_a_lone_call_goes_at_once_and_alone():
    batcher, send = Batcher(), Echo(delay=0)
    assert batcher.submit(7, send) == 70
    assert send.batches == [[7]]


def test_concurrent_calls_share_round_trips_and_each_gets_its_own_answer():
    batcher, send = Batcher(max_batch=8, max_in_flight=2), Echo()
    pool = eventlet.GreenPool(100)
    answers = list(pool.imap(lambda n: batcher.submit(n, send), range(100)))
    assert answers == [n * 10 for n in range(100)]
    assert sorted(item for batch in send.batches for item in batch) == list(range(100))  # each sent once
    assert len(send.batches) < 100 and max(len(b) for b in send.batches) <= 8
    assert send.most_concurrent <= 2
    assert batcher.items_sent == 100 and batcher.batches_sent == len(send.batches)


def test_a_failed_batch_fails_its_callers_only_and_frees_the_slot():
    batcher, send = Batcher(max_batch=4, max_in_flight=1), Echo(fail_on=3)
    pool = eventlet.GreenPool(20)

    def call(n):
        try:
            return batcher.submit(n, send)
        except ValueError:
            return "refused"

    answers = list(pool.imap(call, range(12)))
    refused = {n for n, answer in zip(range(12), answers, strict=True) if answer == "refused"}
    failed_batch = next(b for b in send.batches if 3 in b)
    assert refused == set(failed_batch)
    assert all(answer == n * 10 for n, answer in zip(range(12), answers, strict=True) if n not in refused)
    assert batcher.submit(5, send) == 50  # the slot was given back


def test_a_leader_killed_mid_call_answers_its_followers_and_passes_the_slot_on():
    batcher = Batcher(max_batch=8, max_in_flight=1)
    send = Echo(delay=0.2)
    leader = eventlet.spawn(batcher.submit, 1, send)
    eventlet.sleep(0.01)
    followers = [eventlet.spawn(batcher.submit, n, send) for n in (2, 3)]
    eventlet.sleep(0.01)
    leader.kill()
    assert [f.wait() for f in followers] == [20, 30]  # the next batch carried them
    with pytest.raises(eventlet.greenlet.GreenletExit):
        leader.wait()
    assert batcher.submit(4, Echo(delay=0)) == 40
