"""Graceful shutdown (SIGTERM): stop taking joins, tell everyone, let captions finish, close, exit.

`serve_until_signalled` runs the app until SIGTERM or SIGINT, then drains it while its listeners still
answer: `/readyz` says 503 `shutting-down` for the whole drain (a load balancer can tell a drain from a
crash), a new `/ws` gets 503, and a `join` on a socket opened before gets `shutting-down` and a close frame.
aiohttp's own order (run_app) closes the listeners first and drains after, so a drain looked like a crash.

The drain is `GracefulShutdown`, an on_shutdown handler (so an embedding that uses aiohttp's runner still
gets it): every seated client (room and lobby) receives `server-shutdown` with whether and when to reconnect;
in-flight captions get up to `grace` seconds to be decoded and delivered while media is still up; then every
peer connection closes and each WebSocket, joined or not, closes with 1012 (service restart). With aiohttp's
shutdown timeout (1 s, peerwell/server.py) the process exits well within 10 s.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
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
        # Then every socket still open: seated ones, and those that never joined (not cut off at exit).
        sessions += [session for session in self.rooms.sessions if session not in sessions]
        for session in sessions:
            session.left = True
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


class DrainingRunner(web.AppRunner):
    """An AppRunner whose cleanup runs the app's on_shutdown handlers (the drain) before it stops listening."""

    __slots__ = ("_drained",)

    def __init__(self, app: web.Application, **kwargs: object) -> None:
        super().__init__(app, handle_signals=False, **kwargs)  # type: ignore[arg-type]
        self._drained = False

    async def shutdown(self) -> None:
        if not self._drained:  # cleanup() calls this again once the sites are stopped
            self._drained = True
            await self.app.shutdown()

    async def cleanup(self) -> None:
        await self.shutdown()
        await super().cleanup()


async def serve_until_signalled(runner: DrainingRunner, stop: asyncio.Event | None = None) -> None:
    """Wait for SIGTERM or SIGINT (or `stop`), then drain while listening, then stop listening and clean up."""
    loop = asyncio.get_running_loop()
    stop = stop or asyncio.Event()
    signals = (signal.SIGTERM, signal.SIGINT)
    for signum in signals:
        loop.add_signal_handler(signum, stop.set)
    try:
        await stop.wait()
        logger.info("stopping: draining while still answering /readyz with 503")
        await runner.shutdown()
    finally:
        for signum in signals:
            loop.remove_signal_handler(signum)
        await runner.cleanup()
