"""Graceful shutdown (SIGTERM): stop taking joins, tell everyone, let captions finish, close, exit.

Runs as the app's first on_shutdown handler. aiohttp has already closed the listening socket by then, so
no new connection arrives; sockets that are open but not joined get `shutting-down` if they try. Every
seated client (room and lobby) receives `server-shutdown` with whether and when to reconnect; in-flight
captions get up to `grace` seconds to be decoded and delivered while media is still up; then every peer
connection closes and each WebSocket closes with 1012 (service restart). With aiohttp's shutdown timeout
(1 s, peerwell/server.py) the process exits well within 10 s.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from aiohttp import WSCloseCode, web

from sfu import messages

if TYPE_CHECKING:  # the rooms it drains; signaling sits above lifecycle and hands them in
    from sfu.signaling.websocket import Rooms, Seat

logger = logging.getLogger(__name__)

RETRY_AFTER = 3.0  # seconds: a restart with models on disk takes about this long to listen again


@dataclass
class GracefulShutdown:
    rooms: Rooms
    grace: float = 5.0  # seconds in-flight captions get
    retry: bool = True
    # Awaited while media is still up, e.g. the caption service finishing its open segments.
    finish: list[Callable[[], Awaitable[None]]] = field(default_factory=list)
    done: bool = False

    async def __call__(self, app: web.Application | None = None) -> None:
        if self.done:
            return
        self.done = True
        self.rooms.accepting_joins = False
        seats = list(self.rooms.seats.values())
        sessions = [seat.session for seat in seats]
        logger.warning("shutting down: telling %d connected client(s), finishing captions", len(sessions))
        await asyncio.gather(*(seat.session.send(self._notice(seat)) for seat in seats), return_exceptions=True)
        # Sending only queues (sfu/signaling/socket_sender.py): let the notices go out before anything closes.
        await asyncio.gather(*(session.sender.drain(1.0) for session in sessions), return_exceptions=True)
        for finish in self.finish:
            try:
                await asyncio.wait_for(finish(), self.grace)
            except TimeoutError:
                logger.warning("shutdown: captions still decoding after %.1f s were dropped", self.grace)
            except Exception:
                logger.exception("shutdown: finishing captions failed")
        for session in sessions:
            session.left = True  # no reconnect grace timers in a process that is going away
        await self.rooms.close()
        with contextlib.suppress(Exception):
            await asyncio.gather(*(session.ws.close(code=WSCloseCode.SERVICE_RESTART, message=b"server restarting")
                                   for session in sessions), return_exceptions=True)


    def _notice(self, seat: Seat) -> messages.ServerShutdown:
        participant = seat.participant
        admitted = seat.room.participants.get(participant.id) is participant
        ticket = (self.rooms.restart_tickets.issue(seat.room.name, participant.id, participant.role)
                  if admitted and self.retry else None)
        return messages.ServerShutdown(reason="the server is restarting", retry=self.retry,
                                       retry_after=RETRY_AFTER, resume=ticket)


SHUTDOWN_KEY: web.AppKey[GracefulShutdown] = web.AppKey("shutdown", GracefulShutdown)
