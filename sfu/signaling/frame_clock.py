"""A WebSocket frame that takes too long to arrive closes its socket.

aiohttp counts any byte as life (its heartbeat is reset by data), so a client sending a frame one byte every
few seconds held its socket for ever. `FrameClock` sits between the transport and aiohttp's protocol,
reads only the frame headers of what the client sends (opcode, FIN, payload length) and times every frame,
and every message split into fragments, from its first byte to its last. Past the limit the transport is
aborted (a reset: a client that cannot finish a frame cannot take part in a close handshake either).
A frame that arrives whole in one read, the usual case, costs no timer at all.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

_CONTROL = 0x8  # opcodes 8-15 (close, ping, pong) may come between the fragments of a message


class FrameClock(asyncio.Protocol):
    def __init__(self, inner: asyncio.BaseProtocol, limit: float, on_slow: Callable[[], None]) -> None:
        self._inner = inner
        self._limit = limit
        self._on_slow = on_slow
        self._header = bytearray()
        self._header_length = 2
        self._payload_left = 0
        self._in_message = False  # a data frame without FIN came; its continuation has not finished it yet
        self._timer: asyncio.TimerHandle | None = None
        self._finished = False  # a frame (or fragmented message) ended during the current read

    @classmethod
    def install(cls, transport: asyncio.BaseTransport, limit: float, on_slow: Callable[[], None]) -> FrameClock:
        """Put a clock in front of `transport`'s protocol (after the HTTP upgrade: only frames follow)."""
        clock = cls(transport.get_protocol(), limit, on_slow)
        transport.set_protocol(clock)
        return clock

    @property
    def busy(self) -> bool:
        return bool(self._header) or self._payload_left > 0 or self._in_message

    def data_received(self, data: bytes) -> None:
        self._finished = False
        self._read(memoryview(data))
        if self._timer is not None and (self._finished or not self.busy):
            self._timer.cancel()  # what was being timed is complete; a frame begun in this read starts afresh
            self._timer = None
        if self._timer is None and self.busy:
            self._timer = asyncio.get_running_loop().call_later(self._limit, self._expired)
        self._inner.data_received(data)  # type: ignore[attr-defined]

    def _read(self, data: memoryview) -> None:
        while data:
            if self._payload_left:
                taken = min(len(data), self._payload_left)
                self._payload_left -= taken
                data = data[taken:]
                self._finished = self._finished or not self.busy
                continue
            wanted = self._header_length - len(self._header)
            self._header += data[:wanted]
            data = data[wanted:]
            if len(self._header) == 2:  # the first two bytes say how long the rest of the header is
                length7 = self._header[1] & 0x7F
                self._header_length = (2 + {126: 2, 127: 8}.get(length7, 0)
                                       + (4 if self._header[1] & 0x80 else 0))
            if len(self._header) < self._header_length:
                continue
            self._frame_header_done()

    def _frame_header_done(self) -> None:
        header = self._header
        length = header[1] & 0x7F
        if length == 126:
            length = int.from_bytes(header[2:4], "big")
        elif length == 127:
            length = int.from_bytes(header[2:10], "big")
        opcode, fin = header[0] & 0x0F, bool(header[0] & 0x80)
        if opcode < _CONTROL:  # text, binary or continuation: a message ends with its FIN frame
            self._in_message = not fin
        self._payload_left = length
        self._header = bytearray()
        self._header_length = 2
        self._finished = self._finished or not self.busy

    def _expired(self) -> None:
        self._timer = None
        if self.busy:
            self._on_slow()

    def connection_lost(self, exc: Exception | None) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._inner.connection_lost(exc)

    def eof_received(self) -> bool | None:
        return self._inner.eof_received()  # type: ignore[attr-defined,no-any-return]

    def pause_writing(self) -> None:
        self._inner.pause_writing()

    def resume_writing(self) -> None:
        self._inner.resume_writing()
