"""Breakout rooms over the real protocol: real aiortc peers through the real server (docs/protocol.md,
"Breakout rooms"): split, media and captions kept within each room, a message to every room, the timer, the
warned close, help and safety from a breakout, a reload inside one, a late joiner, moderation there."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from sfu import messages
from sfu.config import ServerConfig
from sfu.contrib.client import JoinError, RoomClient, encode_opus_clip, encode_vp8_clip
from sfu.room.groups import Group, GroupsConfig, ServerSettings
from sfu.room.room import Room
from tests.conftest import RunningServer, start_server
from tests.test_room_control import channel_open, events, signals, wait_until

SECRET = "facilitator-secret-for-tests"
GROUP = "circle"
NOTICE = 2.0  # the closing notice, lowered from 60 s through the test hook


@pytest.fixture(scope="module")
def clips() -> tuple[list[bytes], list[bytes]]:
    return encode_vp8_clip(frames=30, width=320, height=240), encode_opus_clip(seconds=1.0)


class SpeechRecorder:
    """A room observer in place of the captions service: which room each speaker's audio is captioned in."""

    def __init__(self) -> None:
        self.streams: list[tuple[Room, str]] = []  # (room, participant id), in order
        self.closed: list[Room] = []

    def audio_published(self, room: Room, participant, publication) -> None:  # type: ignore[no-untyped-def]
        self.streams.append((room, participant.id))

    def participant_joined(self, room: Room, participant) -> None:  # type: ignore[no-untyped-def]
        pass

    def participant_left(self, room: Room, participant) -> None:  # type: ignore[no-untyped-def]
        pass

    def channel_request(self, room: Room, participant, request) -> None:  # type: ignore[no-untyped-def]
        pass

    def room_closed(self, room: Room) -> None:
        self.closed.append(room)


RECORDER = SpeechRecorder()


@pytest.fixture
async def server() -> AsyncIterator[RunningServer]:
    from safety.detector import CrisisDetector

    groups = GroupsConfig(
        server=ServerSettings(allow_adhoc_rooms=False, crisis_resources="Call the local crisis line: 000."),
        groups=(Group(slug=GROUP, name="Circle", agreement="Be kind.", lobby=False, max_participants=8,
                      facilitator_secret=SECRET),))
    config = ServerConfig(ice_hosts=("127.0.0.1",), reconnect_grace=20, groups=groups,
                          breakout_notice_seconds=NOTICE)
    from sfu.app import create_app

    runner, running = await start_server(app=create_app(config, [RECORDER], detector=CrisisDetector.from_config()))
    yield running
    await runner.cleanup()


async def member(server: RunningServer, name: str, clips, tag: int, **kwargs) -> RoomClient:  # type: ignore[no-untyped-def]
    vp8, opus = clips
    client = RoomClient(server.ws_url, GROUP, name, video_frames=vp8, audio_frames=opus, tag=tag, **kwargs)
    await client.join()
    return await channel_open(client)


def main_room(server: RunningServer) -> Room:
    return server.rooms.rooms[GROUP]


def children(server: RunningServer) -> list[Room]:
    breakouts = main_room(server).breakouts
    assert breakouts is not None
    return breakouts.children


def channel_errors(client: RoomClient, request: str) -> list[str]:
    return [e["code"] for e in events(client, "error") if e.get("request") == request]


async def receives_from(client: RoomClient, other: RoomClient, frames: int = 5) -> None:
    start = client.count_from(other.participant_id, "video")
    await wait_until(lambda: client.count_from(other.participant_id, "video") >= start + frames, 20)


async def test_five_people_two_rooms_and_back(server: RunningServer, clips) -> None:  # type: ignore[no-untyped-def]
    facilitator = await member(server, "Fay", clips, 1, secret=SECRET)
    people = [await member(server, name, clips, 10 + i) for i, name in enumerate(["Ana", "Ben", "Cy", "Dee", "Eli"])]
    everyone = [facilitator, *people]
    ids = {c.name: c.participant_id for c in everyone}
    roles = {c.name: c.joined["role"] for c in everyone}

    facilitator.plan_breakouts(["Garden", "Lake"])  # auto: an even split, the facilitator stays
    await wait_until(lambda: (facilitator.breakouts() or {}).get("state") == "prepared")
    plan = facilitator.breakouts()
    assert plan is not None and sorted(r["count"] for r in plan["rooms"]) == [2, 3]
    assert {p["participant_id"] for p in plan["people"] if p["assigned"] is None} == {facilitator.participant_id}
    assert all(e["people"] == [] for c in people for e in events(c, "breakouts")), "members never see who is where"

    facilitator.open_breakouts(600)
    await wait_until(lambda: all(any(s["type"] == "moved" for s in signals(c, "moved")) for c in people), 20)
    rooms = {c.name: c.breakout for c in people}
    assert sorted(rooms.values()) == [0, 0, 0, 1, 1] and facilitator.breakout is None
    garden = [c for c in people if c.breakout == 0]
    lake = [c for c in people if c.breakout == 1]
    main, (room0, room1) = main_room(server), children(server)
    assert set(room0.participants) == {c.participant_id for c in garden}
    assert set(room1.participants) == {c.participant_id for c in lake}
    assert set(main.participants) == {facilitator.participant_id}
    assert all(c.room_participants.keys() == {o.participant_id for o in garden if o is not c} for c in garden)
    assert [m["name"] for m in signals(garden[0], "moved")] == ["Garden"]

    # Media: each room hears and sees only itself, on the connection everyone already had.
    await receives_from(garden[0], garden[1])
    await receives_from(lake[0], lake[1])
    await wait_until(lambda: all(c.playing_in_room() == {o.participant_id for o in group if o is not c}
                                 for group in (garden, lake) for c in group), 15)
    await asyncio.sleep(0.5)
    before = garden[0].count_from(lake[0].participant_id, "video")
    await asyncio.sleep(1.0)
    assert garden[0].count_from(lake[0].participant_id, "video") == before, "nothing crosses between rooms"

    # Each speaker's audio goes to captioning in the room they are in now (the observer opens a stream there).
    assert {pid for room, pid in RECORDER.streams if room is room0} == {c.participant_id for c in garden}
    assert {pid for room, pid in RECORDER.streams if room is room1} == {c.participant_id for c in lake}
    # Captions (delivered as the caption service does) reach only the room they were said in.
    room0.deliver_caption(messages.Caption(segment_id="g1", speaker_id=garden[0].participant_id,
                                           speaker_name=garden[0].name, text="hello garden", final=True,
                                           start=1.0, end=2.0, language="en"))
    await wait_until(lambda: all(events(c, "caption") for c in garden))
    await asyncio.sleep(0.3)
    assert not any(events(c, "caption") for c in [*lake, facilitator])

    # Chat is the room's own.
    lake[0].send_channel({"type": "chat", "text": "hi lake"})
    await wait_until(lambda: all(events(c, "chat") for c in lake))
    assert not any(events(c, "chat") for c in [*garden, facilitator])

    # A message to every room.
    facilitator.send_channel({"type": "breakout-broadcast", "text": "Five minutes left, wrap up gently"})
    await wait_until(lambda: all(events(c, "breakout-message") for c in everyone))
    assert events(lake[1], "breakout-message")[-1] == {"type": "breakout-message", "name": "Fay",
                                                       "text": "Five minutes left, wrap up gently"}

    # The timer: every room sees it count down; extending it shows in every room.
    first = {c.name: c.breakouts()["remaining"] for c in people}  # type: ignore[index]
    assert all(550 < r <= 600 for r in first.values())
    facilitator.send_channel({"type": "breakout-extend", "seconds": 300})
    await wait_until(lambda: all((c.breakouts() or {}).get("seconds") == 900 for c in everyone))
    assert all(850 < c.breakouts()["remaining"] <= 900 for c in people)  # type: ignore[index]

    # "I need help" from a breakout reaches the facilitator in the main room, naming the room.
    lake[1].send_channel({"type": "ask-for-help", "text": "could someone come?"})
    await wait_until(lambda: events(facilitator, "help-requested"))
    help_request = events(facilitator, "help-requested")[-1]
    assert (help_request["breakout"], help_request["breakout_name"]) == (1, "Lake")
    assert help_request["participant_id"] == lake[1].participant_id

    # A crisis line in a breakout alerts every facilitator, with the room's name, and no member.
    garden[1].send_channel({"type": "chat", "text": "honestly everyone would be better off without me"})
    await wait_until(lambda: events(facilitator, "safety-alert"), 20)
    alert = events(facilitator, "safety-alert")[-1]
    assert alert["breakout_name"] == "Garden" and alert["name"] == garden[1].name
    # ...and so does one said aloud (a final caption) in the other room.
    room1.deliver_caption(messages.Caption(segment_id="l9", speaker_id=lake[0].participant_id,
                                           speaker_name=lake[0].name, text="I want to end my life", final=True,
                                           start=3.0, end=4.0, language="en"))
    await wait_until(lambda: any(a["source"] == "caption" for a in events(facilitator, "safety-alert")), 20)
    spoken = next(a for a in events(facilitator, "safety-alert") if a["source"] == "caption")
    assert (spoken["breakout"], spoken["breakout_name"], spoken["name"]) == (1, "Lake", lake[0].name)
    assert spoken["alert_id"] != alert["alert_id"], "alert ids are the group's: dismissing one never hits another"
    assert not any(events(c, "safety-alert") for c in people)

    # The facilitator visits a room and sees the counts; the chat there is that room's.
    facilitator.join_breakout(1)
    await wait_until(lambda: facilitator.breakout == 1)
    await wait_until(lambda: [r["count"] for r in facilitator.breakouts()["rooms"]] == [3, 3])  # type: ignore[index]
    assert [e["text"] for e in events(facilitator, "chat")] == ["hi lake"]

    # Close all: a notice with a countdown everywhere, then everyone is back with the same ids and roles.
    facilitator.send_channel({"type": "breakout-close"})
    await wait_until(lambda: all((c.breakouts() or {}).get("state") == "closing" for c in everyone))
    assert all(0 < c.breakouts()["closing_in"] <= NOTICE for c in everyone)  # type: ignore[index]
    await wait_until(lambda: all(c.breakout is None and signals(c, "moved")[-1]["room"] is None for c in everyone),
                     NOTICE + 15)
    await wait_until(lambda: all((c.breakouts() or {}).get("state") == "none" for c in everyone))
    assert main.breakouts is None and set(main.participants) == set(ids.values())
    assert {p.name: p.id for p in main.participants.values()} == ids
    assert {p.name: p.role for p in main.participants.values()} == roles
    assert not room0.chat and not room1.chat and not room0.participants, "a closed breakout forgets its chat"
    assert room0 in RECORDER.closed and room1 in RECORDER.closed
    assert [room for room, pid in RECORDER.streams if pid == garden[0].participant_id][-1] is main
    # Back together: everyone is forwarded everyone again.
    await receives_from(garden[0], lake[0])
    await receives_from(lake[1], garden[1])
    for client in everyone:
        await client.leave()


async def test_reload_late_joiner_and_moderation(server: RunningServer, clips) -> None:  # type: ignore[no-untyped-def]
    facilitator = await member(server, "Fay", clips, 1, secret=SECRET)
    ana = await member(server, "Ana", clips, 2)
    ben = await member(server, "Ben", clips, 3)

    # Prepared by hand before opening.
    facilitator.plan_breakouts(["One", "Two"], mode="manual")
    await wait_until(lambda: facilitator.breakouts() is not None)
    assert all(p["assigned"] is None for p in facilitator.breakouts()["people"])  # type: ignore[index]
    facilitator.assign_breakout(ana.participant_id, 0)
    facilitator.assign_breakout(ben.participant_id, 1)
    facilitator.assign_breakout(ben.participant_id, 5)
    await wait_until(lambda: channel_errors(facilitator, "breakout-assign") == ["no-such-breakout"])
    facilitator.open_breakouts(0)
    await wait_until(lambda: ana.breakout == 0 and ben.breakout == 1)
    state = ana.breakouts()
    assert state is not None and state["remaining"] is None and state["seconds"] == 0  # no time limit
    ana.join_breakout(1)  # the facilitator assigns in this session
    await wait_until(lambda: channel_errors(ana, "breakout-join") == ["not-allowed"])
    facilitator.plan_breakouts(["A", "B", "C"])
    await wait_until(lambda: channel_errors(facilitator, "breakout-plan") == ["breakouts-open"])

    # A reload inside a breakout comes back there, with the same id and the facilitator's mute.
    facilitator.send_channel({"type": "mute", "participant_id": ana.participant_id})  # from the main room
    await wait_until(lambda: any(e["action"] == "muted" for e in events(ana, "moderation")))
    token = ana.joined["resume"]
    await ana.close()
    vp8, opus = clips
    again = RoomClient(server.ws_url, GROUP, "Ana", video_frames=vp8, audio_frames=opus, tag=2, resume=token)
    await again.join()
    await channel_open(again)
    assert again.participant_id == ana.participant_id and again.breakout == 0
    room0 = children(server)[0]
    assert again.participant_id in room0.participants and room0.participants[again.participant_id].muted_by_facilitator

    # A late joiner waits in the main room and can be assigned.
    cy = await member(server, "Cy", clips, 4)
    assert cy.breakout is None and cy.participant_id in main_room(server).participants
    await wait_until(lambda: (cy.breakouts() or {}).get("state") == "open")
    facilitator.assign_breakout(cy.participant_id, 1)
    await wait_until(lambda: cy.breakout == 1)
    await receives_from(cy, ben)

    # Nobody joins a breakout by name: a join by the group's name lands in the main room.
    outsider = RoomClient(server.ws_url, GROUP, "Zed")
    await outsider.join()
    assert outsider.breakout is None and outsider.participant_id in main_room(server).participants
    assert all(outsider.participant_id not in child.participants for child in children(server))
    await outsider.leave()

    # Removal works in a breakout (from the main room too) and keeps them out of the whole session.
    facilitator.send_channel({"type": "remove", "participant_id": cy.participant_id})
    await wait_until(lambda: any(s["type"] == "bye" and s["reason"] == "removed" for s in cy.signals))
    retry = RoomClient(server.ws_url, GROUP, "Cy", resume=cy.joined["resume"])
    with pytest.raises(JoinError) as refused:
        await retry.join()
    assert refused.value.code == "removed"
    await retry.close()

    # The time runs out: the same 60 s notice (shortened here), then back to the main room.
    breakouts = main_room(server).breakouts
    assert breakouts is not None
    breakouts.extend(60)
    await wait_until(lambda: 50 < ((facilitator.breakouts() or {}).get("remaining") or 0) <= 60)  # a limit now
    breakouts._time_up()  # as if the 60 s had passed
    await wait_until(lambda: (again.breakouts() or {}).get("state") == "closing")
    await wait_until(lambda: again.breakout is None and ben.breakout is None, NOTICE + 15)
    assert set(main_room(server).participants) == {facilitator.participant_id, ana.participant_id, ben.participant_id}
    for client in (facilitator, again, ben, cy):
        await client.leave()


async def test_choose_and_refusals(server: RunningServer, clips) -> None:  # type: ignore[no-untyped-def]
    facilitator = await member(server, "Fay", clips, 1, secret=SECRET)
    ana = await member(server, "Ana", clips, 2)
    ana.plan_breakouts(["One", "Two"])
    ana.open_breakouts()
    await wait_until(lambda: channel_errors(ana, "breakout-plan") == ["not-allowed"]
                     and channel_errors(ana, "breakout-open") == ["not-allowed"])
    facilitator.open_breakouts()
    await wait_until(lambda: channel_errors(facilitator, "breakout-open") == ["no-breakouts"])
    facilitator.plan_breakouts(["One", "Two"], mode="choose")
    await wait_until(lambda: (ana.breakouts() or {}).get("mode") == "choose")
    facilitator.send_channel({"type": "breakout-open", "seconds": 30})
    await wait_until(lambda: channel_errors(facilitator, "breakout-open") == ["no-breakouts", "invalid-message"])
    ana.join_breakout(1)  # prepared: that is where she will go
    await wait_until(lambda: (ana.breakouts() or {}).get("assigned") == 1)
    facilitator.open_breakouts()
    await wait_until(lambda: ana.breakout == 1)
    ana.join_breakout(0)  # she may change her mind while they are open
    await wait_until(lambda: ana.breakout == 0)
    ana.join_breakout(None)
    await wait_until(lambda: ana.breakout is None)
    ana.join_breakout(1)
    await wait_until(lambda: ana.breakout == 1)
    facilitator.send_channel({"type": "breakout-cancel"})
    await wait_until(lambda: channel_errors(facilitator, "breakout-cancel") == ["breakouts-open"])
    # The last facilitator leaves: nobody could close the rooms, so they close (with the notice).
    await facilitator.leave()
    await wait_until(lambda: (ana.breakouts() or {}).get("state") == "closing")
    await wait_until(lambda: ana.breakout is None, NOTICE + 15)
    await ana.leave()
    assert GROUP not in server.rooms.rooms, "the session ends when the whole group has left"
