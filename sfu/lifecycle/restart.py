"""Restart tickets: how a member keeps their place (id, role, no second trip through the lobby) across a
server restart, although every seat lives only in the old process's memory.

On SIGTERM each admitted member gets, in `server-shutdown`, a ticket valid for `LIFETIME` seconds:
``r1.<participant id>.<role letter>.<expiry>.<signature>`` (sfu/limits/signer.py's RoleToken, signed for the
room with the "restart" key derived from the operator's `server.restart_key`). The next process, started with
the same key, accepts it once as `resume` in `join`. Nothing is written to disk; without a key no tickets are issued.
Lobby members get none: a ticket skips the lobby.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from sfu.limits.signer import RoleToken, Signer

LIFETIME = 120.0  # seconds after the shutdown notice: a restart, not a way back in hours later
KIND = "r1"


@dataclass(frozen=True)
class Ticket:
    participant_id: str
    role: str


@dataclass
class RestartTickets:
    key: str | None = field(default=None, repr=False)
    redeemed: set[str] = field(default_factory=set)  # one use each, in this process

    def __post_init__(self) -> None:
        self._signer = Signer(self.key.encode()).for_purpose("restart") if self.key else None

    def issue(self, room: str, participant_id: str, role: str, now: float | None = None) -> str | None:
        if self._signer is None or "." in participant_id:
            return None
        expiry = int((time.time() if now is None else now) + LIFETIME)
        return RoleToken(KIND, participant_id, role, str(expiry)).sign(self._signer, room)

    def redeem(self, token: str, room: str, now: float | None = None) -> Ticket | None:
        """The ticket's place, or None (not a ticket, forged, for another room, expired or used)."""
        if self._signer is None:
            return None
        ticket = RoleToken.read(token, KIND, self._signer, room)
        if ticket is None or not ticket.field.isdigit():
            return None
        if int(ticket.field) < (time.time() if now is None else now) or ticket.body() in self.redeemed:
            return None
        self.redeemed.add(ticket.body())
        return Ticket(participant_id=ticket.participant_id, role=ticket.role)
