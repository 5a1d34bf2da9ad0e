"""What a hostile participant does, as tools for tests/ and bench.abuse: offers that are well-formed but
huge, a WebSocket client that stops reading, and a meter for what a bystander still receives meanwhile."""

from __future__ import annotations

import asyncio
import base64
import itertools
import json
import os
import socket
import struct
import time
from dataclasses import dataclass, field

from aiortc import RTCPeerConnection


async def real_offer() -> str:
    """An offer as the headless client makes it: audio, video and the data channel, ICE gathered."""
    pc = RTCPeerConnection()
    try:
        pc.addTransceiver("audio", direction="sendonly")
        pc.addTransceiver("video", direction="sendonly")
        pc.createDataChannel("peerwell")
        await pc.setLocalDescription(await pc.createOffer())
        return pc.localDescription.sdp
    finally:
        await pc.close()


def _sections(sdp: str) -> tuple[str, list[str]]:
    head, *sections = sdp.split("\r\nm=")
    return head + "\r\n", ["m=" + s if s.endswith("\r\n") else "m=" + s + "\r\n" for s in sections]


def with_candidates(sdp: str, count: int) -> str:
    """`count` extra host candidates in the first section (well-formed, unreachable ports)."""
    head, sections = _sections(sdp)
    extra = "".join(f"a=candidate:x{i} 1 udp 2130706431 127.0.0.1 {10000 + i % 50000} typ host\r\n"
                    for i in range(count))
    sections[0] += extra
    return head + "".join(sections)


def with_sections(sdp: str, count: int) -> str:
    """`count` extra audio sections, each bundled, so an unguarded server builds a transceiver for each."""
    head, sections = _sections(sdp)
    audio = next(s for s in sections if s.startswith("m=audio"))
    mid_line = next(line for line in audio.split("\r\n") if line.startswith("a=mid:"))
    clones = [audio.replace(mid_line, f"a=mid:x{i}") for i in range(count)]
    group = next(line for line in head.split("\r\n") if line.startswith("a=group:BUNDLE"))
    head = head.replace(group, group + "".join(f" x{i}" for i in range(count)))
    return head + "".join(sections) + "".join(clones)


def padded(sdp: str, size: int) -> str:
    """The same offer grown to `size` bytes with harmless attribute lines."""
    head, sections = _sections(sdp)
    filler = "a=x-filler:" + "z" * 60 + "\r\n"
    sections[-1] += filler * max(0, (size - len(sdp)) // len(filler) + 1)
    return head + "".join(sections)


@dataclass
class FrameMeter:
    """Arrival times of one publisher's video at a bystander."""

    times: list[float] = field(default_factory=list)

    def frame(self) -> None:
        self.times.append(time.perf_counter())

    def fps_between(self, start: float, end: float) -> float:
        return sum(1 for t in self.times if start <= t < end) / max(end - start, 1e-9)

    def min_fps_ratio(self, start: float, end: float, reference_fps: float, window: float = 1.0,
                      skip: list[tuple[float, float]] | None = None) -> float:
        """The worst `window`-second stretch in [start, end) against `reference_fps`, leaving out windows that
        overlap `skip` (moments the measuring process itself stopped, e.g. to walk the heap)."""
        worst = float("inf")
        at = start
        while at + window <= end + 1e-9:
            if not any(a < at + window and at < b for a, b in skip or []):
                worst = min(worst, self.fps_between(at, at + window) / reference_fps)
            at += window / 2
        return worst if worst != float("inf") else 0.0

    def longest_gap(self, start: float, end: float) -> float:
        inside = [start, *[t for t in self.times if start <= t < end], end]
        return max(b - a for a, b in itertools.pairwise(inside))


class StalledSocket:
    """A WebSocket client that joins and then never reads again, with a small receive buffer so the
    server's writes block soon (a phone whose app froze, or a deliberate slowloris)."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.sock: socket.socket | None = None

    async def open(self) -> None:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # before connect: the window stays small
        sock.setblocking(False)
        loop = asyncio.get_running_loop()
        await loop.sock_connect(sock, ("127.0.0.1", self.port))
        key = base64.b64encode(os.urandom(16)).decode()
        request = (f"GET /ws HTTP/1.1\r\nHost: 127.0.0.1:{self.port}\r\nUpgrade: websocket\r\n"
                   f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n"
                   f"Origin: http://127.0.0.1:{self.port}\r\n\r\n")
        await loop.sock_sendall(sock, request.encode())
        response = b""
        while b"\r\n\r\n" not in response:
            chunk = await loop.sock_recv(sock, 1)
            if not chunk:
                raise ConnectionError("server closed during the handshake")
            response += chunk
        if b" 101 " not in response.split(b"\r\n", 1)[0]:
            raise ConnectionError(response.decode(errors="replace"))
        self.sock = sock

    async def send(self, message: dict) -> None:
        payload = json.dumps(message).encode()
        mask = os.urandom(4)
        header = bytes([0x81])
        if len(payload) < 126:
            header += bytes([0x80 | len(payload)])
        elif len(payload) < 65536:
            header += bytes([0x80 | 126]) + struct.pack("!H", len(payload))
        else:
            header += bytes([0x80 | 127]) + struct.pack("!Q", len(payload))
        masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
        assert self.sock is not None
        await asyncio.get_running_loop().sock_sendall(self.sock, header + mask + masked)

    def closed_by_server(self) -> bool:
        """True once the server has reset or closed the connection (whatever is still unread)."""
        assert self.sock is not None
        try:
            while self.sock.recv(65536):  # what was delivered before the reset, then the reset itself
                pass
            return True
        except BlockingIOError:
            return False
        except OSError:
            return True

    def close(self) -> None:
        if self.sock is not None:
            self.sock.close()
