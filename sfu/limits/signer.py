"""One signer for every token peerwell hands out: HMAC-SHA256 with a key per purpose.

Each purpose ("pw_key", "restart", "failover", "forwarding") gets its own key derived from the root key
(HMAC(root, "peerwell/" + purpose)), so a value signed for one purpose never verifies as another even where
the signed texts look alike. Signatures are URL-safe base64 of the first 16 bytes (128 bits), unpadded.

`RoleToken` is the one layout for the two tokens that give a seat back (restart tickets, failover tickets):
``<kind>.<participant id>.<role letter>.<field>.<signature>``.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from dataclasses import dataclass

_MAC_BYTES = 16
ROLES = {"f": "facilitator", "p": "participant"}


class Signer:
    def __init__(self, root: bytes) -> None:
        self._root = root

    def for_purpose(self, purpose: str) -> Signer:
        return Signer(hmac.new(self._root, b"peerwell/" + purpose.encode(), hashlib.sha256).digest())

    def sign(self, text: str) -> str:
        digest = hmac.new(self._root, text.encode("utf-8", "surrogatepass"), hashlib.sha256).digest()
        return base64.urlsafe_b64encode(digest[:_MAC_BYTES]).decode().rstrip("=")

    def verify(self, signature: str, text: str) -> bool:
        """Constant time; `signature` comes from a client and may be any text."""
        return hmac.compare_digest(signature.encode("utf-8", "surrogatepass"), self.sign(text).encode())


@dataclass(frozen=True)
class RoleToken:
    """A signed seat: who (participant id), with which role, plus one field the issuer chooses (an expiry, a
    nonce). `scope` is signed but not carried: the room (and for failover its placement session)."""

    kind: str
    participant_id: str
    role: str
    field: str

    def body(self) -> str:
        return f"{self.kind}.{self.participant_id}.{self.role[0]}.{self.field}"

    def sign(self, signer: Signer, scope: str) -> str:
        body = self.body()
        return f"{body}.{signer.sign(f'{scope}|{body}')}"

    @staticmethod
    def read(token: str, kind: str, signer: Signer, scope: str) -> RoleToken | None:
        """The token's seat if it is a `kind` token signed for `scope`, else None (never raises)."""
        parts = token.split(".")
        if len(parts) != 5 or parts[0] != kind or parts[2] not in ROLES or not parts[1]:
            return None
        token_ = RoleToken(kind, parts[1], ROLES[parts[2]], parts[3])
        return token_ if signer.verify(parts[4], f"{scope}|{token_.body()}") else None

    @staticmethod
    def signature_of(token: str) -> str:
        return token.rsplit(".", 1)[-1]
