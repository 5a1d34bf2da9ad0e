"""One WebSocket's outgoing messages: a bounded queue written by the socket's own task.

Room events used to be written to each socket in turn, awaiting each; one client that stopped reading
held everyone else's events back (20 s in a probe). Now sending only queues, and a client that does not
take its messages is disconnected: more than `max_queued` messages waiting, or one write blocked for
`stall_seconds`. Its place is then held for the reconnect grace like any other drop.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import Callable

from aiohttp import web

logger = logging.getLogger(__name__)

MAX_QUEUED = 256  # a room's worst burst (a lobby of 20 coming and going) is far below this
STALL_SECONDS = 10.0


class SocketSender:
    def __init__(self, ws: web.WebSocketResponse, abort: Callable[[], None], *, max_queued: int = MAX_QUEUED,
                 stall_seconds: float = STALL_SECONDS) -> None:
        self.ws = ws
        self._abort = abort
        self.max_queued = max_queued
        self.stall_seconds = stall_seconds
        self._queue: deque[str] = deque()
        self._wakeup = asyncio.Event()
        self._idle = asyncio.Event()
        self._idle.set()
        self.stalled = False
        self._task = asyncio.ensure_future(self._write())

    def send(self, text: str) -> None:
        """Queue `text`; never waits."""
        if self.stalled or self._task.done():
            return
        if len(self._queue) >= self.max_queued:
            self._stall(f"{len(self._queue)} messages unread")
            return
        self._queue.append(text)
        self._idle.clear()
        self._wakeup.set()

    async def _write(self) -> None:
        while True:
            await self._wakeup.wait()
            self._wakeup.clear()
            while self._queue:
                text = self._queue.popleft()
                if self.ws.closed:
                    self._queue.clear()
                    break
                try:
                    async with asyncio.timeout(self.stall_seconds):  # no task per message, unlike wait_for
                        await self.ws.send_str(text)
                except TimeoutError:
                    self._stall(f"a write blocked for {self.stall_seconds:.0f} s")
                    return
                except (ConnectionError, RuntimeError):  # closing under us: the reader side sees it too
                    self._queue.clear()
                    break
            self._idle.set()

    def _stall(self, why: str) -> None:
        if self.stalled:
            return
        self.stalled = True
        logger.warning("disconnecting a client that stopped reading its WebSocket (%s)", why)
        self._queue.clear()
        self._idle.set()
        self._abort()  # reset, not a close handshake: a client that does not read would not answer one

    async def drain(self, timeout: float = 2.0) -> None:
        """Wait (a little) until what is queued has been written, e.g. a `bye` before closing."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._idle.wait(), timeout)

    async def close(self) -> None:
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
