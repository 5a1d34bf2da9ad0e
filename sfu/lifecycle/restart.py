"""Restart tickets: how a member keeps their place (id, role, no second trip through the lobby) across a
server restart, although every seat lives only in the old process's memory.

On SIGTERM each admitted member gets, in `server-shutdown`, a ticket valid for `LIFETIME` seconds:
``r1.<participant id>.<role letter>.<expiry>.<signature>``, the signature an HMAC-SHA256 over the room, id,
role and expiry with the operator's `server.restart_key`. The next process, started with the same key,
accepts it once as `resume` in `join`. Nothing is written to disk; without a key no tickets are issued.
Lobby members get none: a ticket skips the lobby.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
from dataclasses import dataclass, field

LIFETIME = 120.0  # seconds after the shutdown notice: a restart, not a way back in hours later
_ROLES = {"f": "facilitator", "p": "participant"}


@dataclass(frozen=True)
class Ticket:
    participant_id: str
    role: str


@dataclass
class RestartTickets:
    key: str | None = field(default=None, repr=False)
    redeemed: set[str] = field(default_factory=set)  # one use each, in this process

    def _sign(self, room: str, body: str) -> str:
        assert self.key is not None
        mac = hmac.new(self.key.encode(), f"peerwell-restart|{room}|{body}".encode(), hashlib.sha256).digest()
        return base64.urlsafe_b64encode(mac[:16]).decode().rstrip("=")

    def issue(self, room: str, participant_id: str, role: str, now: float | None = None) -> str | None:
        if not self.key or "." in participant_id:
            return None
        expiry = int((time.time() if now is None else now) + LIFETIME)
        body = f"r1.{participant_id}.{role[0]}.{expiry}"
        return f"{body}.{self._sign(room, body)}"

    def redeem(self, token: str, room: str, now: float | None = None) -> Ticket | None:
        """The ticket's place, or None (not a ticket, forged, for another room, expired or used)."""
        if not self.key or not token.startswith("r1."):
            return None
        parts = token.split(".")
        if len(parts) != 5 or parts[2] not in _ROLES or not parts[3].isdigit():
            return None
        body = ".".join(parts[:4])
        if not hmac.compare_digest(parts[4], self._sign(room, body)):
            return None
        if int(parts[3]) < (time.time() if now is None else now) or body in self.redeemed:
            return None
        self.redeemed.add(body)
        return Ticket(participant_id=parts[1], role=_ROLES[parts[2]])
