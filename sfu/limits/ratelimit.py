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


def message_bucket() -> TokenBucket:
    return TokenBucket(rate=20.0, burst=40.0)


def chat_bucket() -> TokenBucket:
    return TokenBucket(rate=0.5, burst=5.0)  # 5 messages per 10 s
