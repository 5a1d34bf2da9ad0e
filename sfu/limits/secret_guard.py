"""Facilitator-secret guessing: bad secrets are counted per client address and per room, and each count
locks out further attempts once it runs out (`secret-locked`), before any comparison is made.

Secrets are 24 random bytes, so guessing is hopeless anyway; this keeps it visibly so and cheap. The room
count also means someone spraying from many addresses locks the room's facilitator joins for a while,
which is the price of stopping them: the real facilitator waits out ROOM_REFILL_SECONDS at worst.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from sfu.limits.ratelimit import KeyedBuckets

ADDRESS_ATTEMPTS = 5  # bad secrets an address may send before it is locked out
ADDRESS_REFILL_SECONDS = 180.0  # one more attempt per this long
ROOM_ATTEMPTS = 20  # bad secrets for one room, from anyone
ROOM_REFILL_SECONDS = 30.0
MAX_TRACKED = 10_000


class SecretGuard:
    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.by_address = KeyedBuckets(1.0 / ADDRESS_REFILL_SECONDS, ADDRESS_ATTEMPTS, clock=clock,
                                       max_keys=MAX_TRACKED)
        self.by_room = KeyedBuckets(1.0 / ROOM_REFILL_SECONDS, ROOM_ATTEMPTS, clock=clock, max_keys=MAX_TRACKED)

    def locked_for(self, address: str, room: str) -> float | None:
        """Seconds until `address` may try a secret for `room` again, or None when it may now."""
        waits = [(1.0 - buckets.tokens(key)) / buckets.rate
                 for buckets, key in ((self.by_address, address), (self.by_room, room)) if buckets.tokens(key) < 1.0]
        return max(waits) if waits else None

    def failed(self, address: str, room: str) -> None:
        self.by_address.allow(address)
        self.by_room.allow(room)
