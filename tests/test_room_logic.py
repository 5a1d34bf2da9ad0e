"""Room, lobby and moderation logic with fake media sessions: no WebRTC, just the rules.

The same rules run over real peer connections in test_signaling, test_room_control and test_connection_loss.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest

from sfu import messages
from sfu.room.control import RoomControl
from sfu.room.groups import Group
from sfu.room.participant import Participant
from sfu.room.room import FACILITATOR_SEATS, LOBBY_SEATS, Room
from sfu.signaling.websocket import seat_events
from tests.support.fake_session import FakeSession


@dataclass
class Person:
    participant: Participant
    session: FakeSession
    signals: list[messages.Struct] = field(default_factory=list)

    @property
    def id(self) -> str:
        return self.participant.id


async def nothing(*_: object) -> None:
    return None


def seat(room: Room, pid: str, role: str = "participant", *, ready: bool = True) -> Person:
    session = FakeSession(pid, ready=ready)
    signals: list[messages.Struct] = []

    async def send(message: messages.Struct) -> None:
        signals.append(message)

    participant = Participant(pid, pid.title(), session, send, role=role)
    session.events = seat_events(RoomControl(nothing, nothing), room, participant)
    return Person(participant, session, signals)


def group(**overrides: object) -> Group:
    return Group(slug="circle", name="Circle", agreement="Be kind.", **overrides)  # type: ignore[arg-type]


async def join_and_publish(room: Room, person: Person) -> None:
    await room.add(person.participant)
    person.session.publish("audio")
    person.session.publish("video")
    person.session.events.ready()  # what PeerSession does once its first answer is out


async def test_everyone_receives_everyone_else_and_a_leaver_is_unwired() -> None:
    room = Room("circle", group(lobby=False))
    ann, ben, cy = (seat(room, name) for name in ("ann", "ben", "cy"))
    for person in (ann, ben, cy):
        await join_and_publish(room, person)
    for person in (ann, ben, cy):
        others = [p for p in (ann, ben, cy) if p is not person]
        assert set(person.session.subscribed) == {pub for o in others for pub in o.session.publications.values()}
    # A newcomer was told who arrived after them, over the socket.
    assert [m.participant.id for m in ann.signals if isinstance(m, messages.ParticipantJoined)] == ["ben", "cy"]

    await room.remove(ben.participant)
    assert ben.session.closed
    assert not any(pub in ann.session.subscribed for pub in ben.session.publications.values())
    assert not any(pub in cy.session.subscribed for pub in ben.session.publications.values())
    assert [m.participant_id for m in ann.signals if isinstance(m, messages.ParticipantLeft)] == ["ben"]


async def test_a_lost_connection_unwires_its_tracks_but_keeps_the_seat() -> None:
    room = Room("circle", group(lobby=False))
    ann, ben = seat(room, "ann"), seat(room, "ben")
    await join_and_publish(room, ann)
    await join_and_publish(room, ben)
    ben.session.end_media()  # what PeerSession does when its connection closes
    assert ann.session.subscribed == []
    assert "ben" in room.participants  # the resume grace decides when the seat goes


async def test_one_broken_subscriber_does_not_stop_the_others() -> None:
    room = Room("circle", group(lobby=False))
    ann, ben, cy = (seat(room, name) for name in ("ann", "ben", "cy"))
    await join_and_publish(room, ann)
    await join_and_publish(room, ben)
    ann.session.fail_subscribe = True
    await join_and_publish(room, cy)
    assert not ann.session.media_open  # its media ended, logged
    assert set(ben.session.subscribed) >= set(cy.session.publications.values())
    assert set(cy.session.subscribed) == set(ben.session.publications.values())


async def test_facilitator_mute_lives_on_the_member_and_reaches_publications() -> None:
    room = Room("circle", group(lobby=False))
    fran, ann = seat(room, "fran", "facilitator"), seat(room, "ann", ready=False)
    await join_and_publish(room, fran)
    await room.add(ann.participant)
    room.set_paused(ann.participant, "audio", True)  # before ann's media is up
    audio = ann.session.publish("audio")
    ann.session.ready = True
    ann.session.events.ready()
    assert audio.paused, "a mute decided before the tracks arrived applies when they do"
    room.set_paused(ann.participant, "audio", False)
    assert not audio.paused and not ann.participant.muted_by_facilitator
    room.set_paused(ann.participant, "video", True)
    assert ann.participant.video_stopped_by_facilitator
    actions = [m.action for m in fran.session.events_of(messages.Moderation)]
    assert actions == ["muted", "unmuted", "video-stopped"]
    # Someone arriving later is told the current decisions.
    cy = seat(room, "cy")
    await room.add(cy.participant)
    assert [(m.action, m.participant_id) for m in cy.session.events_of(messages.Moderation)] == [
        ("video-stopped", "ann")]


async def test_lobby_and_seat_limits() -> None:
    room = Room("circle", group(lobby=True, max_participants=2))
    fran = seat(room, "fran", "facilitator")
    await room.add(fran.participant)
    waiting = [seat(room, f"w{i}") for i in range(3)]
    for person in waiting:
        await room.wait_in_lobby(person.participant)
        assert isinstance(person.signals[-1], messages.Lobby)
    updates = [m for m in fran.signals if isinstance(m, messages.LobbyUpdate)]
    assert [len(u.waiting) for u in updates][-1] == 3
    await room.add(waiting[0].participant)
    await room.add(waiting[1].participant)
    assert "w0" not in room.lobby and len(room.lobby) == 1
    assert room.seat_refusal("participant") == ("room-full", "this group is full (2 people)")
    assert room.seat_refusal("facilitator") is None  # facilitators have their own seats
    for i in range(FACILITATOR_SEATS - 1):
        await room.add(seat(room, f"f{i}", "facilitator").participant)
    assert room.seat_refusal("facilitator") is not None
    await room.remove(waiting[2].participant)  # leaving the lobby closes the session too
    assert waiting[2].session.closed and not room.lobby


def test_lobby_has_a_limit_of_its_own() -> None:
    room = Room("circle", group(lobby=True, max_participants=50))
    for i in range(LOBBY_SEATS):
        room.lobby[f"w{i}"] = seat(room, f"w{i}").participant
    refusal = room.seat_refusal("participant", into_lobby=True)
    assert refusal is not None and refusal[0] == "lobby-full"


@pytest.mark.parametrize("hidden", [False, True])
async def test_captions_reach_everyone_with_names_hidden_on_request(hidden: bool) -> None:
    room = Room("circle", group(lobby=False))
    ann, ben = seat(room, "ann"), seat(room, "ben")
    await room.add(ann.participant)
    await room.add(ben.participant)
    ann.participant.caption_name_hidden = hidden
    caption = messages.Caption(segment_id="s1", speaker_id="ann", speaker_name="Ann", text="hello there",
                               final=True, start=1.0, end=2.0, language="en")
    room.deliver_caption(caption)
    to_ben = ben.session.events_of(messages.Caption)[-1]
    assert (to_ben.speaker_name, to_ben.speaker_id) == (("a participant", "") if hidden else ("Ann", "ann"))
    assert ann.session.events_of(messages.Caption)[-1].speaker_name == "Ann"  # the speaker sees their own
    late = seat(room, "late")
    await room.add(late.participant)
    assert [c.text for c in late.session.events_of(messages.Caption)] == ["hello there"]


async def test_data_channel_requests_reach_the_room_through_the_session() -> None:
    room = Room("circle", group(lobby=False))
    ann = seat(room, "ann")
    await room.add(ann.participant)
    ann.session.events.message(b'{"type": "raise-hand"}')
    assert room.hands == ["ann"]
    ann.session.events.message(b'{"type": "mute", "participant_id": "ann"}')
    assert ann.session.events_of(messages.ChannelError)[-1].code == "not-allowed"
