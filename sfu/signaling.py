"""WebSocket signaling at /ws: join a room, exchange SDP, leave. See docs/protocol.md."""

from __future__ import annotations

import asyncio
import hmac
import logging
import secrets
from dataclasses import dataclass, field

from aiohttp import WSMsgType, web

from sfu import messages
from sfu.config import ServerConfig
from sfu.participant import NegotiationError, Participant
from sfu.room import Room, RoomObserver

logger = logging.getLogger(__name__)

JOIN_TIMEOUT = 30.0


@dataclass
class Seat:
    """What lets a dropped participant come back: their token and pending removal."""

    participant: Participant
    token: str
    removal: asyncio.TimerHandle | None = None


@dataclass
class Rooms:
    """Every live room and every seat in it; the single owner of that state."""

    config: ServerConfig
    observers: list[RoomObserver] = field(default_factory=list)
    captions_status: messages.CaptionsStatus = field(
        default_factory=lambda: messages.CaptionsStatus(enabled=False, reason="captions are not configured"))
    rooms: dict[str, Room] = field(default_factory=dict)
    seats: dict[str, Seat] = field(default_factory=dict)  # by participant id
    participant_class: type[Participant] = Participant  # benchmarks swap in a transcoding baseline

    def room_for_join(self, name: str) -> Room:
        room = self.rooms.get(name)
        if room is None:
            if not self.config.allow_adhoc_rooms:
                raise JoinRefused("no-such-room", f"there is no room called {name!r}")
            room = self.rooms[name] = Room(name, self.observers)
        if len(room.participants) >= self.config.max_participants:
            raise JoinRefused("room-full", f"room {name!r} is full ({self.config.max_participants} people)")
        return room

    def seat_for_resume(self, room: Room, token: str) -> Seat | None:
        for seat in self.seats.values():
            if seat.participant.room is room and hmac.compare_digest(seat.token, token):
                return seat
        return None

    async def release(self, seat: Seat) -> None:
        if self.seats.get(seat.participant.id) is seat:
            del self.seats[seat.participant.id]
        if seat.removal is not None:
            seat.removal.cancel()
        room = seat.participant.room
        await room.remove(seat.participant)
        if room.empty and self.rooms.get(room.name) is room:
            del self.rooms[room.name]
            room.close()

    async def close(self) -> None:
        for seat in list(self.seats.values()):
            await self.release(seat)


class JoinRefused(Exception):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


class SignalingSession:
    """One WebSocket: at most one participant, from join to leave or disconnect."""

    def __init__(self, rooms: Rooms, ws: web.WebSocketResponse) -> None:
        self.rooms = rooms
        self.ws = ws
        self.seat: Seat | None = None
        self.left = False

    async def send(self, message: messages.Struct) -> None:
        if not self.ws.closed:
            try:
                await self.ws.send_str(messages.encode(message))
            except ConnectionError:
                pass

    async def error(self, code: str, message: str) -> None:
        await self.send(messages.ErrorMessage(code=code, message=message))

    async def run(self) -> None:
        try:
            async for raw in self.ws:
                if raw.type != WSMsgType.TEXT:
                    await self.error("invalid-message", "messages are JSON text frames")
                    continue
                try:
                    message = messages.decode_signal(raw.data)
                except messages.InvalidMessage as exc:
                    await self.error("invalid-message", str(exc))
                    continue
                await self.handle(message)
                if self.left:
                    break
        finally:
            await self.disconnected()

    async def handle(self, message: messages.ClientSignal) -> None:
        if isinstance(message, messages.Join):
            await self.join(message)
            return
        if self.seat is None:
            await self.error("not-joined", "send join first")
            return
        participant = self.seat.participant
        try:
            if isinstance(message, messages.Offer):
                await participant.accept_offer(message.sdp)
            elif isinstance(message, messages.Answer):
                await participant.accept_answer(message.sdp)
            elif isinstance(message, messages.Leave):
                self.left = True
        except NegotiationError as exc:
            await self.error("negotiation-failed", str(exc))

    async def join(self, request: messages.Join) -> None:
        if self.seat is not None:
            await self.error("already-joined", "this connection has already joined a room")
            return
        try:
            room = self.rooms.room_for_join(request.room)
        except JoinRefused as refused:
            await self.error(refused.code, refused.message)
            return
        participant_id = secrets.token_urlsafe(6)
        if request.resume is not None:
            old = self.rooms.seat_for_resume(room, request.resume)
            if old is None:
                await self.error("resume-failed", "that place is no longer held; join again without resume")
                return
            participant_id = old.participant.id
            await self.rooms.release(old)
            room = self.rooms.room_for_join(request.room)
        participant = self.rooms.participant_class(participant_id, request.name.strip() or "Guest", room, self.send,
                                  self.rooms.config.rtc_configuration())
        participant.spoken_language = request.language
        self.seat = Seat(participant, secrets.token_urlsafe(24))
        self.rooms.seats[participant.id] = self.seat
        await self.send(messages.Joined(
            participant_id=participant.id,
            room=room.name,
            resume=self.seat.token,
            ice_servers=list(self.rooms.config.ice_servers),
            participants=[p.info() for p in room.participants.values()],
            captions=self.rooms.captions_status,
        ))
        await room.add(participant)

    async def disconnected(self) -> None:
        seat = self.seat
        if seat is None:
            return
        if self.left or self.rooms.config.reconnect_grace <= 0:
            await self.rooms.release(seat)
            return
        # Keep the place for a while: a phone switching networks comes back with its resume token.
        loop = asyncio.get_running_loop()
        seat.removal = loop.call_later(self.rooms.config.reconnect_grace,
                                       lambda: asyncio.ensure_future(self.rooms.release(seat)))


async def websocket_handler(request: web.Request) -> web.WebSocketResponse:
    ws = web.WebSocketResponse(heartbeat=15.0, max_msg_size=messages.MAX_SIGNALING_BYTES)
    await ws.prepare(request)
    session = SignalingSession(request.app[ROOMS_KEY], ws)
    await session.run()
    return ws


ROOMS_KEY: web.AppKey[Rooms] = web.AppKey("rooms", Rooms)
