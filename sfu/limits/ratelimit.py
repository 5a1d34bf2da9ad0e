"""Token buckets: per-connection limits on how fast anyone can make the server work."""

from __future__ import annotations

import time
from collections.abc import Callable


class TokenBucket:
    def __init__(self, rate: float, burst: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.rate = rate
        self.burst = burst
        self._clock = clock
        self._tokens = burst
        self._updated = clock()

    def allow(self, cost: float = 1.0) -> bool:
        now = self._clock()
        self._tokens = min(self.burst, self._tokens + (now - self._updated) * self.rate)
        self._updated = now
        if self._tokens >= cost:
            self._tokens -= cost
            return True
        return False

    def tokens(self) -> float:
        """What is left now, without spending any."""
        return min(self.burst, self._tokens + (self._clock() - self._updated) * self.rate)

    def full(self) -> bool:
        """No recent use: the bucket has refilled to its burst."""
        return self._tokens + (self._clock() - self._updated) * self.rate >= self.burst


class KeyedBuckets:
    """One token bucket per key (a client address, a room, a person), made on first use. At most `max_keys`
    are kept: when full, keys whose bucket has refilled go first (they carry no history), then the oldest."""

    def __init__(self, rate: float, burst: float, *, clock: Callable[[], float] = time.monotonic,
                 max_keys: int = 10_000) -> None:
        self.rate = rate
        self.burst = burst
        self.max_keys = max_keys
        self._clock = clock
        self._buckets: dict[str, TokenBucket] = {}

    def allow(self, key: str, cost: float = 1.0) -> bool:
        bucket = self._buckets.get(key)
        if bucket is None:
            if len(self._buckets) >= self.max_keys:
                self._forget_some()
            bucket = self._buckets[key] = TokenBucket(self.rate, self.burst, self._clock)
        return bucket.allow(cost)

    def tokens(self, key: str) -> float:
        """What `key` has left now (a key never seen has its whole burst)."""
        bucket = self._buckets.get(key)
        return self.burst if bucket is None else bucket.tokens()

    def forget(self, key: str) -> None:
        self._buckets.pop(key, None)

    def clear(self) -> None:
        self._buckets.clear()

    def __len__(self) -> int:
        return len(self._buckets)

    def _forget_some(self) -> None:
        stale = [k for k, b in self._buckets.items() if b.full()] or list(self._buckets)[: max(1, self.max_keys // 10)]
        for key in stale:
            del self._buckets[key]


def message_bucket() -> TokenBucket:
    return TokenBucket(rate=20.0, burst=40.0)


def chat_bucket() -> TokenBucket:
    return TokenBucket(rate=0.5, burst=5.0)  # 5 messages per 10 s


class AddressCount:
    """How many of something each client address holds at once (open WebSockets): `acquire` refuses beyond
    `limit`. An address is forgotten when it holds nothing, so the table is never larger than what is open."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._held: dict[str, int] = {}

    def acquire(self, address: str) -> bool:
        held = self._held.get(address, 0)
        if held >= self.limit:
            return False
        self._held[address] = held + 1
        return True

    def release(self, address: str) -> None:
        held = self._held.get(address, 0) - 1
        if held > 0:
            self._held[address] = held
        else:
            self._held.pop(address, None)

    def held(self, address: str) -> int:
        return self._held.get(address, 0)
