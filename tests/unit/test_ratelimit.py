from __future__ import annotations

import pytest

from gateway.ratelimit import TokenBucketLimiter


def take(limiter: TokenBucketLimiter, client: str, times: int, now: float) -> list[bool]:
    return [limiter.allow(client, now=now) for _ in range(times)]


def test_burst_then_refusal():
    limiter = TokenBucketLimiter(per_minute=60, burst=3)
    assert take(limiter, "a", 3, now=100.0) == [True, True, True]
    assert limiter.allow("a", now=100.0) is False
    assert limiter.allow("a", now=100.5) is False  # half a token is not a token


def test_refill_over_time():
    limiter = TokenBucketLimiter(per_minute=60, burst=3)  # one token per second
    take(limiter, "a", 3, now=0.0)
    assert limiter.allow("a", now=0.0) is False
    assert limiter.allow("a", now=1.0) is True
    assert limiter.allow("a", now=1.0) is False
    assert take(limiter, "a", 3, now=3.0) == [True, True, False]


def test_refill_is_capped_at_the_burst():
    limiter = TokenBucketLimiter(per_minute=60, burst=3)
    take(limiter, "a", 3, now=0.0)
    assert take(limiter, "a", 5, now=3600.0) == [True, True, True, False, False]


def test_clients_are_independent():
    limiter = TokenBucketLimiter(per_minute=60, burst=2)
    assert take(limiter, "a", 3, now=10.0) == [True, True, False]
    assert take(limiter, "b", 3, now=10.0) == [True, True, False]
    assert limiter.allow("a", now=10.0) is False


def test_default_burst_is_a_tenth_of_a_minute():
    limiter = TokenBucketLimiter(per_minute=600)
    assert limiter.capacity == 100
    assert take(limiter, "a", 101, now=0.0).count(True) == 100


def test_default_burst_is_at_least_one():
    limiter = TokenBucketLimiter(per_minute=1)
    assert take(limiter, "a", 2, now=0.0) == [True, False]
    assert limiter.allow("a", now=59.0) is False
    assert limiter.allow("a", now=60.0) is True


@pytest.mark.parametrize("per_minute", [0, -5])
def test_a_zero_rate_disables_limiting(per_minute):
    limiter = TokenBucketLimiter(per_minute=per_minute)
    assert all(take(limiter, "a", 1000, now=0.0))


def test_memory_is_bounded_and_a_reset_only_lets_clients_through():
    limiter = TokenBucketLimiter(per_minute=60, burst=1, max_clients=2)
    assert limiter.allow("a", now=0.0) is True
    assert limiter.allow("b", now=0.0) is True
    assert limiter.allow("a", now=0.0) is False
    assert limiter.allow("c", now=0.0) is True  # table full: reset
    assert len(limiter._buckets) <= 2
    assert limiter.allow("a", now=0.0) is True  # forgotten, so full again


def test_retry_after_is_the_whole_seconds_until_the_next_token():
    limiter = TokenBucketLimiter(per_minute=60, burst=2)  # one token a second
    take(limiter, "a", 2, now=0.0)
    assert limiter.retry_after("a", now=0.0) == 1
    assert limiter.retry_after("a", now=0.25) == 1  # 0.75 s, rounded up
    slow = TokenBucketLimiter(per_minute=6, burst=1)  # one token every 10 s
    take(slow, "a", 1, now=0.0)
    assert slow.retry_after("a", now=0.0) == 10
    assert slow.retry_after("a", now=3.5) == 7
    assert slow.allow("a", now=9.9) is False and slow.allow("a", now=10.0) is True


def test_retry_after_is_at_least_a_second():
    limiter = TokenBucketLimiter(per_minute=60, burst=2)
    assert limiter.retry_after("fresh", now=0.0) == 1
    assert TokenBucketLimiter(per_minute=0).retry_after("a") == 1
