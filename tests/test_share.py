"""Screen sharing and the share timer over the real protocol: real aiortc peers through the real server
(docs/protocol.md, "Screen sharing"), and the timer's pure logic (sfu/room/share.py)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from sfu import messages
from sfu.config import ServerConfig
from sfu.contrib.client import SCREEN_TAG, RoomClient, encode_opus_clip, encode_vp8_clip, read_trailer
from sfu.room.groups import Group, GroupsConfig, ServerSettings
from sfu.room.share import ScreenShare
from tests.conftest import RunningServer, start_server
from tests.test_room_control import channel_open, events, wait_until

SECRET = "facilitator-secret-for-tests"
ROOM = "share-circle"


@pytest.fixture(scope="module")
def clips() -> tuple[list[bytes], list[bytes], list[bytes]]:
    return (encode_vp8_clip(frames=30), encode_opus_clip(seconds=1.0),
            encode_vp8_clip(frames=30, width=1280, height=720, bitrate=300_000))


@pytest.fixture
async def server() -> AsyncIterator[RunningServer]:
    groups = GroupsConfig(server=ServerSettings(allow_adhoc_rooms=False),
                          groups=(Group(slug=ROOM, name="Circle", agreement="Be kind.", lobby=False,
                                        facilitator_secret=SECRET),))
    # The share timer's minimum lowered from 30 s so the expiry comes within the test.
    config = ServerConfig(ice_hosts=("127.0.0.1",), reconnect_grace=0, groups=groups, share_timer_min_seconds=1)
    from sfu.app import create_app

    runner, running = await start_server(app=create_app(config))
    yield running
    await runner.cleanup()


async def joined(server: RunningServer, name: str, clips, **kwargs) -> RoomClient:  # type: ignore[no-untyped-def]
    vp8, opus, screen = clips
    client = RoomClient(server.ws_url, ROOM, name, video_frames=vp8, audio_frames=opus, screen_frames=screen,
                        tag=len(name), **kwargs)
    await client.join()
    await channel_open(client)
    await wait_until(lambda: events(client, "share-timer"))  # the entry burst (it ends with the share trio)
    return client


def last(client: RoomClient, kind: str) -> dict | None:
    found = events(client, kind)
    return found[-1] if found else None


def errors(client: RoomClient, request: str) -> list[str]:
    return [e["code"] for e in events(client, "error") if e.get("request") == request]


def screen_mids(client: RoomClient, sharer: RoomClient) -> list[str]:
    return [mid for mid, info in client.tracks.items()
            if info["participant_id"] == sharer.participant_id and info.get("source") == "screen"]


async def receives_screen(client: RoomClient, sharer: RoomClient, frames: int = 10) -> None:
    start = client.count_from(sharer.participant_id, "video", "screen")
    await wait_until(lambda: client.count_from(sharer.participant_id, "video", "screen") >= start + frames, 20)
    tags = {read_trailer(f.data)[0] for f in client.frames_from(sharer.participant_id, "video", "screen")[-5:]}
    assert tags == {sharer.tag + SCREEN_TAG}, "the screen track carries the sharer's screen frames"


async def screen_stopped(client: RoomClient, sharer: RoomClient) -> None:
    """Nothing more arrives from the sharer's screen (a frame or two may have been on the way)."""
    await asyncio.sleep(0.5)
    before = client.count_from(sharer.participant_id, "video", "screen")
    await asyncio.sleep(1.0)
    assert client.count_from(sharer.participant_id, "video", "screen") == before


async def test_facilitator_shares_and_stops(server: RunningServer, clips) -> None:  # type: ignore[no-untyped-def]
    fran = await joined(server, "Fran", clips, secret=SECRET, screen=True)
    alice = await joined(server, "Alice", clips)
    bob = await joined(server, "Bob", clips)
    assert last(alice, "share") == {"type": "share", "participant_id": None}
    assert last(alice, "share-allowed") == {"type": "share-allowed", "participant_ids": []}
    await wait_until(lambda: alice.count_from(fran.participant_id, "video", "camera") > 10, 20)
    assert not screen_mids(alice, fran), "nothing is forwarded from a screen section before a share"

    fran.start_share()
    for client in (fran, alice, bob):
        await wait_until(lambda c=client: last(c, "share") == {"type": "share", "participant_id": fran.participant_id})
    for client in (alice, bob):
        await receives_screen(client, fran)
        assert len(screen_mids(client, fran)) == 1
        assert client.count_from(fran.participant_id, "video", "camera") > 0  # the camera goes on beside it
    assert not fran.frames_from(fran.participant_id, "video"), "a sharer is not sent their own screen"

    carol = await joined(server, "Carol", clips)  # a newcomer: the share is in the entry burst
    assert {"type": "share", "participant_id": fran.participant_id} in events(carol, "share")
    await receives_screen(carol, fran)

    fran.stop_share()
    for client in (fran, alice, bob, carol):
        await wait_until(lambda c=client: last(c, "share") == {"type": "share", "participant_id": None})
    for client in (alice, bob, carol):
        await screen_stopped(client, fran)
    for client in (fran, alice, bob, carol):
        await client.leave()


async def test_permission_busy_and_stop_share_of(server: RunningServer, clips) -> None:  # type: ignore[no-untyped-def]
    fran = await joined(server, "Fran", clips, secret=SECRET, screen=True)
    alice = await joined(server, "Alice", clips, screen=True)
    bob = await joined(server, "Bob", clips)  # an old client: no screen section
    room = server.rooms.rooms[ROOM]

    alice.start_share()
    await wait_until(lambda: errors(alice, "start-share") == ["not-allowed"])
    alice.send_channel({"type": "allow-share", "participant_id": alice.participant_id, "allowed": True})
    await wait_until(lambda: errors(alice, "allow-share") == ["not-allowed"])  # only a facilitator allows
    assert room.share.sharer is None and not room.share.is_allowed(alice.participant_id)

    fran.send_channel({"type": "allow-share", "participant_id": alice.participant_id, "allowed": True})
    fran.send_channel({"type": "allow-share", "participant_id": bob.participant_id, "allowed": True})
    for client in (fran, alice, bob):
        await wait_until(lambda c=client: last(c, "share-allowed") == {
            "type": "share-allowed", "participant_ids": [alice.participant_id, bob.participant_id]})
    bob.send_channel({"type": "start-share"})
    await wait_until(lambda: errors(bob, "start-share") == ["no-screen-track"])

    alice.start_share()
    await wait_until(lambda: last(bob, "share") == {"type": "share", "participant_id": alice.participant_id})
    await receives_screen(bob, alice)
    await receives_screen(fran, alice)

    fran.start_share()  # a facilitator too waits for the one share to end
    await wait_until(lambda: errors(fran, "start-share") == ["share-busy"])
    assert room.share.sharer == alice.participant_id

    fran.send_channel({"type": "stop-share-of", "participant_id": alice.participant_id})
    for client in (fran, alice, bob):
        await wait_until(lambda c=client: last(c, "share") == {"type": "share", "participant_id": None})
    await screen_stopped(bob, alice)

    alice.start_share()  # still allowed: shares again; revoking the permission ends it
    await wait_until(lambda: last(bob, "share") == {"type": "share", "participant_id": alice.participant_id})
    await receives_screen(bob, alice)
    fran.send_channel({"type": "allow-share", "participant_id": alice.participant_id, "allowed": False})
    await wait_until(lambda: last(bob, "share") == {"type": "share", "participant_id": None})
    await wait_until(lambda: last(bob, "share-allowed") == {"type": "share-allowed",
                                                            "participant_ids": [bob.participant_id]})
    await screen_stopped(bob, alice)
    alice.start_share()
    await wait_until(lambda: errors(alice, "start-share") == ["not-allowed", "not-allowed"])

    fran.send_channel({"type": "stop-share-of", "participant_id": "nobody-here"})
    fran.send_channel({"type": "allow-share", "participant_id": fran.participant_id, "allowed": True})
    await wait_until(lambda: errors(fran, "stop-share-of") == ["no-such-participant"])
    await wait_until(lambda: errors(fran, "allow-share") == ["invalid-message"])  # facilitators always may
    for client in (fran, alice, bob):
        await client.leave()


async def test_leaving_ends_a_share(server: RunningServer, clips) -> None:  # type: ignore[no-untyped-def]
    fran = await joined(server, "Fran", clips, secret=SECRET)
    alice = await joined(server, "Alice", clips, screen=True)
    bob = await joined(server, "Bob", clips)
    fran.send_channel({"type": "allow-share", "participant_id": alice.participant_id, "allowed": True})
    await wait_until(lambda: last(alice, "share-allowed")["participant_ids"] == [alice.participant_id])
    alice.start_share()
    await receives_screen(bob, alice)
    await alice.leave()
    for client in (fran, bob):
        await wait_until(lambda c=client: last(c, "share") == {"type": "share", "participant_id": None})
        await wait_until(lambda c=client: last(c, "share-allowed") == {"type": "share-allowed",
                                                                       "participant_ids": []})
    assert server.rooms.rooms[ROOM].share.sharer is None
    for client in (fran, bob):
        await client.leave()


async def test_share_timer(server: RunningServer, clips) -> None:  # type: ignore[no-untyped-def]
    fran = await joined(server, "Fran", clips, secret=SECRET)
    alice = await joined(server, "Alice", clips)
    room = server.rooms.rooms[ROOM]
    assert last(alice, "share-timer") == {"type": "share-timer", "participant_id": None, "seconds": 0,
                                          "remaining": 0.0, "expired": False}

    # Bad input is refused with a reason and changes nothing.
    for bad in ({"participant_id": alice.participant_id, "seconds": 0},
                {"participant_id": alice.participant_id, "seconds": 1801},
                {"participant_id": alice.participant_id, "seconds": "180"},
                {"participant_id": "nobody-here", "seconds": 60}):
        fran.send_channel({"type": "set-share-timer", **bad})
    await wait_until(lambda: len(errors(fran, "set-share-timer")) == 4)
    assert errors(fran, "set-share-timer") == ["invalid-message"] * 3 + ["no-such-participant"]
    alice.send_channel({"type": "set-share-timer", "participant_id": alice.participant_id, "seconds": 60})
    await wait_until(lambda: errors(alice, "set-share-timer") == ["not-allowed"])
    assert room.share.timer_for is None and len(events(alice, "share-timer")) == 1

    fran.send_channel({"type": "set-share-timer", "participant_id": alice.participant_id, "seconds": 2})
    for client in (fran, alice):
        await wait_until(lambda c=client: len(events(c, "share-timer")) == 2)
        started = last(client, "share-timer")
        assert started["participant_id"] == alice.participant_id and started["seconds"] == 2
        assert 1.0 < started["remaining"] <= 2 and started["expired"] is False
    bob = await joined(server, "Bob", clips)  # the entry burst carries the running timer
    burst = last(bob, "share-timer")
    assert burst["participant_id"] == alice.participant_id and 0 < burst["remaining"] <= 2 and not burst["expired"]

    for client in (fran, alice, bob):
        await wait_until(lambda c=client: last(c, "share-timer")["expired"], 5)
        assert last(client, "share-timer") == {"type": "share-timer", "participant_id": alice.participant_id,
                                               "seconds": 2, "remaining": 0.0, "expired": True}
    await asyncio.sleep(1.0)
    for client in (fran, alice, bob):  # the cue comes once
        assert sum(e["expired"] for e in events(client, "share-timer")) == 1
    carol = await joined(server, "Carol", clips)  # an expired timer stays until cleared
    assert last(carol, "share-timer")["expired"] is True

    fran.send_channel({"type": "clear-share-timer"})
    for client in (fran, alice, bob, carol):
        await wait_until(lambda c=client: last(c, "share-timer")["participant_id"] is None)

    # A new timer, then its person leaves: it is cleared, and its expiry never fires.
    fran.send_channel({"type": "set-share-timer", "participant_id": bob.participant_id, "seconds": 1})
    await wait_until(lambda: last(alice, "share-timer")["participant_id"] == bob.participant_id)
    await bob.leave()
    await wait_until(lambda: last(alice, "share-timer")["participant_id"] is None)
    await asyncio.sleep(1.5)
    assert not any(e["expired"] and e["participant_id"] == bob.participant_id for e in events(alice, "share-timer"))
    for client in (fran, alice, carol):
        await client.leave()


async def test_resumed_member_gets_share_state(server: RunningServer, clips) -> None:  # type: ignore[no-untyped-def]
    fran = await joined(server, "Fran", clips, secret=SECRET, screen=True)
    alice = await joined(server, "Alice", clips, screen=True)
    fran.send_channel({"type": "allow-share", "participant_id": alice.participant_id, "allowed": True})
    fran.send_channel({"type": "set-share-timer", "participant_id": alice.participant_id, "seconds": 600})
    fran.start_share()
    await receives_screen(alice, fran)

    again = RoomClient(server.ws_url, ROOM, "Alice", video_frames=clips[0], audio_frames=clips[1],
                       resume=alice.joined["resume"], screen=True)
    await again.join()
    await channel_open(again)
    await wait_until(lambda: events(again, "share-timer"))  # the entry burst
    assert again.participant_id == alice.participant_id
    assert last(again, "share") == {"type": "share", "participant_id": fran.participant_id}
    assert last(again, "share-allowed")["participant_ids"] == [alice.participant_id]  # kept across the resume
    timer = last(again, "share-timer")
    assert timer["participant_id"] == alice.participant_id and 590 < timer["remaining"] <= 600
    await receives_screen(again, fran)
    for client in (fran, again, alice):
        await client.leave()


# --- the share state alone (sfu/room/share.py) ------------------------------------------------

async def test_timer_expires_once_and_is_cancelled() -> None:
    fired: list[messages.ShareTimer] = []
    share = ScreenShare(lambda: fired.append(share.timer_event()), min_seconds=messages.SHARE_TIMER_MIN_S)
    assert share.timer_refusal(29) and share.timer_refusal(1801)
    assert share.timer_refusal(30) is None and share.timer_refusal(1800) is None

    share.set_timer("alice", 1)
    share.set_timer("alice", 1)  # a restart replaces the running timer: still one expiry
    await asyncio.sleep(1.3)
    assert fired == [messages.ShareTimer(participant_id="alice", seconds=1, remaining=0.0, expired=True)]
    assert share.timer_event().expired

    for end in (share.clear_timer, share.close, lambda: share.forget("bob")):
        share.set_timer("bob", 1)
        end()
        assert share.timer_event().participant_id is None
    share.set_timer("alice", 1)
    assert share.forget("bob") == (False, False) and share.timer_for == "alice"
    share.close()
    await asyncio.sleep(1.3)
    assert len(fired) == 1
