"""Short-lived TURN credentials (the TURN REST API convention that coturn's `use-auth-secret` checks).

username = "<expiry unix time>:<user>", password = base64(HMAC-SHA1(shared secret, username)). The
TURN server recomputes the password from the username with the same secret and refuses the request
once the expiry has passed, so nothing but the secret is shared between peerwell and the relay and a
leaked credential stops working by itself.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
from dataclasses import dataclass, field

from sfu import messages

DEFAULT_TTL = 4 * 3600  # seconds: longer than a group session; coturn checks expiry on every refresh too
SERVER_USER = "peerwell-server"


def rest_credentials(secret: str, user: str, expires_at: int) -> tuple[str, str]:
    """(username, password) for `user`, valid until `expires_at` (unix seconds)."""
    username = f"{expires_at}:{user}"
    digest = hmac.new(secret.encode(), username.encode(), hashlib.sha1).digest()
    return username, base64.b64encode(digest).decode()


@dataclass(frozen=True)
class TurnRelay:
    """A TURN relay that shares `secret` with peerwell (coturn: static-auth-secret)."""

    urls: tuple[str, ...]  # handed to clients, e.g. turn:turn.example.org:3478?transport=udp
    secret: str = field(repr=False)
    ttl: int = DEFAULT_TTL
    # How this server's own ICE agent reaches the relay (None: it offers no relayed candidate of its own).
    server_url: str | None = None

    def __post_init__(self) -> None:
        if not self.urls:
            raise ValueError("a TURN relay needs at least one turn: or turns: URL")
        for url in (*self.urls, *([self.server_url] if self.server_url else [])):
            if not url.startswith(("turn:", "turns:")):
                raise ValueError(f"TURN URL must start with turn: or turns: ({url!r})")
        if not self.secret:
            raise ValueError("the TURN shared secret is empty")
        if not 60 <= self.ttl <= 7 * 86400:
            raise ValueError(f"TURN credential lifetime must be 60 s to 7 days, not {self.ttl} s")

    def ice_server(self, user: str, urls: tuple[str, ...] | None = None, now: float | None = None
                   ) -> messages.IceServer:
        expires_at = int(time.time() if now is None else now) + self.ttl
        username, password = rest_credentials(self.secret, user, expires_at)
        return messages.IceServer(urls=list(urls or self.urls), username=username, credential=password)
