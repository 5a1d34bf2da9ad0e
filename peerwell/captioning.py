"""Captions and subtitles for every room: the room observer that connects the SFU to transcribe/ and translate/.

Data flows one way. A speaker's audio publication gets one more sink, which hands each Opus packet
(still encoded) to that speaker's transcription stream; the stream's captions come back to the room
that opened it (`Room.deliver_caption`, everyone) and, when final, to that room's `SubtitleRouter`
(translated once per chosen language, sent only to those listeners). Whisper's English for a
non-English final has its own path straight to the router. The router alone knows who chose which
subtitle language. Nothing here is written to disk; a room's state goes when the room closes.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable
from dataclasses import dataclass, field

import msgspec

from peerwell import metrics
from sfu import messages
from sfu.media.publication import EncodedFrame, Publication
from sfu.room.participant import Participant
from sfu.room.room import Room
from transcribe.events import Caption
from transcribe.transcriber import Transcriber, TranscriberStream
from translate.errors import NoTranslationModel
from translate.router import SubtitleRouter
from translate.service import TranslationService
from translate.subtitle import Subtitle

logger = logging.getLogger(__name__)
E2EE_NO_SUBTITLES = ("Subtitles are not available in an end-to-end encrypted room: translation runs on the "
                     "server, and the server cannot read the captions.")


class SpeechTap:
    """A sink on one audio publication: each encoded packet, stamped with room time, to transcription.

    It also tells the stream whether its speaker is the room's dominant speaker (Room.speakers), checked
    on each packet: when decoding falls behind, the dominant speaker's captions go first."""

    def __init__(self, room: Room, publication: Publication, stream: TranscriberStream,
                 participant_id: str = "") -> None:
        self._room = room
        self.publication = publication
        self.stream = stream
        self.participant_id = participant_id
        self._dominant = False
        publication.add_sink(self)

    def deliver(self, frame: EncodedFrame) -> None:
        dominant = self._room.speakers.current == self.participant_id
        if dominant != self._dominant:
            self._dominant = dominant
            self.stream.set_dominant(dominant)
        self.stream.push_opus(frame.data, self._room.room_time(frame.received_at))

    def detach(self) -> None:
        """No more audio; the stream itself is finalised by whoever closes it."""
        self.publication.remove_sink(self)

    def close(self) -> Awaitable[None]:
        self.detach()
        return self.stream.close()


@dataclass
class RoomLanguages:
    router: SubtitleRouter | None
    speakers: dict[str, SpeechTap] = field(default_factory=dict)
    offered: list[str] = field(default_factory=list)


class CaptionsObserver:
    """Implements sfu.room.room.RoomObserver. `transcriber` None: rooms run without captions."""

    def __init__(self, transcriber: Transcriber | None, translation: TranslationService | None) -> None:
        self.transcriber = transcriber
        self.translation = translation
        self.rooms: dict[Room, RoomLanguages] = {}
        self._tasks: set[asyncio.Future[None]] = set()

    def _state(self, room: Room) -> RoomLanguages:
        state = self.rooms.get(room)
        if state is None:
            router = None
            if self.translation is not None:
                router = SubtitleRouter(
                    self.translation, lambda listener, sub: self._send_subtitle(room, listener, sub),
                    whisper_english=self.transcriber is not None and self.transcriber.multilingual,
                    on_missing_model=lambda listener, err: self._tell_missing(room, listener, err))
            if router is not None and room.group is not None:
                router.set_source_languages([room.group.language])  # until someone speaks another
            state = self.rooms[room] = RoomLanguages(router)
        return state

    # --- RoomObserver ------------------------------------------------------------------------

    def audio_published(self, room: Room, participant: Participant, publication: Publication) -> None:
        if self.transcriber is None or room.e2ee:  # an E2EE room's audio is ciphertext: never transcribed here
            return
        state = self._state(room)
        old = state.speakers.pop(participant.id, None)
        if old is not None:
            self._spawn(old.close())
        name = participant.name
        stream = self.transcriber.open_stream(
            participant.id, participant.spoken_language, english=self._wants_english(state),
            on_caption=lambda caption: self._caption(room, state, name, caption),
            on_english=lambda caption: self._whisper_english(room, state, caption))
        state.speakers[participant.id] = SpeechTap(room, publication, stream, participant.id)

    def participant_joined(self, room: Room, participant: Participant) -> None:
        if room.e2ee:
            return  # no subtitles to offer: the server never has the text
        state = self._state(room)
        if state.router is not None:
            participant.send_event(messages.SubtitleLanguages(languages=state.router.reachable_targets()))

    def participant_left(self, room: Room, participant: Participant) -> None:
        state = self._state(room)
        speaker = state.speakers.pop(participant.id, None)
        if speaker is not None:
            self._spawn(speaker.close())  # what they said last is still captioned
        if state.router is not None:
            state.router.remove_listener(participant.id)

    def channel_request(self, room: Room, participant: Participant, request: msgspec.Struct) -> None:
        if room.e2ee:
            if isinstance(request, messages.SetSubtitleLanguage) and request.language is not None:
                participant.send_event(messages.SubtitleStatus(
                    language=request.language, available=False, message=E2EE_NO_SUBTITLES))
            return
        state = self._state(room)
        if isinstance(request, messages.SetSpokenLanguage):
            speaker = state.speakers.get(participant.id)
            if speaker is not None:
                speaker.stream.set_language(request.language)
        elif isinstance(request, messages.SetSubtitleLanguage):
            self._choose_subtitles(room, state, participant, request.language)

    def room_closed(self, room: Room) -> None:
        state = self.rooms.pop(room, None)
        if state is None:
            return
        for speaker in state.speakers.values():
            self._spawn(speaker.close())
        state.speakers.clear()

    # --- captions ----------------------------------------------------------------------------

    def _caption(self, room: Room, state: RoomLanguages, speaker_name: str, caption: Caption) -> None:
        if room.ended:
            return
        room.deliver_caption(messages.Caption(
            segment_id=caption.segment_id, speaker_id=caption.speaker_id, speaker_name=speaker_name,
            text=caption.text, final=caption.final, start=round(caption.start, 3),
            end=round(caption.end, 3), language=caption.language, skipped=caption.skipped))
        if not caption.skipped:  # a skipped-speech marker is not a caption of that speech: no latency to time
            metrics.caption_sent(caption.final, caption.end, room.room_time())
        if state.router is None or not caption.final:
            return
        self._spawn(metrics.timed_translation(state.router.on_final_caption(caption)))
        if caption.language not in state.router.source_languages:
            state.router.source_languages.add(caption.language)
            self._offer_languages(room, state)

    def _whisper_english(self, room: Room, state: RoomLanguages, caption: Caption) -> None:
        if not room.ended and state.router is not None:
            self._spawn(metrics.timed_translation(state.router.on_whisper_translation(caption)))

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
            speaker.stream.set_english(wants_english)

    def _wants_english(self, state: RoomLanguages) -> bool:
        """Whisper's own English translation costs a decode per final; run it only while someone wants it."""
        return (self.transcriber is not None and self.transcriber.multilingual and state.router is not None
                and "en" in state.router.choices.values())

    def _offer_languages(self, room: Room, state: RoomLanguages) -> None:
        assert state.router is not None
        offered = state.router.reachable_targets()
        if offered != state.offered:
            state.offered = offered
            room.broadcast_event(messages.SubtitleLanguages(languages=offered))

    def _send_subtitle(self, room: Room, listener_id: str, subtitle: Subtitle) -> None:
        listener = room.participants.get(listener_id)
        if listener is not None:
            listener.send_event(messages.Subtitle(
                segment_id=str(subtitle.segment_id), language=subtitle.language, text=subtitle.text,
                source_language=subtitle.source_language))

    def _tell_missing(self, room: Room, listener_id: str, err: NoTranslationModel) -> None:
        listener = room.participants.get(listener_id)
        state = self.rooms.get(room)
        if listener is not None and state is not None and state.router is not None:
            listener.send_event(messages.SubtitleStatus(language=state.router.choice_of(listener_id),
                                                        available=False, message=str(err)))

    # --- housekeeping ------------------------------------------------------------------------

    def _spawn(self, work: Awaitable[None]) -> None:
        task = asyncio.ensure_future(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def close(self) -> None:
        """Stop taking audio, let the transcriber finish what was said (bounded: TranscriberProcess drops what
        it cannot decode within its shutdown grace; cancelling this stops it at once), then stop."""
        for state in self.rooms.values():
            for speaker in state.speakers.values():
                speaker.detach()  # the transcriber finalises every open stream as it closes
        self.rooms.clear()
        if self.transcriber is not None:
            await self.transcriber.close()
        if self._tasks:  # streams closed earlier (people who left): settled by the transcriber's close
            await asyncio.gather(*self._tasks, return_exceptions=True)
