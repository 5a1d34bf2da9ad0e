"""Signaling against a real server on loopback: hostile and confused clients get an error and change
nothing, well-behaved ones in the same room keep their media; resume tokens; room limits; HTTP headers."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator

import aiohttp
import pytest
from aiortc import RTCPeerConnection

from sfu import messages
from sfu.config import ServerConfig
from sfu.contrib.client import RoomClient, encode_vp8_clip
from sfu.room.groups import Group, GroupsConfig, ServerSettings
from tests.conftest import RunningServer, start_server, wait_for

NOISE = {"participant-joined", "participant-left"}  # broadcasts that may interleave with replies


@pytest.fixture(scope="module")
def clip() -> list[bytes]:
    return encode_vp8_clip(frames=30, width=160, height=120, keyframe_interval=15)


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as http:
        yield http


class Socket:
    """A raw signaling WebSocket, for saying things RoomClient never would."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        self.ws = ws

    @classmethod
    async def open(cls, http: aiohttp.ClientSession, server: RunningServer) -> Socket:
        return cls(await http.ws_connect(server.ws_url))

    async def send(self, message: dict | str | bytes) -> None:
        if isinstance(message, bytes):
            await self.ws.send_bytes(message)
        else:
            await self.ws.send_str(message if isinstance(message, str) else json.dumps(message))

    async def recv(self, skip: set[str] = NOISE) -> dict:
        while True:
            raw = await self.ws.receive(timeout=10)
            assert raw.type == aiohttp.WSMsgType.TEXT, f"socket ended: {raw.type} {raw.data!r}"
            message = json.loads(raw.data)
            if message.get("type") not in skip:
                return message

    async def expect_error(self, code: str) -> dict:
        message = await self.recv()
        assert message["type"] == "error", message
        assert message["code"] == code, message
        assert isinstance(message["message"], str) and message["message"]
        return message

    async def join(self, room: str, name: str = "someone", **extra: object) -> dict:
        await self.send(join_message(room, name, **extra))
        return await self.recv()

    async def close(self) -> None:
        await self.ws.close()


def join_message(room: str, name: str = "someone", **extra: object) -> dict:
    return {"type": "join", "room": room, "name": name, "accept_agreement": True, **extra}


def groups(*configured: Group, adhoc: bool = True) -> GroupsConfig:
    return GroupsConfig(server=ServerSettings(allow_adhoc_rooms=adhoc), groups=configured)


def group(slug: str, max_participants: int = 12, lobby: bool = False) -> Group:
    return Group(slug=slug, name=slug.title(), agreement="Be kind.", max_participants=max_participants,
                 lobby=lobby, facilitator_secret="facilitator-secret-" + slug)


def state(server: RunningServer) -> tuple[dict[str, list[str]], list[str]]:
    """Everything a bad message must not change: the rooms, who is in them, and the seats held."""
    return ({name: sorted(room.participants) for name, room in server.rooms.rooms.items()},
            sorted(server.rooms.seats))



async def client_offer() -> tuple[RTCPeerConnection, str]:
    """A real, valid first offer: receive video, plus the data channel."""
    pc = RTCPeerConnection()
    pc.createDataChannel("peerwell")
    pc.addTransceiver("video", direction="recvonly")
    await pc.setLocalDescription(await pc.createOffer())
    return pc, pc.localDescription.sdp


# An SDP that parses but cannot be used: aiortc rejects it (no ICE credentials).
UNUSABLE_SDP = ("v=0\r\no=- 0 0 IN IP4 0.0.0.0\r\ns=-\r\nt=0 0\r\n"
                "m=video 9 UDP/TLS/RTP/SAVPF 96\r\na=rtpmap:96 VP8/90000\r\na=sendonly\r\na=mid:0\r\n")

JOIN = join_message("circle", "x")
PRE_JOIN_ABUSE = [
    ("not-json", "{this is not json", "invalid-message"),
    ("json-array", "[1, 2, 3]", "invalid-message"),
    ("json-number", "42", "invalid-message"),
    ("no-type", {"room": "circle", "name": "x", "accept_agreement": True}, "invalid-message"),
    ("unknown-type", {"type": "shout", "text": "hi"}, "invalid-message"),
    ("type-wrong-type", {"type": 7}, "invalid-message"),
    ("extra-field", {**JOIN, "admin": True}, "invalid-message"),
    ("missing-name", {"type": "join", "room": "circle", "accept_agreement": True}, "invalid-message"),
    ("no-agreement", {"type": "join", "room": "circle", "name": "x"}, "agreement-required"),
    ("agreement-declined", {**JOIN, "accept_agreement": False}, "agreement-required"),
    ("agreement-is-string", {**JOIN, "accept_agreement": "yes"}, "invalid-message"),
    ("room-is-number", {**JOIN, "room": 123}, "invalid-message"),
    ("name-is-list", {**JOIN, "name": ["x"]}, "invalid-message"),
    ("name-too-long", {**JOIN, "name": "n" * 41}, "invalid-message"),
    ("name-empty", {**JOIN, "name": ""}, "invalid-message"),
    ("name-blank", {**JOIN, "name": "   "}, "invalid-message"),
    ("name-control-chars", {**JOIN, "name": "a\u0007b"}, "invalid-message"),
    ("room-path", {**JOIN, "room": "../etc"}, "invalid-message"),
    ("room-space", {**JOIN, "room": "my room"}, "invalid-message"),
    ("room-upper-case", {**JOIN, "room": "Circle"}, "invalid-message"),
    ("room-leading-dash", {**JOIN, "room": "-circle"}, "invalid-message"),
    ("room-too-long", {**JOIN, "room": "r" * 41}, "invalid-message"),
    ("room-unicode", {**JOIN, "room": "círculo"}, "invalid-message"),
    ("wrong-secret", {**JOIN, "secret": "not-the-facilitator-secret"}, "bad-secret"),
    ("bad-language", {**JOIN, "language": "english"}, "invalid-message"),
    ("short-resume", {**JOIN, "resume": "abc"}, "invalid-message"),
    ("binary-frame", b'{"type": "leave"}', "invalid-message"),
    ("offer-before-join", {"type": "offer", "sdp": UNUSABLE_SDP}, "not-joined"),
    ("answer-before-join", {"type": "answer", "sdp": UNUSABLE_SDP}, "not-joined"),
    ("leave-before-join", {"type": "leave"}, "not-joined"),
    ("admit-before-join", {"type": "admit", "participant_id": "abc"}, "not-joined"),
    ("admit-empty-id", {"type": "admit", "participant_id": ""}, "invalid-message"),
]


@pytest.mark.parametrize(("message", "code"), [(m, c) for _, m, c in PRE_JOIN_ABUSE],
                         ids=[name for name, _, _ in PRE_JOIN_ABUSE])
async def test_bad_message_before_join_gets_an_error_and_changes_nothing(
        server: RunningServer, session: aiohttp.ClientSession, message: object, code: str) -> None:
    resident = await Socket.open(session, server)
    assert (await resident.join("circle", "resident"))["type"] == "joined"
    before = state(server)
    sock = await Socket.open(session, server)
    await sock.send(message)
    await sock.expect_error(code)
    assert state(server) == before
    # The connection survives the mistake: a proper join still works on it.
    joined = await sock.join("circle", "late")
    assert joined["type"] == "joined"
    assert [p["name"] for p in joined["participants"]] == ["resident"]
    await sock.close()
    await resident.close()


async def test_abuse_inside_a_room_leaves_it_and_its_media_intact(
        server: RunningServer, session: aiohttp.ClientSession, clip: list[bytes]) -> None:
    publisher = RoomClient(server.ws_url, "circle", "publisher", clip, None, tag=1)
    watcher = RoomClient(server.ws_url, "circle", "watcher")
    abuser = await Socket.open(session, server)
    pc: RTCPeerConnection | None = None
    try:
        await publisher.join()
        await watcher.join()
        await wait_for(lambda: watcher.count_from(publisher.participant_id, "video") >= 10)

        joined = await abuser.join("circle", "abuser")
        assert joined["type"] == "joined"
        abuser_id = joined["participant_id"]
        assert {p["id"] for p in joined["participants"]} == {publisher.participant_id, watcher.participant_id}
        before = state(server)
        assert before[0]["circle"] == sorted([publisher.participant_id, watcher.participant_id, abuser_id])

        abuse: list[tuple[dict | str, str]] = [
            ({"type": "answer", "sdp": UNUSABLE_SDP}, "negotiation-failed"),  # no offer outstanding
            (join_message("circle", "again"), "already-joined"),
            (join_message("elsewhere", "again"), "already-joined"),
            ({"type": "admit", "participant_id": publisher.participant_id}, "not-allowed"),
            ({"type": "deny", "participant_id": watcher.participant_id}, "not-allowed"),
            ({"type": "offer", "sdp": UNUSABLE_SDP}, "negotiation-failed"),
            ({"type": "offer", "sdp": 5}, "invalid-message"),
            ({"type": "offer", "sdp": "short"}, "invalid-message"),
            ({"type": "offer", "sdp": UNUSABLE_SDP, "tracks": {}}, "invalid-message"),
            ({"type": "leave", "now": True}, "invalid-message"),
            ("\x00\x01garbage", "invalid-message"),
        ]
        for message, code in abuse:
            await abuser.send(message)
            await abuser.expect_error(code)
            assert state(server) == before, f"state changed after {message!r}"

        # Someone who is not in the room cannot act on it either.
        outsider = await Socket.open(session, server)
        await outsider.send({"type": "offer", "sdp": UNUSABLE_SDP})
        await outsider.expect_error("not-joined")
        await outsider.close()

        # A message over the size limit gets an error; a frame over the frame limit ends that connection only.
        oversized = await Socket.open(session, server)
        await oversized.send(json.dumps(join_message("circle", "x" * 300_000)))
        await oversized.expect_error("invalid-message")
        await oversized.send(json.dumps(join_message("circle", "x" * (messages.MAX_SIGNALING_FRAME + 1))))
        closing = await oversized.ws.receive(timeout=10)
        assert closing.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED, aiohttp.WSMsgType.CLOSING)
        assert oversized.ws.close_code == aiohttp.WSCloseCode.MESSAGE_TOO_BIG
        await oversized.close()
        assert state(server) == before

        # The abuser can still negotiate properly after all that.
        pc, sdp = await client_offer()
        await abuser.send({"type": "offer", "sdp": sdp})
        answer = await abuser.recv()
        assert answer["type"] == "answer" and answer["sdp"].startswith("v=0")
        # ... but only once: later offers come from the server.
        await abuser.send({"type": "offer", "sdp": sdp})
        await abuser.expect_error("negotiation-failed")

        # Throughout, the well-behaved clients kept working.
        count = watcher.count_from(publisher.participant_id, "video")
        await wait_for(lambda: watcher.count_from(publisher.participant_id, "video") >= count + 15)
        assert watcher.errors == [] and publisher.errors == []
        assert [s for s in watcher.signals if s.get("type") == "participant-left"] == []

        await abuser.send({"type": "leave"})
        await wait_for(lambda: abuser_id not in server.rooms.rooms["circle"].participants)
        assert state(server)[0] == {"circle": sorted([publisher.participant_id, watcher.participant_id])}
    finally:
        await abuser.close()
        if pc is not None:
            await pc.close()
        await publisher.leave()
        await watcher.leave()


async def test_garbage_sdp_offer_is_refused_and_a_real_offer_still_works(
        server: RunningServer, session: aiohttp.ClientSession) -> None:
    sock = await Socket.open(session, server)
    pc: RTCPeerConnection | None = None
    try:
        assert (await sock.join("circle"))["type"] == "joined"
        before = state(server)
        await sock.send({"type": "offer", "sdp": "this is not an SDP offer at all"})
        reply = await sock.recv()
        pc, sdp = await client_offer()
        await sock.send({"type": "offer", "sdp": sdp})
        second = await sock.recv()
        assert state(server) == before
        assert reply["type"] == "error" and reply["code"] == "negotiation-failed", reply
        assert second["type"] == "answer", second
    finally:
        await sock.close()
        if pc is not None:
            await pc.close()


# --- resume ------------------------------------------------------------------------------------


@pytest.fixture
async def graceful_server() -> AsyncIterator[RunningServer]:
    runner, running = await start_server(ServerConfig(reconnect_grace=5, ice_hosts=("127.0.0.1",)))
    yield running
    await runner.cleanup()


async def test_dropped_websocket_keeps_the_place_and_resume_takes_it_back(
        graceful_server: RunningServer, session: aiohttp.ClientSession, clip: list[bytes]) -> None:
    server = graceful_server
    publisher = RoomClient(server.ws_url, "circle", "publisher", clip, None, tag=1)
    watcher = RoomClient(server.ws_url, "circle", "watcher")
    back: Socket | None = None
    pc: RTCPeerConnection | None = None
    try:
        await publisher.join()
        await watcher.join()
        await wait_for(lambda: watcher.count_from(publisher.participant_id, "video") >= 5)
        token = publisher.joined["resume"]
        pid = publisher.participant_id
        assert isinstance(token, str) and len(token) >= 16

        # The phone changes networks: its signaling socket drops, its peer connection does not.
        assert publisher._ws is not None
        await publisher._ws.close()
        await asyncio.sleep(0.5)
        room = server.rooms.rooms["circle"]
        assert pid in room.participants
        assert pid in server.rooms.seats
        count = watcher.count_from(pid, "video")
        await wait_for(lambda: watcher.count_from(pid, "video") >= count + 10)  # media never stopped
        assert not any(s.get("type") == "participant-left" for s in watcher.signals)

        before = state(server)
        wrong = await Socket.open(session, server)
        await wrong.send(join_message("circle", "publisher", resume="x" * 32))
        await wrong.expect_error("resume-failed")
        assert state(server) == before
        # A real token is only good for its own room.
        await wrong.send(join_message("other", "publisher", resume=token))
        await wrong.expect_error("resume-failed")
        await wrong.close()

        # A second resume while the first new socket is open: the newer one wins, the older is closed.
        first = await Socket.open(session, server)
        joined = await first.join("circle", "publisher", resume=token)
        assert joined["type"] == "joined"
        token = joined["resume"]
        back = await Socket.open(session, server)
        joined = await back.join("circle", "publisher", resume=token)
        assert joined["type"] == "joined"
        closing = await first.ws.receive(timeout=10)
        assert closing.type == aiohttp.WSMsgType.CLOSE and closing.extra == "resumed", closing
        assert joined["participant_id"] == pid
        assert joined["resume"] != token
        assert [p["id"] for p in joined["participants"]] == [watcher.participant_id]
        assert sorted(server.rooms.rooms["circle"].participants) == sorted([pid, watcher.participant_id])
        assert sorted(server.rooms.seats) == sorted([pid, watcher.participant_id])
        # The resumed seat negotiates afresh like any new connection.
        pc, sdp = await client_offer()
        await back.send({"type": "offer", "sdp": sdp})
        assert (await back.recv())["type"] == "answer"

        # Every resume issues a new token and the old one was used up.
        again = await Socket.open(session, server)
        await again.send(join_message("circle", "publisher", resume=token))
        await again.expect_error("resume-failed")
        await again.close()
        await first.close()
    finally:
        if back is not None:
            await back.close()
        if pc is not None:
            await pc.close()
        await publisher.close()
        await watcher.leave()


async def test_place_is_released_when_the_grace_period_ends(session: aiohttp.ClientSession) -> None:
    runner, server = await start_server(ServerConfig(reconnect_grace=0.3, ice_hosts=("127.0.0.1",)))
    try:
        stayer = await Socket.open(session, server)
        assert (await stayer.join("circle", "stayer"))["type"] == "joined"
        leaver = await Socket.open(session, server)
        joined = await leaver.join("circle", "leaver")
        pid, token = joined["participant_id"], joined["resume"]
        await leaver.close()
        await asyncio.sleep(0.1)
        assert pid in server.rooms.rooms["circle"].participants
        left = await stayer.recv(skip={"participant-joined"})
        assert left == {"type": "participant-left", "participant_id": pid}
        assert pid not in server.rooms.rooms["circle"].participants and pid not in server.rooms.seats

        again = await Socket.open(session, server)
        await again.send(join_message("circle", "leaver", resume=token))
        await again.expect_error("resume-failed")
        await again.close()
        await stayer.close()
    finally:
        await runner.cleanup()


@pytest.mark.parametrize(("extra", "code"), [({"resume": "y" * 32}, "resume-failed"),
                                             ({"secret": "not-the-secret"}, "bad-secret")],
                         ids=["bad-resume", "bad-secret"])
async def test_refused_join_leaves_no_room_behind(
        server: RunningServer, session: aiohttp.ClientSession, extra: dict, code: str) -> None:
    sock = await Socket.open(session, server)
    try:
        for i in range(3):
            await sock.send(join_message(f"ghost{i}", "x", **extra))
            await sock.expect_error(code)
        assert server.rooms.rooms == {}
    finally:
        await sock.close()


async def test_resume_into_a_full_room_takes_back_the_held_place(session: aiohttp.ClientSession) -> None:
    config = ServerConfig(reconnect_grace=5, ice_hosts=("127.0.0.1",), groups=groups(group("pair", 2)))
    runner, server = await start_server(config)
    sockets: list[Socket] = []
    try:
        first, second, third = [await Socket.open(session, server) for _ in range(3)]
        sockets += [first, second, third]
        assert (await first.join("pair", "first"))["type"] == "joined"
        joined = await second.join("pair", "second")
        await second.close()
        await asyncio.sleep(0.2)
        await third.send(join_message("pair", "third"))
        await third.expect_error("room-full")  # the dropped participant's place is still held
        back = await Socket.open(session, server)
        sockets.append(back)
        again = await back.join("pair", "second", resume=joined["resume"])
        assert again["type"] == "joined", again
        assert again["participant_id"] == joined["participant_id"]
        assert len(server.rooms.rooms["pair"].participants) == 2
    finally:
        for sock in sockets:
            await sock.close()
        await runner.cleanup()


# --- room policy -------------------------------------------------------------------------------


async def test_cap_counts_admitted_members_and_facilitators_have_their_own_seats(
        session: aiohttp.ClientSession) -> None:
    from sfu.room.room import FACILITATOR_SEATS

    config = ServerConfig(reconnect_grace=0, ice_hosts=("127.0.0.1",), groups=groups(group("small", 2, lobby=True)))
    runner, server = await start_server(config)
    sockets: list[Socket] = []
    try:
        async def opened() -> Socket:
            sock = await Socket.open(session, server)
            sockets.append(sock)
            return sock

        waiting = []
        for i in range(4):  # four strangers in the lobby do not make the group full
            sock = await opened()
            joined = await sock.join("small", f"waiting{i}")
            assert joined["type"] == "joined", joined
            assert (await sock.recv())["type"] == "lobby"
            waiting.append((sock, joined["participant_id"]))
        facilitators = []
        for i in range(FACILITATOR_SEATS):
            sock = await opened()
            joined = await sock.join("small", f"host{i}", secret="facilitator-secret-small")
            assert joined["type"] == "joined" and joined["role"] == "facilitator", joined
            facilitators.append(sock)
        extra = await opened()
        await extra.send(join_message("small", "host-extra", secret="facilitator-secret-small"))
        error = await extra.expect_error("room-full")
        assert "facilitators" in error["message"]

        host = facilitators[0]
        for sock, pid in waiting[:2]:
            await host.send({"type": "admit", "participant_id": pid})
            while (await sock.recv())["type"] != "admitted":
                pass
        room = server.rooms.rooms["small"]
        assert len(room.participants) == 2 + FACILITATOR_SEATS
        await host.send({"type": "admit", "participant_id": waiting[2][1]})  # the members' cap is reached
        while (reply := await host.recv(skip={*NOISE, "lobby-update"}))["type"] != "error":
            pass
        assert reply["code"] == "room-full" and "keep waiting" in reply["message"]
        assert waiting[2][1] in room.lobby
        newcomer = await opened()
        await newcomer.send(join_message("small", "late"))
        await newcomer.expect_error("room-full")
    finally:
        for sock in sockets:
            await sock.close()
        await runner.cleanup()


async def test_adhoc_rooms_disabled_refuses_unknown_rooms(session: aiohttp.ClientSession) -> None:
    config = ServerConfig(reconnect_grace=0, ice_hosts=("127.0.0.1",),
                          groups=groups(group("configured"), adhoc=False))
    runner, server = await start_server(config)
    try:
        sock = await Socket.open(session, server)
        await sock.send(join_message("anything", "x"))
        await sock.expect_error("no-such-room")
        assert server.rooms.rooms == {} and server.rooms.seats == {}
        joined = await sock.join("configured", "x")  # a configured group is still open
        assert joined["type"] == "joined" and joined["group"]["slug"] == "configured"
        await sock.close()
    finally:
        await runner.cleanup()


async def test_max_participants_refuses_with_room_full(session: aiohttp.ClientSession) -> None:
    config = ServerConfig(reconnect_grace=0, ice_hosts=("127.0.0.1",), groups=groups(group("small", 2)))
    runner, server = await start_server(config)
    try:
        socks = [await Socket.open(session, server) for _ in range(4)]
        assert (await socks[0].join("small", "a"))["type"] == "joined"
        assert (await socks[1].join("small", "b"))["type"] == "joined"
        before = state(server)
        await socks[2].send(join_message("small", "c"))
        await socks[2].expect_error("room-full")
        assert state(server) == before
        # Another room is unaffected, and a place freed is a place taken.
        assert (await socks[3].join("other", "d"))["type"] == "joined"
        await socks[1].send({"type": "leave"})
        await wait_for(lambda: len(server.rooms.rooms["small"].participants) == 1)
        assert (await socks[2].join("small", "c"))["type"] == "joined"
        for sock in socks:
            await sock.close()
    finally:
        await runner.cleanup()


async def test_waiting_in_the_lobby_allows_no_negotiation_or_admission(
        session: aiohttp.ClientSession) -> None:
    config = ServerConfig(reconnect_grace=0, ice_hosts=("127.0.0.1",), groups=groups(group("lobbied", lobby=True)))
    runner, server = await start_server(config)
    try:
        waiting = await Socket.open(session, server)
        joined = await waiting.join("lobbied", "guest")
        assert joined["type"] == "joined" and joined["participants"] == []
        assert (await waiting.recv())["type"] == "lobby"
        before = state(server)
        for message, code in [({"type": "offer", "sdp": UNUSABLE_SDP}, "in-lobby"),
                              ({"type": "admit", "participant_id": joined["participant_id"]}, "not-allowed")]:
            await waiting.send(message)
            await waiting.expect_error(code)
            assert state(server) == before
        assert joined["participant_id"] in server.rooms.rooms["lobbied"].lobby
        await waiting.close()
    finally:
        await runner.cleanup()


async def test_message_flood_is_rate_limited_and_the_connection_survives(
        server: RunningServer, session: aiohttp.ClientSession) -> None:
    sock = await Socket.open(session, server)
    for _ in range(60):
        await sock.send("{not json")
    codes = [(await sock.recv())["code"] for _ in range(60)]
    assert codes.count("rate-limited") >= 10
    assert codes[:30] == ["invalid-message"] * 30
    await asyncio.sleep(0.5)
    assert (await sock.join("circle", "calm"))["type"] == "joined"
    await sock.close()


# --- HTTP ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/", "/healthz", "/static/app.js", "/static/no-such-file.js"])
async def test_security_headers(server: RunningServer, session: aiohttp.ClientSession, path: str) -> None:
    async with session.get(server.http_url + path) as response:
        assert response.status == (404 if "no-such" in path else 200)
        csp = response.headers["Content-Security-Policy"]
        directives = {d.split()[0]: d.split()[1:] for d in (p.strip() for p in csp.split(";")) if d}
        assert "'unsafe-inline'" not in csp and "'unsafe-eval'" not in csp
        assert directives["default-src"] == ["'self'"]
        assert directives["script-src"] == ["'self'"]
        assert directives["frame-ancestors"] == ["'none'"]
        assert directives["object-src"] == ["'none'"]
        assert response.headers["X-Content-Type-Options"] == "nosniff"
        assert response.headers["Referrer-Policy"] == "no-referrer"
        assert response.headers["X-Frame-Options"] == "DENY"
        if path == "/":
            assert response.content_type == "text/html"
