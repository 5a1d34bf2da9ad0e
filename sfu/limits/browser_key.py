"""The `pw_key` cookie: a random browser key, signed with its issue time, that lets a removal stick.

`GET /` sets it (HttpOnly, SameSite=Strict, session cookie). It names no person and is never logged.
The signature lets the server tell, without storing keys, a key it issued and when: after a removal, a
new key (or none) from the removed person's address is refused for the rest of the session, while people
on that address who opened the page before the removal keep joining. docs/protocol.md says what a ban can
and cannot stop.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable

from sfu.limits.signer import Signer

COOKIE = "pw_key"


class BrowserKeys:
    def __init__(self, signer: Signer | None = None, clock: Callable[[], float] = time.time) -> None:
        # Per server process (keys die with it, as bans do) unless a deployment hands in its shared signer.
        self._signer = (signer or Signer(secrets.token_bytes(32))).for_purpose("pw_key")
        self._clock = clock

    def issue(self) -> str:
        body = f"{secrets.token_urlsafe(18)}.{int(self._clock())}"
        return f"{body}.{self._signer.sign(body)}"

    def issued_at(self, key: str | None) -> float | None:
        """When this server issued `key`, or None for a missing, forged or foreign key."""
        if not key or len(key) > 128 or not key.isascii() or key.count(".") != 2:  # compare_digest wants ASCII
            return None
        body, mac = key.rsplit(".", 1)
        if not self._signer.verify(mac, body):
            return None
        try:
            return float(body.split(".", 1)[1])
        except ValueError:
            return None
