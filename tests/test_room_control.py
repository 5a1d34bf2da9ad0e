"""Facilitation over the real protocol: roles enforced on the server, lobby, moderation, chat, hands, safety."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import pytest

from sfu import messages
from sfu.config import ServerConfig
from sfu.contrib.client import JoinError, RoomClient, encode_opus_clip, encode_vp8_clip, fetch_browser_key
from sfu.room.groups import Group, GroupsConfig, ServerSettings
from tests.conftest import RunningServer, start_server

SECRET = "facilitator-secret-for-tests"
GROUP = "circle"
OPEN_GROUP = "open-circle"


@pytest.fixture(scope="module")
def clips() -> tuple[list[bytes], list[bytes]]:
    return encode_vp8_clip(frames=30), encode_opus_clip(seconds=1.0)


@pytest.fixture
async def server() -> AsyncIterator[RunningServer]:
    from safety.detector import CrisisDetector

    groups = GroupsConfig(
        server=ServerSettings(allow_adhoc_rooms=False, crisis_resources="Call the local crisis line: 000."),
        groups=(Group(slug=GROUP, name="Circle", agreement="Be kind.", lobby=True, max_participants=6,
                      facilitator_secret=SECRET),
                Group(slug=OPEN_GROUP, name="Open", agreement="Be kind.", lobby=False, facilitator_secret=SECRET)))
    config = ServerConfig(ice_hosts=("127.0.0.1",), reconnect_grace=0, groups=groups)
    from sfu.app import create_app

    runner, running = await start_server(app=create_app(config, detector=CrisisDetector.from_config()))
    yield running
    await runner.cleanup()


async def wait_until(predicate, timeout: float = 10.0) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.05)


def events(client: RoomClient, kind: str) -> list[dict]:
    return [e for e in client.events if e.get("type") == kind]


def signals(client: RoomClient, kind: str) -> list[dict]:
    return [m for m in client.signals if m.get("type") == kind]


async def channel_open(client: RoomClient) -> RoomClient:
    await wait_until(lambda: client.channel.readyState == "open")
    return client


async def admitted(server: RunningServer, facilitator: RoomClient, name: str, **kwargs) -> RoomClient:  # type: ignore[no-untyped-def]
    client = RoomClient(server.ws_url, GROUP, name, **kwargs)
    await client.join()
    await wait_until(lambda: any(client.participant_id in [w["id"] for w in m["waiting"]]
                                 for m in signals(facilitator, "lobby-update")))
    await facilitator.send({"type": "admit", "participant_id": client.participant_id})
    await client.wait_admitted()
    await client.connect_media()
    return await channel_open(client)


async def test_lobby_admit_and_deny(server: RunningServer, clips) -> None:  # type: ignore[no-untyped-def]
    vp8, opus = clips
    early = RoomClient(server.ws_url, GROUP, "Early")
    await early.join()
    assert signals(early, "lobby") and "arrive" in signals(early, "lobby")[0]["message"]
    await early.send({"type": "offer", "sdp": "v=0 not allowed yet"})
    await wait_until(lambda: any(e["code"] == "in-lobby" for e in early.errors))

    facilitator = RoomClient(server.ws_url, GROUP, "Fran", secret=SECRET, video_frames=vp8, audio_frames=opus)
    await facilitator.join()
    assert facilitator.joined["role"] == "facilitator"
    await wait_until(lambda: signals(facilitator, "lobby-update")
                     and [w["name"] for w in signals(facilitator, "lobby-update")[-1]["waiting"]] == ["Early"])
    await facilitator.send({"type": "admit", "participant_id": early.participant_id})
    await early.wait_admitted()
    assert [p["name"] for p in signals(early, "admitted")[0]["participants"]] == ["Fran"]
    await early.connect_media()
    await wait_until(lambda: early.count_from(facilitator.participant_id, "video") > 0, 15)

    turned_away = RoomClient(server.ws_url, GROUP, "Away")
    await turned_away.join()
    await wait_until(lambda: any("Away" in [w["name"] for w in m["waiting"]]
                                 for m in signals(facilitator, "lobby-update")))
    await facilitator.send({"type": "deny", "participant_id": turned_away.participant_id})
    await wait_until(lambda: signals(turned_away, "bye"))
    assert signals(turned_away, "bye")[0]["reason"] == "denied"
    room = server.rooms.rooms[GROUP]
    assert turned_away.participant_id not in room.participants and not room.lobby
    for client in (early, facilitator, turned_away):
        await client.leave()


async def test_participant_cannot_act_as_facilitator(server: RunningServer, clips) -> None:  # type: ignore[no-untyped-def]
    vp8, opus = clips
    facilitator = RoomClient(server.ws_url, OPEN_GROUP, "Fran", secret=SECRET)
    await facilitator.join()
    await channel_open(facilitator)
    alice = RoomClient(server.ws_url, OPEN_GROUP, "Alice", video_frames=vp8, audio_frames=opus)
    mallory = RoomClient(server.ws_url, OPEN_GROUP, "Mallory")
    for client in (alice, mallory):
        await client.join()
        await channel_open(client)
    room = server.rooms.rooms[OPEN_GROUP]
    await wait_until(lambda: "audio" in room.participants[alice.participant_id].media.publications)
    alice.send_channel({"type": "chat", "text": "hello"})
    alice.send_channel({"type": "raise-hand"})
    await wait_until(lambda: len(room.chat) == 1 and room.hands == [alice.participant_id])
    message_id = room.chat[0].message_id

    target = {"participant_id": alice.participant_id}
    attempts = [
        {"type": "mute", **target}, {"type": "unmute", **target}, {"type": "stop-video", **target},
        {"type": "allow-video", **target}, {"type": "remove", **target}, {"type": "lower-hand-of", **target},
        {"type": "lock"}, {"type": "unlock"}, {"type": "end-session"},
        {"type": "delete-chat", "message_id": message_id},
    ]
    for attempt in attempts:
        mallory.send_channel(attempt)
    await wait_until(lambda: len(events(mallory, "error")) == len(attempts))
    assert all(e["code"] == "not-allowed" for e in events(mallory, "error"))
    assert sorted(e["request"] for e in events(mallory, "error")) == sorted(a["type"] for a in attempts)
    # Admission is signaling; a participant cannot use it either, nor a wrong secret.
    await mallory.send({"type": "admit", "participant_id": alice.participant_id})
    await wait_until(lambda: any(e["code"] == "not-allowed" for e in mallory.errors))
    impostor = RoomClient(server.ws_url, OPEN_GROUP, "Impostor", secret="not-the-secret-at-all")
    with pytest.raises(JoinError) as refused:
        await impostor.join()
    assert refused.value.code == "bad-secret"
    await impostor.close()

    await asyncio.sleep(0.5)
    alice_side = room.participants[alice.participant_id]
    assert not room.locked and not room.ended
    assert alice.participant_id in room.participants
    assert not alice_side.muted_by_facilitator and not alice_side.media.publications["audio"].paused
    assert not alice_side.media.publications["video"].paused
    assert [m.message_id for m in room.chat] == [message_id] and room.hands == [alice.participant_id]
    assert not signals(alice, "bye") and not events(alice, "moderation")
    assert server.rooms.rooms[OPEN_GROUP] is room and not room.locked
    for client in (alice, mallory, facilitator):
        await client.leave()


async def test_mute_remove_lock_and_end(server: RunningServer, clips) -> None:  # type: ignore[no-untyped-def]
    vp8, opus = clips
    newcomer_key = await fetch_browser_key(server.http_url)  # opened the page before anyone was removed
    sam_key = await fetch_browser_key(server.http_url)
    facilitator = RoomClient(server.ws_url, OPEN_GROUP, "Fran", secret=SECRET)
    await facilitator.join()
    await channel_open(facilitator)
    speaker = RoomClient(server.ws_url, OPEN_GROUP, "Sam", audio_frames=opus, video_frames=vp8, tag=1,
                         browser_key=sam_key)
    listener = RoomClient(server.ws_url, OPEN_GROUP, "Lee")
    for client in (speaker, listener):
        await client.join()
        await channel_open(client)
    await wait_until(lambda: listener.count_from(speaker.participant_id, "audio") > 20, 15)

    facilitator.send_channel({"type": "mute", "participant_id": speaker.participant_id})
    await wait_until(lambda: any(e["action"] == "muted" for e in events(speaker, "moderation")))
    await asyncio.sleep(0.3)
    frozen = listener.count_from(speaker.participant_id, "audio")
    await asyncio.sleep(1.0)
    assert listener.count_from(speaker.participant_id, "audio") == frozen, "muted audio still forwarded"
    assert listener.count_from(speaker.participant_id, "video") > 0

    speaker.send_channel({"type": "request-unmute"})
    await wait_until(lambda: events(facilitator, "unmute-requested"))
    assert events(facilitator, "unmute-requested")[0]["name"] == "Sam" and not events(listener, "unmute-requested")
    facilitator.send_channel({"type": "unmute", "participant_id": speaker.participant_id})
    await wait_until(lambda: listener.count_from(speaker.participant_id, "audio") > frozen + 20)

    facilitator.send_channel({"type": "remove", "participant_id": speaker.participant_id})
    await wait_until(lambda: signals(speaker, "bye"))
    assert signals(speaker, "bye")[0]["reason"] == "removed"
    room = server.rooms.rooms[OPEN_GROUP]
    await wait_until(lambda: speaker.participant_id not in room.participants)
    again = RoomClient(server.ws_url, OPEN_GROUP, "Sam again", browser_key=sam_key)
    with pytest.raises(JoinError) as refused:
        await again.join()
    assert refused.value.code == "removed"
    await again.close()

    facilitator.send_channel({"type": "lock"})
    await wait_until(lambda: room.locked and events(listener, "room-state")[-1]["locked"])
    newcomer = RoomClient(server.ws_url, OPEN_GROUP, "Newcomer", browser_key=newcomer_key)
    with pytest.raises(JoinError) as locked:
        await newcomer.join()
    assert locked.value.code == "room-locked"
    await newcomer.close()

    facilitator.send_channel({"type": "end-session"})
    await wait_until(lambda: signals(listener, "bye") and signals(facilitator, "bye"))
    assert signals(listener, "bye")[0]["reason"] == "ended"
    await wait_until(lambda: OPEN_GROUP not in server.rooms.rooms)
    assert room.ended and not room.chat and not room.recent_captions
    for client in (speaker, listener, facilitator):
        await client.close()


async def test_chat_hands_hidden_names_and_safety_alerts(server: RunningServer) -> None:
    facilitator = RoomClient(server.ws_url, OPEN_GROUP, "Fran", secret=SECRET)
    await facilitator.join()
    alice = RoomClient(server.ws_url, OPEN_GROUP, "Alice")
    bob = RoomClient(server.ws_url, OPEN_GROUP, "Bob")
    for client in (facilitator, alice, bob):
        if client is not facilitator:
            await client.join()
        await channel_open(client)
    room = server.rooms.rooms[OPEN_GROUP]

    payload = '<img src=x onerror="window.__xss=1"><script>window.__xss=2</script>'
    alice.send_channel({"type": "chat", "text": payload})
    await wait_until(lambda: events(bob, "chat"))
    assert events(bob, "chat")[0]["text"] == payload and events(bob, "chat")[0]["name"] == "Alice"
    alice.send_channel({"type": "chat", "text": "x" * 501})
    for i in range(8):
        alice.send_channel({"type": "chat", "text": f"message {i}"})
    await wait_until(lambda: any(e["code"] == "rate-limited" for e in events(alice, "error")))
    assert any(e["code"] == "invalid-message" and e["request"] == "chat" for e in events(alice, "error"))
    assert len(room.chat) <= 5
    first = events(bob, "chat")[0]["message_id"]
    facilitator.send_channel({"type": "delete-chat", "message_id": first})
    await wait_until(lambda: [e["message_id"] for e in events(bob, "chat-deleted")] == [first])

    bob.send_channel({"type": "raise-hand"})
    await asyncio.sleep(0.1)
    alice.send_channel({"type": "raise-hand"})
    await wait_until(lambda: events(facilitator, "hands") and len(events(facilitator, "hands")[-1]["queue"]) == 2)
    assert [h["name"] for h in events(facilitator, "hands")[-1]["queue"]] == ["Bob", "Alice"]
    facilitator.send_channel({"type": "lower-hand-of", "participant_id": bob.participant_id})
    await wait_until(lambda: [h["name"] for h in events(alice, "hands")[-1]["queue"]] == ["Alice"])

    alice.send_channel({"type": "set-caption-name-hidden", "hidden": True})
    await wait_until(lambda: room.participants[alice.participant_id].caption_name_hidden)
    room.deliver_caption(messages.Caption(segment_id="s1", speaker_id=alice.participant_id, speaker_name="Alice",
                                          text="I want to end my life", final=True, start=1.0, end=2.5,
                                          language="en"))
    await wait_until(lambda: events(bob, "caption") and events(alice, "caption"))
    hidden = events(bob, "caption")[0]
    assert hidden["speaker_name"] == "a participant" and hidden["speaker_id"] == ""
    assert events(alice, "caption")[0]["speaker_name"] == "Alice"

    bob.send_channel({"type": "chat", "text": "this traffic is killing me"})
    bob.send_channel({"type": "chat", "text": "honestly everyone would be better off without me"})
    await wait_until(lambda: len(events(facilitator, "safety-alert")) >= 2)
    alerts = events(facilitator, "safety-alert")
    assert {a["source"] for a in alerts} == {"caption", "chat"}
    assert all(a["resources"] == "Call the local crisis line: 000." for a in alerts)
    assert not any("traffic" in a["text"] for a in alerts)
    assert alerts[0]["name"] == "Alice"  # the facilitator always knows who, even with a hidden name
    assert not events(alice, "safety-alert") and not events(bob, "safety-alert")
    for client in (alice, bob, facilitator):
        await client.leave()


async def test_signaling_flood_is_rate_limited(server: RunningServer) -> None:
    client = RoomClient(server.ws_url, OPEN_GROUP, "Flood")
    await client.join()
    for _ in range(120):
        await client.send({"type": "leave-not-a-type"})
    await wait_until(lambda: any(e["code"] == "rate-limited" for e in client.errors))
    ok = RoomClient(server.ws_url, OPEN_GROUP, "Calm")
    await ok.join()
    assert ok.participant_id in server.rooms.rooms[OPEN_GROUP].participants
    for c in (client, ok):
        await c.leave()


async def test_late_joiner_gets_recent_finals_only_from_memory(server: RunningServer) -> None:
    first = RoomClient(server.ws_url, OPEN_GROUP, "First")
    await first.join()
    await channel_open(first)
    room = server.rooms.rooms[OPEN_GROUP]
    for i in range(60):
        room.deliver_caption(messages.Caption(segment_id=f"s{i}", speaker_id=first.participant_id,
                                              speaker_name="First", text=f"line {i}", final=True,
                                              start=float(i), end=i + 0.5, language="en"))
    room.deliver_caption(messages.Caption(segment_id="p", speaker_id=first.participant_id, speaker_name="First",
                                          text="still talking", final=False, start=60.0, end=60.5, language="en"))
    late = RoomClient(server.ws_url, OPEN_GROUP, "Late")
    await late.join()
    await channel_open(late)
    await wait_until(lambda: len(events(late, "caption")) >= 50)
    received = [e["segment_id"] for e in events(late, "caption")]
    assert received == [f"s{i}" for i in range(10, 60)]  # the last 50 finals, no partials
    for client in (first, late):
        await client.leave()
    await wait_until(lambda: OPEN_GROUP not in server.rooms.rooms)
    assert not room.recent_captions  # gone with the session


async def test_presence_reactions_help_and_mute_all(server: RunningServer) -> None:
    """Self-mute/camera state reaches everyone (and newcomers); reactions are broadcast and rate limited;
    "I need help" reaches every facilitator and nobody else; mute-all spares facilitators."""
    fran = RoomClient(server.ws_url, OPEN_GROUP, "Fran", secret=SECRET)
    cora = RoomClient(server.ws_url, OPEN_GROUP, "Cora", secret=SECRET)  # co-facilitator
    alice = RoomClient(server.ws_url, OPEN_GROUP, "Alice")
    bob = RoomClient(server.ws_url, OPEN_GROUP, "Bob")
    for client in (fran, cora, alice, bob):
        await client.join()
        await channel_open(client)

    alice.send_channel({"type": "set-media-state", "microphone": False, "camera": False})
    await wait_until(lambda: events(bob, "media-state") and events(fran, "media-state"))
    assert events(bob, "media-state")[-1] == {"type": "media-state", "participant_id": alice.participant_id,
                                              "microphone": False, "camera": False}
    late = RoomClient(server.ws_url, OPEN_GROUP, "Late")
    await late.join()
    await channel_open(late)
    await wait_until(lambda: events(late, "media-state"))
    assert events(late, "media-state")[0]["participant_id"] == alice.participant_id

    bob.send_channel({"type": "react", "reaction": "heart"})
    await wait_until(lambda: events(alice, "reaction") and events(late, "reaction"))
    assert events(alice, "reaction")[0] == {"type": "reaction", "participant_id": bob.participant_id,
                                            "reaction": "heart"}
    bob.send_channel({"type": "react", "reaction": "fireworks"})
    for _ in range(5):
        bob.send_channel({"type": "react", "reaction": "clap"})
    await wait_until(lambda: sum(1 for e in events(bob, "error") if e["request"] == "react") >= 3)
    codes = [e["code"] for e in events(bob, "error") if e["request"] == "react"]
    assert codes[0] == "invalid-message" and "rate-limited" in codes
    assert len(events(alice, "reaction")) <= 3  # the burst, never the flood

    alice.send_channel({"type": "ask-for-help", "text": "I need a  moment  please"})
    await wait_until(lambda: events(fran, "help-requested") and events(cora, "help-requested"))
    assert events(cora, "help-requested")[0]["name"] == "Alice"
    assert events(cora, "help-requested")[0]["text"] == "I need a moment please"
    await asyncio.sleep(0.3)
    assert not events(bob, "help-requested") and not events(alice, "help-requested")

    bob.send_channel({"type": "mute-all"})
    await wait_until(lambda: any(e["request"] == "mute-all" for e in events(bob, "error")))
    cora.send_channel({"type": "mute-all"})
    member_ids = {alice.participant_id, bob.participant_id, late.participant_id}
    await wait_until(lambda: {e["participant_id"] for e in events(fran, "moderation")
                              if e["action"] == "muted"} == member_ids)
    room = server.rooms.rooms[OPEN_GROUP]
    assert not room.participants[fran.participant_id].muted_by_facilitator
    assert not room.participants[cora.participant_id].muted_by_facilitator
    for client in (fran, cora, alice, bob, late):
        await client.leave()
