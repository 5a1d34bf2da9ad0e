"""The end-to-end encrypted frame and envelope formats of web/static/e2ee/ in Python, for tests that play the
server's part (a tap on the forwarding path) and check what it can and cannot read. docs/architecture.md,
"End-to-end encrypted rooms", is the specification; this is a second implementation of it."""

from __future__ import annotations

import base64
import json
import struct

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

VERSION = "peerwell-e2ee-v1"
HEADER = 13
TAG = 16


def unb64url(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def hkdf(ikm: bytes, salt: bytes, info: str, length: int = 32) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=length, salt=salt or None, info=info.encode()).derive(ikm)


def first_epoch_secret(room_secret: bytes, room: str) -> bytes:
    return hkdf(room_secret, f"{VERSION}|{room}".encode(), f"{VERSION} epoch 0")


def media_key(epoch_secret: bytes, participant_id: str, source: str) -> tuple[bytes, bytes]:
    raw = hkdf(epoch_secret, b"", f"{VERSION} media|{participant_id}|{source}", 44)
    return raw[:32], raw[32:]


def clear_bytes(kind: str, keyframe: bool) -> int:
    return 1 if kind == "audio" else 10 if keyframe else 3


def frame_epoch(data: bytes, clear: int) -> int | None:
    if len(data) < clear + HEADER + TAG or data[clear] != 1:
        return None
    return struct.unpack_from(">I", data, clear + 1)[0]


def open_frame(data: bytes, clear: int, epoch_secret: bytes, participant_id: str, source: str) -> bytes:
    """The plain encoded frame; raises (cryptography.exceptions.InvalidTag) with the wrong key."""
    if len(data) < clear + HEADER + TAG or data[clear] != 1:
        raise ValueError("not a sealed frame")
    counter = struct.unpack_from(">Q", data, clear + 5)[0]
    key, salt = media_key(epoch_secret, participant_id, source)
    nonce = bytes(a ^ b for a, b in zip(salt, b"\0\0\0\0" + counter.to_bytes(8, "big"), strict=True))
    plain = AESGCM(key).decrypt(nonce, data[clear + HEADER:], data[:clear + HEADER])
    return data[:clear] + plain


def envelope_epoch(payload: str) -> int:
    return struct.unpack_from(">I", unb64url(payload), 1)[0]


def open_envelope(payload: str, epoch_secret: bytes, kind: str) -> dict:
    """A sealed caption or chat line (data-channel envelope); raises with the wrong key."""
    raw = unb64url(payload)
    key = hkdf(epoch_secret, b"", f"{VERSION} data")
    return json.loads(AESGCM(key).decrypt(raw[5:17], raw[17:], kind.encode()))
