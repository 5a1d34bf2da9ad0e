"""Facilitator-secret guessing: bad secrets are counted per client address and per room, and each count
locks out further attempts once it runs out (`secret-locked`), before any comparison is made.

Secrets are 24 random bytes, so guessing is hopeless anyway; this keeps it visibly so and cheap. The room
count also means someone spraying from many addresses locks the room's facilitator joins for a while,
which is the price of stopping them: the real facilitator waits out ROOM_REFILL_SECONDS at worst.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

from sfu.limits.ratelimit import TokenBucket

ADDRESS_ATTEMPTS = 5  # bad secrets an address may send before it is locked out
ADDRESS_REFILL_SECONDS = 180.0  # one more attempt per this long
ROOM_ATTEMPTS = 20  # bad secrets for one room, from anyone
ROOM_REFILL_SECONDS = 30.0
MAX_TRACKED = 10_000


@dataclass
class SecretGuard:
    clock: Callable[[], float] = time.monotonic
    by_address: dict[str, TokenBucket] = field(default_factory=dict)
    by_room: dict[str, TokenBucket] = field(default_factory=dict)

    def _bucket(self, table: dict[str, TokenBucket], key: str, attempts: int, refill: float) -> TokenBucket:
        bucket = table.get(key)
        if bucket is None:
            if len(table) >= MAX_TRACKED:
                for stale in [k for k, b in table.items() if b.full()] or list(table)[: MAX_TRACKED // 10]:
                    del table[stale]
            bucket = table[key] = TokenBucket(1.0 / refill, attempts, self.clock)
        return bucket

    def locked_for(self, address: str, room: str) -> float | None:
        """Seconds until `address` may try a secret for `room` again, or None when it may now."""
        waits = []
        for table, key, refill in ((self.by_address, address, ADDRESS_REFILL_SECONDS),
                                   (self.by_room, room, ROOM_REFILL_SECONDS)):
            bucket = table.get(key)
            if bucket is not None and bucket.tokens() < 1.0:
                waits.append((1.0 - bucket.tokens()) * refill)
        return max(waits) if waits else None

    def failed(self, address: str, room: str) -> None:
        self._bucket(self.by_address, address, ADDRESS_ATTEMPTS, ADDRESS_REFILL_SECONDS).allow()
        self._bucket(self.by_room, room, ROOM_ATTEMPTS, ROOM_REFILL_SECONDS).allow()
