"""A Room owns one group's live session: who is in, who waits in the lobby, and what was said (in memory).

It wires every publication to every other participant, delivers captions, chat and hands, and applies
the facilitator's decisions. All of this state lives here and nowhere else; it is gone when the
session ends.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import time
from collections import deque
from typing import TYPE_CHECKING, Protocol

import msgspec

from sfu import messages, tally
from sfu.limits.ratelimit import chat_bucket
from sfu.media.publication import Publication
from sfu.room.breakouts import Breakouts, Seating, none_state
from sfu.room.dominant_speaker import DominantSpeaker
from sfu.room.participant import Participant
from sfu.room.presence import Presence
from sfu.room.safety_watch import SafetyWatch
from sfu.room.share import ScreenShare
from sfu.room.video_quality import VideoQuality

if TYPE_CHECKING:
    from safety.detector import CrisisDetector, Match
    from sfu.room.groups import Group

logger = logging.getLogger(__name__)

RECENT_FINALS = 50  # captions a late joiner gets
RECENT_CHAT = 100
FACILITATOR_SEATS = 3  # facilitators in a room, on top of the group's max_participants
LOBBY_SEATS = 20  # people waiting at once; the lobby never counts toward max_participants
HIDDEN_NAME = "a participant"


class RoomObserver(Protocol):
    """Services that watch rooms (captions, translation) without the SFU knowing them."""

    def audio_published(self, room: Room, participant: Participant, publication: Publication) -> None: ...

    def participant_joined(self, room: Room, participant: Participant) -> None: ...

    def participant_left(self, room: Room, participant: Participant) -> None: ...

    def channel_request(self, room: Room, participant: Participant, request: msgspec.Struct) -> None: ...

    def room_closed(self, room: Room) -> None: ...


class Room:
    def __init__(self, name: str, group: Group | None = None, observers: list[RoomObserver] | None = None,
                 detector: CrisisDetector | None = None, crisis_resources: str = "",
                 share_timer_min_seconds: int = messages.SHARE_TIMER_MIN_S) -> None:
        self.name = name
        self.group = group
        self.participants: dict[str, Participant] = {}
        self.lobby: dict[str, Participant] = {}
        self.observers: list[RoomObserver] = list(observers or [])
        self.crisis_resources = crisis_resources
        self.safety = SafetyWatch(detector, self._raise_alert) if detector is not None else None
        self.started_at = time.monotonic()
        self.locked = False
        self.ended = False
        self.removed_keys: set[str] = set()  # browser keys of people removed for this session
        self.removed_addresses: dict[str, float] = {}  # address -> when someone there was removed (time.time())
        self.removed_ids: set[str] = set()
        self.hands: list[str] = []
        self.recent_captions: deque[messages.Caption] = deque(maxlen=RECENT_FINALS)
        self.chat: deque[messages.ChatMessage | messages.Sealed] = deque(maxlen=RECENT_CHAT)
        self.sealed_captions: deque[messages.Sealed] = deque(maxlen=RECENT_FINALS)  # E2EE rooms' finals
        self._chat_ids = itertools.count(1)
        self.speakers = DominantSpeaker()
        self.video_quality = VideoQuality()
        self.presence = Presence()
        self.share = ScreenShare(lambda: self.broadcast_event(self.share.timer_event()),
                                 min_seconds=share_timer_min_seconds)
        # Breakout rooms (sfu/room/breakouts.py). A main room may own a Breakouts; a breakout is a Room with a
        # parent. Groups that never open breakouts keep parent and breakouts None and behave as before.
        self.title = group.name if group is not None else name  # what people are told the room is called
        self.parent: Room | None = None
        self.breakout_index: int | None = None
        self.breakouts: Breakouts | None = None
        self.seating: Seating | None = None  # the seats' owner, which moves people between rooms
        self.breakout_lock = asyncio.Lock()  # breakout requests and the timer's return, one at a time

    def room_time(self, monotonic: float | None = None) -> float:
        """Seconds since the room opened: the clock captions and chat are stamped with."""
        return (time.monotonic() if monotonic is None else monotonic) - self.started_at

    @property
    def e2ee(self) -> bool:
        """End-to-end encrypted: media, captions and chat are sealed in the browsers; the server only relays."""
        return bool(self.group and self.group.e2ee)

    @property
    def lobby_enabled(self) -> bool:
        return bool(self.group and self.group.lobby)

    @property
    def facilitators(self) -> list[Participant]:
        return [p for p in self.participants.values() if p.role == "facilitator"]

    # --- the group's rooms (a main room and its breakouts) -----------------------------------------

    @property
    def main(self) -> Room:
        return self.parent if self.parent is not None else self

    def group_rooms(self) -> list[Room]:
        """This group's live rooms: the main room, then its open breakouts."""
        main = self.main
        return main.breakouts.rooms() if main.breakouts is not None else [main]

    def group_facilitators(self) -> list[Participant]:
        return [p for room in self.group_rooms() for p in room.facilitators]

    def locate(self, participant_id: str) -> tuple[Room, Participant] | None:
        """Which of the group's rooms `participant_id` is in (admitted), and who they are."""
        for room in self.group_rooms():
            participant = room.participants.get(participant_id)
            if participant is not None:
                return room, participant
        return None

    def breakout_child(self, index: int, name: str) -> Room:
        """A breakout of this main room: a Room of its own that shares the session-wide state (removals, the
        safety watch and what facilitators dismissed) with the main room."""
        # Same name as the main room: it is the same session for logs, restart tickets and placement; it is not in
        # Rooms.rooms, so a join by that name always reaches the main room, never a breakout.
        child = Room(self.name, self.group, self.observers, None, self.crisis_resources,
                     share_timer_min_seconds=self.share.min_seconds)
        child.parent, child.breakout_index, child.title = self, index, name
        child.safety = self.safety
        child.removed_keys, child.removed_addresses, child.removed_ids = (
            self.removed_keys, self.removed_addresses, self.removed_ids)
        return child

    def home_for(self, previous: Room) -> Room:
        """Where someone resuming a place they held in `previous` goes: back to that breakout while it is open."""
        if self.breakouts is not None and self.breakouts.live_child(previous):
            return previous
        return self

    def announce_breakouts(self) -> None:
        main = self.main
        if main.breakouts is not None:
            main.breakouts.announce()
            return
        for participant in main.participants.values():
            participant.send_event(none_state(participant))

    def seat_refusal(self, role: str, *, into_lobby: bool = False) -> tuple[str, str] | None:
        """(error code, message) when someone with `role` cannot take a new seat now; None when they can.

        max_participants counts admitted members only; facilitators have their own FACILITATOR_SEATS, and
        the lobby its own LOBBY_SEATS.
        """
        assert self.group is not None
        rooms = self.group_rooms()  # seats count over the whole group, breakouts included
        if role == "facilitator":
            if len(self.group_facilitators()) >= FACILITATOR_SEATS:
                return "room-full", f"this group already has {FACILITATOR_SEATS} facilitators in the room"
            return None
        members = sum(1 for room in rooms for p in room.participants.values() if p.role != "facilitator")
        if members >= self.group.max_participants:
            return "room-full", f"this group is full ({self.group.max_participants} people)"
        if into_lobby and len(self.lobby) >= LOBBY_SEATS:
            return "lobby-full", "too many people are waiting to be let in; try again soon"
        return None

    # --- membership --------------------------------------------------------------------------

    async def add(self, participant: Participant, *, moved: bool = False) -> None:
        """`moved`: they come from another room of the group on the same connection; `room-entered` tells
        their client that what follows replaces the room they left."""
        self.lobby.pop(participant.id, None)
        self.participants[participant.id] = participant
        await self.broadcast_signal(messages.ParticipantJoined(participant=participant.info()),
                                    exclude=participant.id)
        if moved:
            participant.send_event(messages.RoomEntered(room=self.breakout_index, name=self.title))
        participant.send_event(self._room_state())  # first: its room_time dates the chat that follows
        for caption in self.recent_captions:
            participant.send_event(self.caption_for(caption, participant))
        for sealed in self.sealed_captions:
            participant.send_event(self.sealed_for(sealed, participant))
        for chat in self.chat:
            participant.send_event(chat)
        for other in self.participants.values():
            if other.muted_by_facilitator:
                participant.send_event(messages.Moderation(action="muted", participant_id=other.id))
            if other.video_stopped_by_facilitator:
                participant.send_event(messages.Moderation(action="video-stopped", participant_id=other.id))
        for other_id, media in self.presence.media_states():
            participant.send_event(messages.MediaState(participant_id=other_id, microphone=media.microphone,
                                                       camera=media.camera))
        participant.send_event(self._hands_event())
        if self.speakers.current is not None:
            participant.send_event(messages.DominantSpeakerChanged(participant_id=self.speakers.current))
        participant.send_event(self.share.share_event())
        participant.send_event(self.share.allowed_event())
        participant.send_event(self.share.timer_event())
        for observer in self.observers:
            observer.participant_joined(self, participant)
        self.update_video_caps()
        await self.update_lobby()
        if self.main.breakouts is not None:  # counts changed; a newcomer learns where the breakouts stand
            self.main.breakouts.announce()

    async def wait_in_lobby(self, participant: Participant) -> None:
        self.lobby[participant.id] = participant
        message = ("Waiting for the facilitator to let you in." if self.facilitators
                   else "Waiting for the facilitator to arrive and let you in.")
        await participant.send_signal(messages.Lobby(message=message))
        await self.update_lobby()

    async def update_lobby(self) -> None:
        if self.parent is not None:
            return  # the lobby is the main room's; a breakout has none
        update = messages.LobbyUpdate(waiting=[p.info() for p in self.lobby.values()])
        for facilitator in self.group_facilitators():
            await facilitator.send_signal(update)

    def participant_list(self) -> list[messages.ParticipantInfo]:
        return [p.info() for p in self.participants.values()]

    async def remove(self, participant: Participant, *, resuming: bool = False) -> None:
        """`resuming`: the same person takes their place back at once (same id), so their share permission,
        share timer and raised hand stay (nobody sees a hand queue without them); a share ends either way (it
        was on the connection that is gone)."""
        if self.lobby.get(participant.id) is participant:
            del self.lobby[participant.id]
            await participant.media.close()
            await self.update_lobby()
            return
        if self.participants.get(participant.id) is not participant:
            return
        await self._let_go(participant, resuming=resuming)
        await participant.media.close()
        breakouts = self.main.breakouts
        if breakouts is not None:
            if not resuming and participant.role == "facilitator" and not self.group_facilitators():
                breakouts.facilitators_gone()
            if self.main.breakouts is breakouts:
                breakouts.announce()

    async def detach(self, participant: Participant) -> None:
        """`participant` moves to another room of the group: everything of this room lets go of them, but their
        connection stays open (nothing is forwarded to or from it here any more)."""
        if self.participants.get(participant.id) is not participant:
            return
        await self._let_go(participant, resuming=False, moving=True)

    async def _let_go(self, participant: Participant, *, resuming: bool, moving: bool = False) -> None:
        del self.participants[participant.id]
        self.speakers.forget(participant.id)
        self.presence.forget(participant.id)
        if self.safety is not None and not resuming and not moving:  # the watch is the group's: it moves along
            self.safety.forget(participant.id)
        self.update_video_caps()
        self.media_ended(participant)  # already out of self.participants: every remaining slot goes idle
        if moving:  # the connection stays: what it received from this room stops, and its levels leave too
            for other in self.participants.values():
                for publication in list(other.media.publications.values()):
                    participant.media.unsubscribe(publication)
            for publication in participant.media.publications.values():
                publication.on_audio_level = None
        if not resuming:
            dropped, cleared = self.share.forget(participant.id)
            if dropped:
                self.broadcast_event(self.share.allowed_event())
            if cleared:
                self.broadcast_event(self.share.timer_event())
        for observer in self.observers:
            observer.participant_left(self, participant)
        if participant.id in self.hands and not resuming:  # a resumed member keeps their place in the queue
            self.hands.remove(participant.id)
            self.broadcast_event(self._hands_event())
        await self.broadcast_signal(messages.ParticipantLeft(participant_id=participant.id))

    @property
    def empty(self) -> bool:
        """Nobody in it, its lobby, or (a main room) its breakouts: then the session ends."""
        return (not self.participants and not self.lobby
                and (self.breakouts is None or self.breakouts.empty))

    def close(self) -> None:
        """Forget everything said: captions, chat, hands."""
        self.recent_captions.clear()
        self.sealed_captions.clear()
        self.chat.clear()
        self.hands.clear()
        self.presence.clear()
        self.share.close()  # cancels the share timer: nothing fires after the room is gone
        if self.breakouts is not None:  # the session ends: the breakouts (and their timer) with it
            self.breakouts.close()
            self.breakouts = None
        if self.safety is not None and self.parent is None:  # a breakout's watch is its main room's
            self.safety.close()
        for observer in self.observers:
            observer.room_closed(self)

    # --- media wiring ------------------------------------------------------------------------

    def media_ready(self, participant: Participant) -> None:
        """`participant`'s first offer is answered: forward their tracks to everyone, and everyone's to them."""
        for publication in participant.media.publications.values():
            self.publication_started(participant, publication)
        participant.media.set_dominant_speaker(self.speakers.current)
        self.subscribe_to_everyone(participant)

    def publication_started(self, publisher: Participant, publication: Publication) -> None:
        if self.participants.get(publisher.id) is not publisher or not self._forwarded(publication):
            return
        publication.paused = publisher.paused_by_facilitator(publication.kind)
        for other in list(self.participants.values()):
            if other is not publisher:
                self._subscribe(other, publication)
        if publication.kind == "audio":
            publication.on_audio_level = lambda level, at: self._heard(publisher.id, level, at)
            for observer in self.observers:
                observer.audio_published(self, publisher, publication)

    def _heard(self, participant_id: str, level: int, at: float) -> None:
        """Every audio packet's level (no decoding); the room says when the dominant speaker changes."""
        self.speakers.heard(participant_id, level, at)
        if self.speakers.due(at):
            changed = self.speakers.evaluate(at)
            if changed is not None:
                self.broadcast_event(messages.DominantSpeakerChanged(participant_id=changed))
                for member in self.participants.values():
                    member.media.set_dominant_speaker(changed)
            self.update_video_caps(at)

    def update_video_caps(self, now: float | None = None) -> None:
        """Tell each member its video cap when it changed (room size, settled speaker; sfu/room/video_quality.py)."""
        changed = self.video_quality.update(self.participants, self.speakers.current,
                                            time.monotonic() if now is None else now)
        for participant_id, cap in changed.items():
            self.participants[participant_id].send_event(messages.VideoCap(*cap))

    def subscribe_to_everyone(self, participant: Participant) -> None:
        for other in self.participants.values():
            if other is participant or not other.media.ready:
                continue
            for publication in list(other.media.publications.values()):
                if self._forwarded(publication):
                    self._subscribe(participant, publication)

    def _forwarded(self, publication: Publication) -> bool:
        """Camera and microphone always are; a screen publication only while its publisher's share is on."""
        return publication.source != "screen" or self.share.sharer == publication.participant_id

    def _subscribe(self, subscriber: Participant, publication: Publication) -> None:
        """One subscriber's broken connection must not stop the others (or the publisher) from being wired."""
        try:
            subscriber.media.subscribe(publication)
        except Exception:
            logger.exception("subscribing %s failed; ending its media", subscriber.id)
            subscriber.media.end_media()

    def media_ended(self, participant: Participant) -> None:
        """`participant`'s connection is gone: everyone else's slots for its tracks go idle."""
        for publication in participant.media.publications.values():
            for other in self.participants.values():
                if other is not participant:
                    other.media.unsubscribe(publication)
        if self.share.sharer == participant.id:  # the screen publication is gone with the connection
            self.share.sharer = None
            self.broadcast_event(self.share.share_event())

    # --- events ------------------------------------------------------------------------------

    async def broadcast_signal(self, message: messages.Struct, exclude: str | None = None) -> None:
        for participant in list(self.participants.values()):
            if participant.id != exclude:
                await participant.send_signal(message)

    def broadcast_event(self, message: messages.Struct) -> None:
        for participant in self.participants.values():
            participant.send_event(message)

    def send_to_facilitators(self, message: messages.Struct) -> None:
        """Every facilitator of the group, in whichever of its rooms they are."""
        for facilitator in self.group_facilitators():
            facilitator.send_event(message)

    def caption_for(self, caption: messages.Caption, recipient: Participant) -> messages.Caption:
        speaker = self.participants.get(caption.speaker_id)
        if speaker is not None and speaker.caption_name_hidden and recipient.id != speaker.id:
            return msgspec.structs.replace(caption, speaker_name=HIDDEN_NAME, speaker_id="")
        return caption

    def deliver_caption(self, caption: messages.Caption) -> None:
        """Send a caption to everyone, the speaker included; finals are kept for late joiners."""
        if caption.final:
            self.recent_captions.append(caption)
        for participant in self.participants.values():
            participant.send_event(self.caption_for(caption, participant))
        if caption.final and caption.text:  # a skipped-speech marker may carry no words to check
            speaker = self.participants.get(caption.speaker_id)
            if speaker is not None:
                self.check_safety(speaker, caption.text, "caption", caption.language)

    def check_safety(self, speaker: Participant, text: str, source: str, language: str | None) -> None:
        if self.safety is not None:
            self.safety.check(speaker.id, text, source, language)

    def _raise_alert(self, alert_id: str, participant_id: str, text: str, source: str, match: Match) -> None:
        # The watch is the main room's and serves its breakouts too: say which room the line was said in.
        found = self.locate(participant_id)
        speaker = found[1] if found is not None else None
        where = found[0] if found is not None else self
        tally.safety_alert(source)
        self.send_to_facilitators(messages.SafetyAlert(
            alert_id=alert_id, participant_id=participant_id, name=speaker.name if speaker else "",
            text=text, source=source, category=match.category, at=round(self.room_time(), 2),
            resources=self.crisis_resources, triggers=list(match.triggers or (match.phrase,)),
            confidence=round(match.confidence, 2), layer=match.layer,
            breakout=where.breakout_index, breakout_name=where.title if where.parent is not None else None))

    def dismiss_alert(self, alert_id: str, facilitator: Participant) -> tuple[str, str] | None:
        if self.safety is None or not self.safety.dismiss(alert_id):
            return "no-such-alert", "no such alert in this room"
        self.send_to_facilitators(messages.AlertDismissed(alert_id=alert_id, by=facilitator.name))
        return None

    # --- chat and hands ----------------------------------------------------------------------

    def post_chat(self, sender: Participant, text: str) -> tuple[str, str] | None:
        """Returns an error (code, message), or None when the message went out."""
        if self.e2ee:  # plain text must never reach the server of an encrypted room
            return "e2ee-room", "this room is end-to-end encrypted: chat goes sealed (`sealed`)"
        text = text.strip()
        if not text:
            return "invalid-message", "a chat message needs some text"
        if sender.chat_limit is None:
            sender.chat_limit = chat_bucket()
        if not sender.chat_limit.allow():
            return "rate-limited", "you are sending messages too quickly; wait a few seconds"
        message = messages.ChatMessage(message_id=f"m{next(self._chat_ids)}", participant_id=sender.id,
                                       name=sender.name, text=text, at=round(self.room_time(), 2))
        self.chat.append(message)
        self.broadcast_event(message)
        self.check_safety(sender, text, "chat", None)
        return None

    # --- end-to-end encrypted rooms: opaque relay ---------------------------------------------------

    def relay_sealed(self, sender: Participant, request: messages.SendSealed) -> tuple[str, str] | None:
        """Relay a sealed caption, chat line or key message to the room without reading it.

        Same rules as the plain ones: chat has the chat limit and the chat history (and `delete-chat`); final
        captions are kept for late joiners; a hidden speaker's id goes only to themselves and facilitators.
        """
        if not self.e2ee:
            return "not-e2ee", "this room is not end-to-end encrypted; send plain messages"
        if request.kind == "help":  # as ask-for-help: facilitators only, its own limit, never kept
            refusal = self._help_refusal(sender)
            if refusal is not None:
                return refusal
            self.send_to_facilitators(messages.Sealed(kind="help", participant_id=sender.id, payload=request.payload,
                                                      final=False, message_id="", at=round(self.room_time(), 2)))
            return None
        message_id = ""
        if request.kind == "chat":
            if sender.chat_limit is None:
                sender.chat_limit = chat_bucket()
            if not sender.chat_limit.allow():
                return "rate-limited", "you are sending messages too quickly; wait a few seconds"
            message_id = f"m{next(self._chat_ids)}"
        sealed = messages.Sealed(kind=request.kind, participant_id=sender.id, payload=request.payload,
                                 final=request.final and request.kind == "caption", message_id=message_id,
                                 at=round(self.room_time(), 2))
        if request.kind == "chat":
            self.chat.append(sealed)
        elif sealed.final:
            self.sealed_captions.append(sealed)
        for participant in self.participants.values():
            if request.kind == "key" and participant is sender:
                continue  # key messages are for the others
            participant.send_event(self.sealed_for(sealed, participant))
        return None

    def sealed_for(self, sealed: messages.Sealed, recipient: Participant) -> messages.Sealed:
        """A hidden speaker's captions name nobody, as caption_for does; facilitators keep the id so the phrase
        layer running in their browser can say whose line raised an alert (the server does the same today)."""
        if sealed.kind != "caption" or recipient.role == "facilitator" or recipient.id == sealed.participant_id:
            return sealed
        speaker = self.participants.get(sealed.participant_id)
        if speaker is not None and speaker.caption_name_hidden:
            return msgspec.structs.replace(sealed, participant_id="")
        return sealed

    def delete_chat(self, message_id: str) -> bool:
        for message in self.chat:
            if message.message_id == message_id:
                self.chat.remove(message)
                self.broadcast_event(messages.ChatDeleted(message_id=message_id))
                return True
        return False

    def set_hand(self, participant_id: str, raised: bool) -> None:
        if raised and participant_id not in self.hands:
            self.hands.append(participant_id)
        elif not raised and participant_id in self.hands:
            self.hands.remove(participant_id)
        else:
            return
        self.broadcast_event(self._hands_event())

    def restore_hand(self, participant_id: str, position: int) -> None:
        """Put a resumed participant's raised hand back where it was in the queue."""
        if participant_id in self.participants and participant_id not in self.hands:
            self.hands.insert(min(position, len(self.hands)), participant_id)
            self.broadcast_event(self._hands_event())

    def _hands_event(self) -> messages.Hands:
        return messages.Hands(queue=[
            messages.HandEntry(participant_id=pid, name=self.participants[pid].name)
            for pid in self.hands if pid in self.participants])

    # --- facilitator actions -----------------------------------------------------------------

    def set_paused(self, target: Participant, kind: str, paused: bool) -> None:
        if kind == "audio":
            target.muted_by_facilitator = paused
        else:
            target.video_stopped_by_facilitator = paused
        publication = target.media.publications.get(kind)
        if publication is not None:
            publication.paused = paused
        action = {("audio", True): "muted", ("audio", False): "unmuted",
                  ("video", True): "video-stopped", ("video", False): "video-allowed"}[(kind, paused)]
        self.broadcast_event(messages.Moderation(action=action, participant_id=target.id))

    def mute_all(self) -> None:
        """Mute every member who is not muted yet; facilitators keep their voice."""
        for participant in list(self.participants.values()):
            if participant.role != "facilitator" and not participant.muted_by_facilitator:
                self.set_paused(participant, "audio", True)

    # --- presence ----------------------------------------------------------------------------

    def set_media_state(self, participant: Participant, microphone: bool, camera: bool) -> None:
        if self.presence.set_media(participant.id, microphone, camera):
            self.broadcast_event(messages.MediaState(participant_id=participant.id, microphone=microphone,
                                                     camera=camera))

    def react(self, participant: Participant, reaction: str) -> str | None:
        """Returns an error message, or None when the reaction went out to everyone."""
        if not self.presence.may_react(participant.id):
            return "you are sending reactions too quickly; wait a moment"
        self.broadcast_event(messages.ReactionShown(participant_id=participant.id, reaction=reaction))
        return None

    def _help_refusal(self, participant: Participant) -> tuple[str, str] | None:
        if not self.group_facilitators():  # from a breakout, facilitators in any room of the group hear it
            return "no-facilitator", "no facilitator is in the room right now"
        if not self.presence.may_ask_for_help(participant.id):
            return "rate-limited", "your request was already sent; the facilitators will be with you soon"
        return None

    def ask_for_help(self, participant: Participant, text: str) -> tuple[str, str] | None:
        """A private request to the facilitators only. Returns (error code, message), or None when it went out."""
        if self.e2ee and text.strip():  # words for the facilitators go sealed in an encrypted room
            return "e2ee-room", "this room is end-to-end encrypted: the words of a help request go sealed (`sealed`)"
        refusal = self._help_refusal(participant)
        if refusal is not None:
            return refusal
        self.send_to_facilitators(messages.HelpRequested(
            participant_id=participant.id, name=participant.name, text=" ".join(text.split()),
            at=round(self.room_time(), 2), breakout=self.breakout_index,
            breakout_name=self.title if self.parent is not None else None))
        return None

    def set_locked(self, locked: bool) -> None:
        self.locked = locked
        self.broadcast_event(self._room_state())

    def _room_state(self) -> messages.RoomState:
        return messages.RoomState(locked=self.locked, room_time=round(self.room_time(), 2))

    # --- screen sharing (sfu/room/share.py holds the state) ----------------------------------------

    def start_share(self, sharer: Participant) -> tuple[str, str] | None:
        """Forward `sharer`'s screen publication to everyone else. Returns (error code, message) if refused."""
        if not self.share.may_share(sharer.id, sharer.role):
            return "not-allowed", "a facilitator has to allow you to share your screen first"
        if self.share.sharer is not None and self.share.sharer != sharer.id:
            return "share-busy", "someone else is sharing their screen; one share at a time"
        publication = sharer.media.publications.get("screen")
        if publication is None:
            return "no-screen-track", "your offer had no second video section to share a screen on"
        if self.share.sharer == sharer.id:
            return None  # already on: nothing to change
        self.share.sharer = sharer.id
        for other in list(self.participants.values()):
            if other is not sharer:
                self._subscribe(other, publication)
        self.broadcast_event(self.share.share_event())
        return None

    def stop_share(self, participant_id: str) -> None:
        """End `participant_id`'s share (nothing happens if they are not sharing: stopping is idempotent)."""
        if self.share.sharer != participant_id:
            return
        self.share.sharer = None
        sharer = self.participants.get(participant_id)
        publication = sharer.media.publications.get("screen") if sharer is not None else None
        if publication is not None:
            for other in self.participants.values():
                if other is not sharer:
                    other.media.unsubscribe(publication)
        self.broadcast_event(self.share.share_event())

    def allow_share(self, target: Participant, allowed: bool) -> tuple[str, str] | None:
        if target.role == "facilitator":
            return "invalid-message", "facilitators can always share their screen"
        if self.share.set_allowed(target.id, allowed):
            self.broadcast_event(self.share.allowed_event())
        if not allowed:
            self.stop_share(target.id)  # revoking ends a share in progress
        return None

    def set_share_timer(self, target: Participant, seconds: int) -> tuple[str, str] | None:
        refusal = self.share.timer_refusal(seconds)
        if refusal is not None:
            return "invalid-message", refusal
        self.share.set_timer(target.id, seconds)
        self.broadcast_event(self.share.timer_event())
        return None

    def clear_share_timer(self) -> None:
        if self.share.clear_timer():
            self.broadcast_event(self.share.timer_event())
