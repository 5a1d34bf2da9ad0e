"""Hostile bytes on the data channel and the signaling socket: each gets an `error`; the sender's connection and
everyone else's media carry on. A property test covers the decoding of anything at all; real peer connections
carry the frames that used to close a connection from inside aiortc."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator

import aiohttp
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sfu import aiortc_adapter, messages
from sfu.config import ServerConfig
from sfu.contrib.client import RoomClient
from sfu.media.media_session import SessionEvents
from sfu.media.peer_session import PeerSession
from sfu.room.control import RoomControl
from sfu.room.participant import Participant
from sfu.room.room import Room
from tests.conftest import RunningServer, start_server, wait_for

NESTED = b'{"a":' * 1000 + b"1" + b"}" * 1000
HOSTILE_FRAMES: list[tuple[str, bytes, bool]] = [  # (what, bytes, sent as a text frame)
    ("invalid UTF-8 in a binary frame", b'{"type":"chat","text":"\xed\xa0\x80"}', False),
    ("invalid UTF-8 in a text frame", b'{"type":"chat","text":"\xed\xa0\x80"}', True),
    ("lone surrogate escape", b'{"type":"chat","text":"\\udfff"}', True),
    ("JSON nested 1000 deep", NESTED, True),
    ("JSON nested 1000 deep, binary", NESTED, False),
    ("truncated UTF-8", b'{"type":"chat","text":"\xe2\x82"}', True),
    ("overlong encoding", b'{"type":"chat","text":"\xc0\xaf"}', False),
]

# A family around the frames above: JSON-ish byte soup, broken UTF-8, deep nesting, wrong types.
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True) | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=20)
payloads = st.one_of(
    st.binary(max_size=64),
    st.builds(lambda head, junk: head + junk, st.sampled_from([b'{"type":"chat","text":"', b'{"type":"']),
              st.binary(max_size=16)),
    st.builds(lambda depth, kind: (b"[" if kind else b'{"a":') * depth, st.integers(1, 5000), st.booleans()),
    st.builds(lambda value: json.dumps({"type": "chat", "text": value}).encode(), json_values),
    st.builds(lambda kind, value: json.dumps({"type": kind, "participant_id": value}).encode(),
              st.sampled_from(["mute", "remove", "chat", "raise-hand", "nope"]), json_values),
    st.text(max_size=40).map(lambda t: t.encode("utf8", "surrogatepass")),
)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(raw=payloads, as_text=st.booleans())
def test_any_bytes_get_a_reply_and_never_raise(raw: bytes, as_text: bool) -> None:
    """The channel handler runs inside aiortc's receive path: whatever arrives, it must not raise."""
    async def scenario() -> list[dict]:
        room = Room("fuzz")
        peer = PeerSession("p1", send_signal=lambda m: asyncio.sleep(0))
        sender = Participant("p1", "Sender", peer, send_signal=lambda m: asyncio.sleep(0))
        room.participants[sender.id] = sender

        async def nothing(*_: object) -> None:
            return None

        control = RoomControl(nothing, nothing)
        peer.events = SessionEvents(message=lambda data: control.handle_raw(room, sender, data))
        data: str | bytes = raw
        if as_text:
            try:
                data = raw.decode("utf8")
            except UnicodeDecodeError:
                pass  # what the adapter hands on for a text frame that is not UTF-8
        peer._on_channel_message(data)
        events = [json.loads(text) for text in peer._channel_backlog]
        await peer.close()
        return events

    events = asyncio.run(scenario())
    errors = [e for e in events if e["type"] == "error"]
    assert all(e["code"] in ("invalid-message", "not-allowed", "no-such-participant", "rate-limited")
               for e in errors), errors
    assert errors or any(e["type"] in ("chat", "hands") for e in events), (raw, events)


@pytest.fixture
async def server() -> AsyncIterator[RunningServer]:
    runner, running = await start_server(ServerConfig(ice_hosts=("127.0.0.1",), reconnect_grace=20))
    yield running
    await runner.cleanup()


async def test_hostile_frames_get_errors_and_break_nothing(
        server: RunningServer, clips: tuple[list[bytes], list[bytes]]) -> None:
    vp8, opus = clips
    sender = RoomClient(server.ws_url, "circle", "Sender", vp8, opus, tag=1)
    bystander = RoomClient(server.ws_url, "circle", "Bystander", vp8, opus, tag=2)
    try:
        await sender.join()
        await bystander.join()
        await wait_for(lambda: sender.channel is not None and sender.channel.readyState == "open")
        await wait_for(lambda: bystander.count_from(sender.participant_id, "video") > 10)  # type: ignore[arg-type]
        for what, raw, as_text in HOSTILE_FRAMES:
            errors_before = len([e for e in sender.events if e["type"] == "error"])
            assert sender.channel is not None
            if as_text:
                await aiortc_adapter.send_raw_text_frame(sender.channel, raw)
            else:
                sender.channel.send(raw)
            await wait_for(lambda n=errors_before: len([e for e in sender.events if e["type"] == "error"]) > n, 5)
            error = [e for e in sender.events if e["type"] == "error"][-1]
            assert error["code"] == "invalid-message", (what, error)
            await asyncio.sleep(0.1)

        # Everything still works: the sender's connection, its media to others, its requests.
        seat = server.rooms.rooms["circle"].participants[sender.participant_id]  # type: ignore[index]
        assert seat.media.pc.connectionState == "connected" and not seat.media.media_ended
        before = bystander.count_from(sender.participant_id, "video")  # type: ignore[arg-type]
        await wait_for(lambda: bystander.count_from(sender.participant_id, "video") > before + 10, 5)  # type: ignore[arg-type]
        sender.send_channel({"type": "chat", "text": "still here"})
        await wait_for(lambda: any(e["type"] == "chat" and e["text"] == "still here" for e in bystander.events), 5)
    finally:
        await sender.leave()
        await bystander.leave()


async def test_hostile_signaling_gets_errors_and_keeps_the_socket(server: RunningServer) -> None:
    async with aiohttp.ClientSession() as http, http.ws_connect(server.ws_url) as ws:
        hostile: list[str | bytes] = [
            "[" * 100_000,
            '{"type":"join","room":"circle","name":' + '{"a":' * 1000 + "1" + "}" * 1000 + "}",
            '{"type":"join","room":"circle","name":"\\udfff","accept_agreement":true}',
            json.dumps({"type": "offer", "sdp": "v=0" + "x" * (messages.MAX_SIGNALING_BYTES + 10)}),
        ]
        for raw in hostile:
            await ws.send_str(raw)
            reply = json.loads((await ws.receive(timeout=10)).data)
            assert reply["type"] == "error" and reply["code"] == "invalid-message", reply
        await ws.send_str(json.dumps({"type": "join", "room": "circle", "name": "Fine", "accept_agreement": True}))
        reply = json.loads((await ws.receive(timeout=10)).data)
        assert reply["type"] == "joined", reply
