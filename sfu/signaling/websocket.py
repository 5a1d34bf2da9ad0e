"""WebSocket signaling at /ws: join (agreement, role, lobby), SDP exchange, admission, leave.

See docs/protocol.md. `Rooms` is the single owner of which rooms exist and who holds a seat in them.
"""

from __future__ import annotations

import asyncio
import functools
import hmac
import logging
import math
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from aiohttp import WSCloseCode, WSMsgType, web

from sfu import messages
from sfu.config import ServerConfig
from sfu.lifecycle.placement import Placement, PlacementUnavailable, forward
from sfu.lifecycle.restart import RestartTickets, Ticket
from sfu.limits import offer_limits
from sfu.limits.browser_key import COOKIE as BROWSER_KEY_COOKIE
from sfu.limits.browser_key import BrowserKeys
from sfu.limits.proxies import TrustedProxies
from sfu.limits.ratelimit import AddressCount, message_bucket
from sfu.limits.secret_guard import SecretGuard
from sfu.media.media_session import SessionEvents
from sfu.media.peer_session import NegotiationError, PeerSession
from sfu.room.control import RoomControl
from sfu.room.participant import Participant
from sfu.room.room import Room, RoomObserver
from sfu.signaling.frame_clock import FrameClock
from sfu.signaling.socket_sender import SocketSender

if TYPE_CHECKING:
    from safety.detector import CrisisDetector
    from sfu.room.groups import Group

logger = logging.getLogger(__name__)
_closing_sockets: set[asyncio.Future[bool]] = set()  # old sockets closed by a resume, kept until closed
FORWARD_WAIT = 8.0  # seconds a join waits for a dead node's rooms to be placed again


def secrets_match(given: str | None, expected: str) -> bool:
    return given is not None and hmac.compare_digest(given.encode(), expected.encode())


def group_info(group: Group) -> messages.GroupInfo:
    return messages.GroupInfo(
        slug=group.slug, name=group.name, topic=group.topic, description=group.description,
        schedule=group.schedule, language=group.language, lobby=group.lobby,
        max_participants=group.max_participants, agreement=group.agreement, e2ee=group.e2ee)


@dataclass
class Seat:
    """One person's place in a room: who they are, their media connection, their socket and resume token."""

    participant: Participant
    room: Room
    peer: PeerSession
    token: str
    session: SignalingSession
    removal: asyncio.TimerHandle | None = None


@dataclass
class Rooms:
    """Every live room and every seat in it."""

    config: ServerConfig
    observers: list[RoomObserver] = field(default_factory=list)
    detector: CrisisDetector | None = None
    group_detectors: dict[str, CrisisDetector] = field(default_factory=dict)  # by slug: groups' own phrases
    captions_status: messages.CaptionsStatus = field(
        default_factory=lambda: messages.CaptionsStatus(enabled=False, reason="captions are not configured"))
    rooms: dict[str, Room] = field(default_factory=dict)
    seats: dict[str, Seat] = field(default_factory=dict)  # by participant id
    session_class: type[PeerSession] = PeerSession  # benchmarks swap in a transcoding baseline
    public_url: str = ""
    accepting_joins: bool = True  # False once the server is shutting down (sfu/lifecycle/shutdown.py)
    placement: Placement | None = None  # several nodes (peerwell/cluster.py): rooms may live on another node
    restart_tickets: RestartTickets = field(init=False)  # places kept across a restart (sfu/lifecycle/restart.py)
    sessions: set[SignalingSession] = field(default_factory=set)  # every open socket, joined or not
    adhoc_openers: dict[str, str] = field(default_factory=dict)  # ad-hoc room -> the address that opened it

    def __post_init__(self) -> None:
        self.control = RoomControl(self.kick, self.end_session)
        self.restart_tickets = RestartTickets(self.config.restart_key)
        self.offer_rate = offer_limits.address_rate(self.config.offers_per_minute)
        self.join_rate = offer_limits.address_rate(self.config.joins_per_minute)
        self.sockets = AddressCount(self.config.sockets_per_address)  # open sockets per client address
        self.proxies = TrustedProxies(self.config.trusted_proxies, self.config.proxy_header)
        self.secret_guard = SecretGuard()
        self.browser_keys = BrowserKeys()

    def group_for(self, slug: str) -> Group:
        groups = self.config.groups
        group = groups.get(slug)
        if group is not None:
            return group
        if not groups.server.allow_adhoc_rooms:
            raise JoinRefused("no-such-room", f"there is no group called {slug!r}")
        return groups.adhoc_group(slug)

    def room_for_join(self, slug: str) -> Room:
        room = self.rooms.get(slug)
        if room is None:
            group = self.group_for(slug)
            room = Room(slug, group, self.observers, self.group_detectors.get(slug, self.detector),
                        self.config.groups.server.crisis_resources,
                        share_timer_min_seconds=self.config.share_timer_min_seconds)
            room.seating = self  # breakout rooms move people through this object's seats
            self.rooms[slug] = room
            if group.adhoc:
                logger.warning("ad-hoc room %r opened; facilitator link: %s/#room=%s&secret=%s",
                               slug, self.public_url, slug, group.facilitator_secret,
                               extra={"event": "facilitator-link", "room": slug})
        return room

    def may_open_adhoc(self, slug: str, address: str) -> bool:
        """Whether `address` may open ad-hoc room `slug` now: it has fewer than the cap open (rooms it opened
        that have not closed; counted from the live rooms, so a closed room needs no bookkeeping)."""
        if self.config.groups.get(slug) is not None or not self.config.groups.server.allow_adhoc_rooms:
            return True  # a configured group, or a name that is refused as no-such-room anyway
        self.adhoc_openers = {s: a for s, a in self.adhoc_openers.items() if s in self.rooms}
        return sum(1 for a in self.adhoc_openers.values() if a == address) < self.config.adhoc_rooms_per_address

    def seat_for_resume(self, room: Room, token: str) -> Seat | None:
        for seat in self.seats.values():
            if seat.room.main is room and secrets_match(token, seat.token):  # in the room or one of its breakouts
                return seat
        return None

    async def release(self, seat: Seat, *, resuming: bool = False) -> None:
        if self.seats.get(seat.participant.id) is seat:
            del self.seats[seat.participant.id]
            if self.placement is not None:  # a place given up cannot come back through a failover
                self.placement.revoke(seat.token, seat.room.main.name)
        if seat.removal is not None:
            seat.removal.cancel()
        await seat.room.remove(seat.participant, resuming=resuming)
        room = seat.room.main  # leaving a breakout: the session ends when the whole group is empty
        if room.empty and self.rooms.get(room.name) is room:
            del self.rooms[room.name]
            room.close()

    def forget_if_empty(self, slug: str) -> None:
        room = self.rooms.get(slug)
        if room is not None and room.empty:
            del self.rooms[slug]
            room.close()

    def banned(self, room: Room, browser_key: str | None, address: str) -> bool:
        """A removal sticks to the removed browser's key, and to keys issued (or no key) at its address after it."""
        if browser_key is not None and browser_key in room.removed_keys:
            return True
        removed_at = room.removed_addresses.get(address)
        if removed_at is None:
            return False
        issued = self.browser_keys.issued_at(browser_key)
        return issued is None or issued >= math.floor(removed_at)

    async def kick(self, room: Room, participant: Participant, reason: str) -> None:
        """Say goodbye, close their connection and free the seat at once (no reconnect grace)."""
        seat = self.seats.get(participant.id)
        if reason == "removed" and seat is not None and seat.session.address:
            room.removed_addresses[seat.session.address] = time.time()
        if seat is None or seat.participant is not participant:
            await room.remove(participant)
            return
        await seat.session.send(messages.Bye(reason=reason))
        seat.session.left = True
        await self.release(seat)
        await seat.session.sender.drain()
        await seat.session.ws.close()

    async def end_session(self, room: Room) -> None:
        room.ended = True
        for seat in [s for s in self.seats.values() if s.room.main is room]:
            await self.kick(seat.room, seat.participant, "ended")
        if self.rooms.get(room.name) is room:
            del self.rooms[room.name]
            room.close()

    async def close(self) -> None:
        for seat in list(self.seats.values()):
            await self.release(seat)

    async def hand_over(self, slug: str) -> None:
        """Several nodes: another node holds this room now (this one was taken for dead while it could not
        beat). The copy here ends and its members are sent there as after a node failure (close code 1012;
        their places are not given up, so their failover tickets work on the room's node)."""
        room = self.rooms.get(slug)
        if room is None:
            return
        seats = [seat for seat in self.seats.values() if seat.room.main is room]
        for seat in seats:
            del self.seats[seat.participant.id]  # not release(): that would revoke their tickets
            seat.session.left = True
            if seat.removal is not None:
                seat.removal.cancel()
            await seat.room.remove(seat.participant)
        if self.rooms.get(slug) is room:
            del self.rooms[slug]
            room.close()
        await asyncio.gather(*(seat.session.ws.close(code=WSCloseCode.SERVICE_RESTART, message=b"room moved")
                               for seat in seats), return_exceptions=True)

    # --- breakout rooms (sfu/room/breakouts.py): the Seating they move people through -------------

    @property
    def breakout_notice_seconds(self) -> float:
        return self.config.breakout_notice_seconds

    async def move(self, participant: Participant, source: Room, target: Room) -> None:
        """Move someone between rooms of one group on the connection they have: the seat (so resume, removal
        and leaving find them) and their connection's events follow; the server renegotiates the forwarded
        tracks, and their client swaps the room's people (`moved`) and its history (`room-entered`)."""
        media = source.presence.media_of(participant.id)
        await source.detach(participant)
        seat = self.seats.get(participant.id)
        if seat is not None and seat.participant is participant:
            seat.room = target
        participant.media.events = seat_events(self.control, target, participant)
        await participant.send_signal(messages.Moved(room=target.breakout_index, name=target.title,
                                                     participants=target.participant_list()))
        await target.add(participant, moved=True)
        if media is not None:  # what they said about their own microphone and camera holds in the new room
            target.set_media_state(participant, media.microphone, media.camera)
        if participant.media.ready:  # not ready yet: its first answer wires it into `target` (events above)
            target.media_ready(participant)


def seat_events(control: RoomControl, room: Room, participant: Participant) -> SessionEvents:
    """What a person's media connection reports goes to their room (and requests to the room's control)."""
    return SessionEvents(ready=lambda: room.media_ready(participant),
                         ended=lambda: room.media_ended(participant),
                         message=lambda raw: control.handle_raw(room, participant, raw))


class JoinRefused(Exception):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


class SignalingSession:
    """One WebSocket: at most one participant, from join to leave or disconnect."""

    def __init__(self, rooms: Rooms, ws: web.WebSocketResponse, browser_key: str | None,
                 address: str = "", abort: Callable[[], None] = lambda: None, forwarded: bool = False) -> None:
        self.rooms = rooms
        self.forwarded = forwarded  # another node forwarded this socket: it is never forwarded again
        self.join_counted = False  # this join was counted against the address's limit already
        self.ws = ws
        self.sender = SocketSender(ws, abort)  # a client that stops reading holds up only itself
        self.address = address  # the client's IP address: offer and secret limits count per address
        self.browser_key = browser_key
        self.seat: Seat | None = None
        self.left = False
        self.limit = message_bucket()
        self.close_code: tuple[int, bytes] | None = None  # the close frame this socket ends with, if not 1000
        self._join_timer: asyncio.TimerHandle | None = None

    async def send(self, message: messages.Struct) -> None:
        """Queues the message for this socket's writer; never waits for the client."""
        if not self.ws.closed:
            self.sender.send(messages.encode(message))

    async def error(self, code: str, message: str) -> None:
        await self.send(messages.ErrorMessage(code=code, message=message))

    def _await_join(self) -> None:
        """(Re)start the clock for `join`: a socket that holds no seat must try one within `join_timeout`."""
        self._cancel_join_timer()
        if self.seat is None and not self.left:
            self._join_timer = asyncio.get_running_loop().call_later(self.rooms.config.join_timeout,
                                                                     self._join_timed_out)

    def _cancel_join_timer(self) -> None:
        if self._join_timer is not None:
            self._join_timer.cancel()
            self._join_timer = None

    def _join_timed_out(self) -> None:
        self._join_timer = None
        if self.seat is None and not self.left:  # idle sockets must not pile up (each holds a descriptor)
            self.close_soon(WSCloseCode.POLICY_VIOLATION, b"no join in time")

    def close_soon(self, code: int, reason: bytes) -> None:
        """Close with a close frame from outside the read loop (which then ends)."""
        self.left = True
        task = asyncio.ensure_future(self.ws.close(code=code, message=reason))
        _closing_sockets.add(task)
        task.add_done_callback(_closing_sockets.discard)

    async def run(self) -> None:
        self._await_join()
        try:
            async for raw in self.ws:
                if raw.type != WSMsgType.TEXT:
                    await self.error("invalid-message", "messages are JSON text frames")
                    continue
                if not self.limit.allow():
                    await self.error("rate-limited", "too many messages; slow down")
                    continue
                try:
                    message = messages.decode_signal(raw.data)
                except messages.InvalidMessage as exc:
                    await self.error("invalid-message", str(exc))
                    continue
                if isinstance(message, messages.Join):
                    self._cancel_join_timer()
                try:
                    if isinstance(message, messages.Join) and await self.forwarded_elsewhere(message, raw.data):
                        if self.left:  # piped to the room's node until the socket closed
                            break
                        continue  # refused (`unavailable`): the socket stays open, as after any refused join
                    await self.handle(message)
                except Exception as exc:  # a bug must cost this request, not the socket or the seat
                    logger.error("signaling %s failed: %s", type(message).__name__, type(exc).__name__)
                    await self.error("server-error", "the server could not handle that request")
                if self.left:
                    break
                if isinstance(message, messages.Join):
                    self._await_join()  # refused: another try within the timeout, or the socket goes
        finally:
            self._cancel_join_timer()
            await self.disconnected()
            await self.sender.drain()  # the last replies (an error, a bye) still go out
            await self.sender.close()
            if self.close_code is not None:
                await self.ws.close(code=self.close_code[0], message=self.close_code[1])

    async def forwarded_elsewhere(self, request: messages.Join, raw: str) -> bool:
        """Several nodes: if the room lives on another node, this socket is piped there until it closes
        (`self.left` is then set). True if the join was dealt with here: forwarded, or refused."""
        placement = self.rooms.placement
        if (placement is None or self.seat is not None or request.room in self.rooms.rooms
                or not self.rooms.accepting_joins):
            return False  # handled here: a room already here needs no lookup (and goes on if Redis is down)
        if not self.rooms.join_rate.allow(self.address):  # before any lookup: joins must not flood Redis
            await self.error("rate-limited", "too many joins from your address; wait a minute")
            return True
        self.join_counted = True  # if the room turns out to be here, handle() does not count this join again
        loop = asyncio.get_running_loop()
        deadline = loop.time() + FORWARD_WAIT
        while True:
            try:
                url = await placement.route(request.room)
            except PlacementUnavailable:
                await self.error("unavailable", "rooms cannot be found or opened right now; try again in a minute")
                return True
            if url is None:
                return False
            if self.forwarded:  # placement moved between two nodes' lookups: the client simply retries
                await self.error("unavailable", "the room is moving to another server; try again in a moment")
                return True
            headers = placement.forwarding_headers(self.address, self.browser_key)
            unreachable = functools.partial(placement.node_unreachable, url)
            if await forward(self.ws, self.sender, raw, url, headers, unreachable):
                self.left = True
                return True
            if loop.time() > deadline:  # its node is gone and nobody placed the room again in time
                await self.error("unavailable", "the room's server is not answering; try again in a moment")
                return True
            await asyncio.sleep(0.5)  # a dead node's lease runs out within seconds; then the room is placed again

    async def handle(self, message: messages.ClientSignal) -> None:
        if isinstance(message, messages.Join):
            counted, self.join_counted = self.join_counted, False
            if not counted and not self.rooms.join_rate.allow(self.address):
                await self.error("rate-limited", "too many joins from your address; wait a minute")
                return
            try:
                await self.join(message)
            except JoinRefused as refused:
                self.rooms.forget_if_empty(message.room)  # a refused join must not leave a room behind
                await self.error(refused.code, refused.message)
                if refused.code == "shutting-down":  # nothing more can happen here: close as the seated do
                    self.close_code = (WSCloseCode.SERVICE_RESTART, b"server restarting")
                    self.left = True
            return
        if self.seat is None:
            await self.error("not-joined", "send join first")
            return
        seat = self.seat
        participant, room = seat.participant, seat.room
        try:
            if isinstance(message, messages.Offer):
                if participant.id in room.lobby:
                    await self.error("in-lobby", "wait until the facilitator lets you in")
                    return
                if not self.rooms.offer_rate.allow(self.address):
                    await self.error("rate-limited", "too many offers from your address; wait a minute")
                    return
                offer_limits.check_offer(message.sdp)
                await seat.peer.accept_offer(message.sdp)
            elif isinstance(message, messages.Answer):
                local = seat.peer.pc.localDescription
                if local is not None:
                    offer_limits.check_answer(message.sdp, offer_limits.section_count(local.sdp))
                await seat.peer.accept_answer(message.sdp)
            elif isinstance(message, messages.Leave):
                self.left = True
            elif isinstance(message, messages.Admit | messages.Deny):
                await self.admission(room, participant, message)
        except (NegotiationError, offer_limits.SdpRefused) as exc:
            await self.error("negotiation-failed", str(exc))

    async def admission(self, room: Room, facilitator: Participant, message: messages.Admit | messages.Deny) -> None:
        room = room.main  # the lobby is the main room's; a facilitator in a breakout admits into the main room
        if facilitator.role != "facilitator" or room.locate(facilitator.id) is None:
            await self.error("not-allowed", "only the facilitator can admit or deny people")
            return
        waiting = room.lobby.get(message.participant_id)
        if waiting is None:
            await self.error("no-such-participant", "nobody with that id is waiting")
            return
        if isinstance(message, messages.Deny):
            await self.rooms.kick(room, waiting, "denied")
            return
        refusal = room.seat_refusal(waiting.role)
        if refusal is not None:
            code, text = refusal
            await self.error(code, f"{text}; they keep waiting")
            return
        await room.add(waiting)
        others = [p for p in room.participant_list() if p.id != waiting.id]
        seat = self.rooms.seats.get(waiting.id)
        token = None
        if self.rooms.placement is not None and seat is not None and seat.participant is waiting:
            # Their lobby token carried no failover ticket (it would have skipped the lobby); now it may.
            ticket = self.rooms.placement.failover_ticket(room.name, waiting.id, waiting.role)
            if ticket is not None:
                token = seat.token = secrets.token_urlsafe(24) + ticket
        await waiting.send_signal(messages.Admitted(participants=others, resume=token))

    async def join(self, request: messages.Join) -> None:
        if self.seat is not None:
            raise JoinRefused("already-joined", "this connection has already joined a room")
        if not self.rooms.accepting_joins:
            raise JoinRefused("shutting-down", "the server is shutting down; join again in a moment")
        if not request.accept_agreement:
            raise JoinRefused("agreement-required", "read and accept the group agreement and privacy notice first")
        name = " ".join(request.name.split())
        if not name or not name.isprintable():
            raise JoinRefused("invalid-message", "choose a name made of visible characters")
        opens = request.room not in self.rooms.rooms
        if opens and not self.rooms.may_open_adhoc(request.room, self.address):
            raise JoinRefused("rate-limited", f"your address has {self.rooms.config.adhoc_rooms_per_address} "
                                              "rooms open already; join one of them or close one first")
        room = self.rooms.room_for_join(request.room)
        if opens and room.group is not None and room.group.adhoc:
            self.rooms.adhoc_openers[room.name] = self.address
        assert room.group is not None
        role = "participant"
        if request.secret is not None:
            wait = self.rooms.secret_guard.locked_for(self.address, room.name)
            if wait is not None:
                raise JoinRefused("secret-locked", "too many wrong facilitator secrets; try again in "
                                                   f"{math.ceil(wait)} s")
            if not secrets_match(request.secret, room.group.facilitator_secret):
                self.rooms.secret_guard.failed(self.address, room.name)
                raise JoinRefused("bad-secret", "that facilitator secret is not right for this group")
            role = "facilitator"
        if role != "facilitator" and self.rooms.banned(room, self.browser_key, self.address):
            raise JoinRefused("removed", "the facilitator removed you from this session")

        resumed: Seat | None = None
        ticket: Ticket | None = None  # a place held across a server restart (sfu/lifecycle/restart.py)
        if request.resume is not None:
            resumed = self.rooms.seat_for_resume(room, request.resume)
            if resumed is None:
                ticket = self.rooms.restart_tickets.redeem(request.resume, room.name)
                if ticket is None and self.rooms.placement is not None:  # the room's previous node died
                    try:
                        ticket = await self.rooms.placement.redeem_failover(request.resume, room.name)
                    except PlacementUnavailable:  # not resume-failed: the place may still be theirs
                        raise JoinRefused("unavailable", "your place cannot be checked right now; try again "
                                                         "in a moment") from None
                if ticket is not None and ticket.participant_id in self.rooms.seats:
                    ticket = None
            if (resumed is None and ticket is None) or (resumed and resumed.participant.id in room.removed_ids):
                raise JoinRefused("resume-failed", "that place is no longer held; join again without resume")
        else:
            if role != "facilitator" and room.locked:
                raise JoinRefused("room-locked", "the facilitator has locked this room")
            refusal = room.seat_refusal(role, into_lobby=room.lobby_enabled)
            if refusal is not None:
                raise JoinRefused(*refusal)

        participant_id = secrets.token_urlsafe(6)
        if ticket is not None:
            participant_id, role = ticket.participant_id, ticket.role
        previous: Participant | None = None
        hand_at: int | None = None
        if resumed is not None:
            previous = resumed.participant
            participant_id = previous.id
            held = resumed.room  # the main room, or the breakout they were in
            hand_at = held.hands.index(previous.id) if previous.id in held.hands else None
            role = previous.role
            await self.rooms.release(resumed, resuming=True)
            room = self.rooms.room_for_join(request.room).home_for(held)
            if resumed.session is not self:
                resumed.session.replaced()
        peer = self.rooms.session_class(participant_id, self.send, self.rooms.config.rtc_configuration())
        participant = Participant(participant_id, name, peer, self.send, role=role)
        participant.spoken_language = request.language
        participant.browser_key = self.browser_key
        if previous is not None:  # moderation and preferences survive a reconnect
            participant.carry_over(previous)
        peer.events = seat_events(self.rooms.control, room, participant)
        in_lobby = room.lobby_enabled and role != "facilitator" and previous is None and ticket is None
        token = secrets.token_urlsafe(24)
        if self.rooms.placement is not None and not in_lobby:  # a failover ticket skips the lobby: members only
            token += self.rooms.placement.failover_ticket(room.main.name, participant.id, role) or ""
        self.seat = Seat(participant, room, peer, token, self)
        self.rooms.seats[participant.id] = self.seat
        await self.send(messages.Joined(
            participant_id=participant.id,
            room=room.main.name,
            resume=self.seat.token,
            role=role,
            ice_servers=self.rooms.config.client_ice_servers(participant.id),
            participants=[] if in_lobby else room.participant_list(),
            captions=self.rooms.captions_status,
            group=group_info(room.group),
        ))
        if room.parent is not None:  # back in their breakout: their client learns which, as after a move
            await self.send(messages.Moved(room=room.breakout_index, name=room.title,
                                           participants=room.participant_list()))
        if in_lobby:
            await room.wait_in_lobby(participant)
        else:
            await room.add(participant)
            if hand_at is not None:  # a resumed place keeps its turn in the hand queue
                room.restore_hand(participant.id, hand_at)

    def replaced(self) -> None:
        """A resume took this socket's place: it is closed (1000, "resumed"), and nothing more acts on it."""
        self.seat = None
        self.left = True
        task = asyncio.ensure_future(self.ws.close(message=b"resumed"))
        _closing_sockets.add(task)
        task.add_done_callback(_closing_sockets.discard)

    async def disconnected(self) -> None:
        seat = self.seat
        if seat is None or self.rooms.seats.get(seat.participant.id) is not seat:
            return
        if self.left or self.rooms.config.reconnect_grace <= 0 or seat.participant.id in seat.room.lobby:
            await self.rooms.release(seat)
            return
        # Keep the place for a while: a phone switching networks comes back with its resume token.
        loop = asyncio.get_running_loop()
        seat.removal = loop.call_later(self.rooms.config.reconnect_grace,
                                       lambda: asyncio.ensure_future(self.rooms.release(seat)))


def origin_allowed(request: web.Request, allowed: tuple[str, ...]) -> bool:
    """A browser page from another site must not drive a visitor's browser into a room. Browsers always
    send Origin on a WebSocket; other clients may omit it (and could forge it, so it is no credential)."""
    origin = request.headers.get("Origin")
    if origin is None or origin in allowed:
        return True
    return urlsplit(origin).netloc.lower() == request.host.lower()


async def websocket_handler(request: web.Request) -> web.WebSocketResponse:
    rooms = request.app[ROOMS_KEY]
    if not origin_allowed(request, rooms.config.allowed_origins):
        raise web.HTTPForbidden(text='{"error": "origin-not-allowed"}', content_type="application/json")
    if not rooms.accepting_joins:  # draining for a shutdown: a new socket could only be told that
        raise web.HTTPServiceUnavailable(text='{"error": "shutting-down"}', content_type="application/json",
                                         headers={"Retry-After": "3"})
    # Behind a reverse proxy the TCP peer is the proxy: only a trusted one may say who the client is.
    address = rooms.proxies.client(request.remote, request.headers.getall(rooms.proxies.header, []))
    browser_key = request.cookies.get(BROWSER_KEY_COOKIE)
    client = rooms.placement.forwarded_client(request.headers) if rooms.placement is not None else None
    if client is not None:  # forwarded by another node, which signed who the client is
        address, browser_key = client
    if not rooms.sockets.acquire(address):  # one address must not take the server's file descriptors
        raise web.HTTPTooManyRequests(text='{"error": "too-many-connections"}', content_type="application/json",
                                      headers={"Retry-After": "10"})
    try:
        # Frames up to MAX_SIGNALING_FRAME are read so an oversized message gets an `error`, not a 1009 close.
        ws = web.WebSocketResponse(heartbeat=15.0, max_msg_size=messages.MAX_SIGNALING_FRAME)
        transport = request.transport
        abort = transport.abort if transport is not None else lambda: None
        if transport is not None and ws.can_prepare(request).ok:  # from here on the client sends only frames
            FrameClock.install(transport, rooms.config.frame_timeout, abort)
        await ws.prepare(request)
        session = SignalingSession(rooms, ws, browser_key, address, abort, forwarded=client is not None)
        rooms.sessions.add(session)
        try:
            await session.run()
        finally:
            rooms.sessions.discard(session)
    finally:
        rooms.sockets.release(address)
    return ws


ROOMS_KEY: web.AppKey[Rooms] = web.AppKey("rooms", Rooms)
