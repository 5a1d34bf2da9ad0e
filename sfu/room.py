"""A Room owns its participants and wires every publication to every other participant."""

from __future__ import annotations

import logging
import time
from collections import deque
from typing import Protocol

import msgspec

from sfu import messages
from sfu.participant import Participant
from sfu.publication import Publication

logger = logging.getLogger(__name__)

RECENT_FINALS = 50  # captions a late joiner gets; memory only


class RoomObserver(Protocol):
    """Services that watch rooms (captions, translation) without the SFU knowing them."""

    def audio_published(self, room: Room, participant: Participant, publication: Publication) -> None: ...

    def participant_left(self, room: Room, participant: Participant) -> None: ...

    def channel_request(self, room: Room, participant: Participant, request: msgspec.Struct) -> None: ...

    def room_closed(self, room: Room) -> None: ...


class Room:
    def __init__(self, name: str, observers: list[RoomObserver] | None = None) -> None:
        self.name = name
        self.participants: dict[str, Participant] = {}
        self.observers: list[RoomObserver] = list(observers or [])
        self.started_at = time.monotonic()
        self.recent_captions: deque[messages.Caption] = deque(maxlen=RECENT_FINALS)

    def room_time(self, monotonic: float | None = None) -> float:
        """Seconds since the room opened: the clock captions are stamped with."""
        return (time.monotonic() if monotonic is None else monotonic) - self.started_at

    # --- membership --------------------------------------------------------------------------

    async def add(self, participant: Participant) -> None:
        self.participants[participant.id] = participant
        await self.broadcast_signal(messages.ParticipantJoined(participant=participant.info()),
                                    exclude=participant.id)
        for caption in self.recent_captions:
            participant.send_event(caption)

    async def remove(self, participant: Participant) -> None:
        if self.participants.get(participant.id) is not participant:
            return
        del self.participants[participant.id]
        for publication in participant.publications.values():
            for other in self.participants.values():
                other.unsubscribe(publication)
        for observer in self.observers:
            observer.participant_left(self, participant)
        await self.broadcast_signal(messages.ParticipantLeft(participant_id=participant.id))
        await participant.close()

    @property
    def empty(self) -> bool:
        return not self.participants

    def close(self) -> None:
        self.recent_captions.clear()
        for observer in self.observers:
            observer.room_closed(self)

    # --- media wiring ------------------------------------------------------------------------

    def publication_started(self, publication: Publication) -> None:
        publisher = self.participants.get(publication.participant_id)
        if publisher is None:
            return
        for other in self.participants.values():
            if other is not publisher:
                other.subscribe(publication)
        if publication.kind == "audio":
            for observer in self.observers:
                observer.audio_published(self, publisher, publication)

    def subscribe_to_everyone(self, participant: Participant) -> None:
        for other in self.participants.values():
            if other is participant or not other.ready:
                continue
            for publication in other.publications.values():
                participant.subscribe(publication)

    # --- events ------------------------------------------------------------------------------

    async def broadcast_signal(self, message: messages.Struct, exclude: str | None = None) -> None:
        for participant in list(self.participants.values()):
            if participant.id != exclude:
                await participant.send_signal(message)

    def broadcast_event(self, message: messages.Struct) -> None:
        if isinstance(message, messages.Caption) and message.final:
            self.recent_captions.append(message)
        for participant in self.participants.values():
            participant.send_event(message)

    def channel_message(self, participant: Participant, raw: str | bytes) -> None:
        try:
            request = messages.decode_channel(raw, messages.ChannelRequest)
        except messages.InvalidMessage as exc:
            participant.send_event(messages.ChannelError(code="invalid-message", message=str(exc)))
            return
        if isinstance(request, messages.SetSpokenLanguage):
            participant.spoken_language = request.language
        for observer in self.observers:
            observer.channel_request(self, participant, request)
