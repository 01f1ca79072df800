"""A per-client token bucket for public endpoints, so one client cannot drown the lookup path."""

from __future__ import annotations

import math
import time


class TokenBucketLimiter:
    def __init__(self, per_minute: int, burst: int | None = None, max_clients: int = 100_000):
        self.rate = per_minute / 60.0
        self.capacity = float(burst if burst is not None else max(1, per_minute // 6))
        self.max_clients = max_clients
        self._buckets: dict[str, tuple[float, float]] = {}

    def allow(self, client: str, now: float | None = None) -> bool:
        if self.rate <= 0:
            return True
        now = time.monotonic() if now is None else now
        tokens, updated = self._buckets.get(client, (self.capacity, now))
        tokens = min(self.capacity, tokens + (now - updated) * self.rate)
        allowed = tokens >= 1.0
        if allowed:
            tokens -= 1.0
        if len(self._buckets) >= self.max_clients and client not in self._buckets:
            self._buckets.clear()  # bounded memory; a full reset only ever lets clients through
        self._buckets[client] = (tokens, now)
        return allowed

    def retry_after(self, client: str, now: float | None = None) -> int:
        """Whole seconds until ``client`` has a request again (at least 1): what a refusal's Retry-After says."""
        if self.rate <= 0:
            return 1
        now = time.monotonic() if now is None else now
        tokens, updated = self._buckets.get(client, (self.capacity, now))
        tokens = min(self.capacity, tokens + (now - updated) * self.rate)
        return max(1, math.ceil((1.0 - tokens) / self.rate))
