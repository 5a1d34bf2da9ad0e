"""Captions and subtitles for every room: the room observer that connects the SFU to transcribe/ and translate/.

Data flow, one way: a speaker's audio publication -> DecodedAudioTap (decoded once per speaker) ->
SpeakerStream (VAD, Whisper, commit policy) -> caption -> Room.deliver_caption (everyone) and the room's
SubtitleRouter (translated once per chosen language, sent only to those listeners). Nothing here is
written to disk; a room's state goes when the room closes.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field

import msgspec

from peerwell import metrics
from sfu import messages
from sfu.audio_tap import DecodedAudioTap
from sfu.participant import Participant
from sfu.publication import Publication
from sfu.room import Room
from transcribe.events import Caption
from transcribe.service import CaptionService
from transcribe.stream import SpeakerStream
from translate.errors import NoTranslationModel
from translate.router import SubtitleRouter
from translate.service import TranslationService
from translate.subtitle import Subtitle

logger = logging.getLogger(__name__)


@dataclass
class Speaker:
    stream: SpeakerStream
    tap: DecodedAudioTap


@dataclass
class RoomLanguages:
    router: SubtitleRouter | None
    speakers: dict[str, Speaker] = field(default_factory=dict)
    offered: list[str] = field(default_factory=list)


class CaptionsObserver:
    """Implements sfu.room.RoomObserver."""

    def __init__(self, captions: CaptionService | None, translation: TranslationService | None) -> None:
        self.captions = captions
        self.translation = translation
        self.rooms: dict[int, tuple[Room, RoomLanguages]] = {}
        self._speaker_rooms: dict[str, Room] = {}
        self._tasks: set[asyncio.Task[None]] = set()

    def _state(self, room: Room) -> RoomLanguages:
        entry = self.rooms.get(id(room))
        if entry is None:
            router = None
            if self.translation is not None:
                router = SubtitleRouter(
                    self.translation, lambda listener, sub: self._send_subtitle(room, listener, sub),
                    whisper_english=self.captions is not None and self.captions.multilingual,
                    on_missing_model=lambda listener, err: self._tell_missing(room, listener, err))
            if router is not None and room.group is not None:
                router.set_source_languages([room.group.language])  # until someone speaks another
            entry = (room, RoomLanguages(router))
            self.rooms[id(room)] = entry
        return entry[1]

    # --- RoomObserver ------------------------------------------------------------------------

    def audio_published(self, room: Room, participant: Participant, publication: Publication) -> None:
        if self.captions is None:
            return
        state = self._state(room)
        old = state.speakers.pop(participant.id, None)
        if old is not None:
            self._close_speaker(old)
        stream = self.captions.open_stream(participant.id, participant.name, participant.spoken_language,
                                           also_translate_to_english=self._wants_english(state))
        tap = DecodedAudioTap(publication, lambda pcm, received_at: stream.push(pcm, room.room_time(received_at)))
        state.speakers[participant.id] = Speaker(stream, tap)
        self._speaker_rooms[participant.id] = room

    def participant_joined(self, room: Room, participant: Participant) -> None:
        state = self._state(room)
        if state.router is not None:
            participant.send_event(messages.SubtitleLanguages(languages=state.router.reachable_targets()))

    def participant_left(self, room: Room, participant: Participant) -> None:
        state = self._state(room)
        speaker = state.speakers.pop(participant.id, None)
        if speaker is not None:
            self._close_speaker(speaker)
        if self._speaker_rooms.get(participant.id) is room:
            del self._speaker_rooms[participant.id]
        if state.router is not None:
            state.router.remove_listener(participant.id)

    def channel_request(self, room: Room, participant: Participant, request: msgspec.Struct) -> None:
        state = self._state(room)
        if isinstance(request, messages.SetSpokenLanguage):
            speaker = state.speakers.get(participant.id)
            if speaker is not None:
                speaker.stream.set_language(request.language)
        elif isinstance(request, messages.SetSubtitleLanguage):
            self._choose_subtitles(room, state, participant, request.language)

    def room_closed(self, room: Room) -> None:
        entry = self.rooms.pop(id(room), None)
        if entry is None:
            return
        for speaker_id, speaker in entry[1].speakers.items():
            self._close_speaker(speaker)
            self._speaker_rooms.pop(speaker_id, None)

    # --- captions ----------------------------------------------------------------------------

    def on_caption(self, caption: Caption) -> None:
        """CaptionService callback, on the event loop."""
        room = self._speaker_rooms.get(caption.speaker_id)
        if room is None or room.ended:
            return
        state = self._state(room)
        if caption.task == "transcribe":
            room.deliver_caption(messages.Caption(
                segment_id=caption.segment_id, speaker_id=caption.speaker_id, speaker_name=caption.speaker_name,
                text=caption.text, final=caption.final, start=round(caption.start, 3),
                end=round(caption.end, 3), language=caption.language))
            metrics.caption_sent(caption.final, caption.end, room.room_time())
        if state.router is not None and caption.final:
            self._spawn(metrics.timed_translation(state.router.on_caption(caption)))
            if caption.task == "transcribe" and caption.language not in state.router.source_languages:
                state.router.source_languages.add(caption.language)
                self._offer_languages(room, state)

    # --- subtitles ---------------------------------------------------------------------------

    def _choose_subtitles(self, room: Room, state: RoomLanguages, participant: Participant,
                          language: str | None) -> None:
        if state.router is None:
            participant.send_event(messages.SubtitleStatus(
                language=language, available=False, message="translation is not available on this server"))
            return
        try:
            choice = state.router.set_choice(participant.id, language)
        except NoTranslationModel as err:
            participant.subtitle_language = None
            participant.send_event(messages.SubtitleStatus(language=language, available=False, message=str(err)))
            return
        if language is None:
            message = "Subtitles are off."
        elif choice.warnings:
            message = "Subtitles on, except: " + "; ".join(choice.warnings)
        else:
            message = f"Subtitles in {language} are on."
        participant.send_event(messages.SubtitleStatus(language=language, available=True, message=message))
        wants_english = self._wants_english(state)
        for speaker in state.speakers.values():
            speaker.stream.also_translate_to_english = wants_english

    def _wants_english(self, state: RoomLanguages) -> bool:
        """Whisper's own English translation costs a decode per final; run it only while someone wants it."""
        return (self.captions is not None and self.captions.multilingual and state.router is not None
                and "en" in state.router.choices.values())

    def _offer_languages(self, room: Room, state: RoomLanguages) -> None:
        assert state.router is not None
        offered = state.router.reachable_targets()
        if offered != state.offered:
            state.offered = offered
            room.broadcast_event(messages.SubtitleLanguages(languages=offered))

    def _send_subtitle(self, room: Room, listener_id: str, subtitle: Subtitle) -> None:
        listener = room.participants.get(listener_id)
        if listener is not None and subtitle.final:
            listener.send_event(messages.Subtitle(
                segment_id=str(subtitle.segment_id), language=subtitle.language, text=subtitle.text,
                source_language=subtitle.source_language))

    def _tell_missing(self, room: Room, listener_id: str, err: NoTranslationModel) -> None:
        listener = room.participants.get(listener_id)
        if listener is not None:
            listener.send_event(messages.SubtitleStatus(language=listener.subtitle_language, available=False,
                                                        message=str(err)))

    # --- housekeeping ------------------------------------------------------------------------

    def _close_speaker(self, speaker: Speaker) -> None:
        speaker.tap.close()
        self._spawn(speaker.stream.close())

    def _spawn(self, work: object) -> None:
        task = asyncio.ensure_future(work)  # type: ignore[arg-type]
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def close(self) -> None:
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        if self.captions is not None:
            await self.captions.close()
