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
