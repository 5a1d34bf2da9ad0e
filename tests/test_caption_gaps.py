"""Gaps in a speaker's audio (Opus DTX, a muted microphone) end the utterance on time, and say nothing.

Opus DTX sends one 20 ms packet per 400 ms of silence; a muted or paused microphone sends nothing at all.
The end-pointer counts silence in samples: without the gaps fed as silence, a DTX speaker's final came
~4.8 s after they stopped, and a speaker muted mid-sentence never got one. Through a real room here;
SpeakerStream's own gap rule is tested alone in test_transcribe_real_speech.py.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from pathlib import Path

import numpy as np
import pytest
from faster_whisper import WhisperModel

from peerwell.captioning import CaptionsObserver
from sfu.contrib.client import RoomClient, encode_opus_clip, opus_silence_frame
from tests.conftest import RunningServer, start_server, wait_for
from tests.support.speech import espeak, load_48k, to_int16, wer
from transcribe.service import CaptionService
from transcribe.transcriber import IDLE_AFTER_S, MAX_FILL_S, LocalStream, LocalTranscriber

SENTENCE = "I slept better this week, and walking in the morning helps me a lot."


class RecordingStream:
    """Stands in for SpeakerStream in the pure test: records what LocalStream pushes (no model needed)."""

    closed = False

    def __init__(self) -> None:
        self.pushes: list[tuple[float, int, bool]] = []  # (room time, samples, all zeros)

    def push(self, pcm: np.ndarray, room_time: float) -> None:
        self.pushes.append((round(room_time, 3), len(pcm), not pcm.any()))


def test_a_stream_whose_packets_stop_gets_silence_as_time_passes_up_to_a_limit() -> None:
    now = [100.0]
    recorder = RecordingStream()
    stream = LocalStream(recorder, clock=lambda: now[0])  # type: ignore[arg-type]
    packet = encode_opus_clip(seconds=0.1)[2]
    stream.push_opus(packet, 10.0)
    stream.push_opus(opus_silence_frame(), 10.42)  # a DTX gap: SpeakerStream fills that one itself
    assert [(p[0], p[1]) for p in recorder.pushes] == [(10.0, 960), (10.42, 960)]
    recorder.pushes.clear()
    now[0] += IDLE_AFTER_S / 2  # DTX's 400 ms between packets is not a stop
    stream.idle_check()
    assert recorder.pushes == []
    now[0] += IDLE_AFTER_S  # a muted microphone: nothing comes
    stream.idle_check()
    first = recorder.pushes[0]
    assert first[0] == 10.44 and first[2] and first[1] == pytest.approx(1.5 * IDLE_AFTER_S * 48000, abs=1)
    now[0] += 10.0
    stream.idle_check()
    stream.idle_check()
    assert sum(p[1] for p in recorder.pushes) == int(MAX_FILL_S * 48000)
    recorder.pushes.clear()
    stream.push_opus(packet, 30.0)  # speaking again: pushed as it is (SpeakerStream ends any open utterance)
    assert [(p[0], p[1]) for p in recorder.pushes] == [(30.0, 960)]


@pytest.fixture
async def server(whisper_base: WhisperModel) -> AsyncIterator[RunningServer]:
    observer = CaptionsObserver(LocalTranscriber(CaptionService(whisper_base)), None)
    runner, running = await start_server(observers=[observer])
    yield running
    await runner.cleanup()
    await observer.close()


def stamp(event: dict) -> None:
    event["_arrived"] = time.monotonic()


def finals_of(listener: RoomClient, speaker: RoomClient) -> list[dict]:
    return [e for e in listener.events if e.get("type") == "caption" and e["final"]
            and e["speaker_id"] == speaker.participant_id]


@pytest.mark.model
async def test_a_dtx_speaker_gets_the_final_soon_after_speaking_and_no_text_for_silence(
        server: RunningServer, tmp_path: Path) -> None:
    speech = encode_opus_clip(to_int16(load_48k(espeak(SENTENCE, "en", tmp_path))))
    ended: list[float] = []
    speaker: RoomClient

    def talking() -> bool:
        track = speaker.audio_track
        if track is not None and track.sent < len(speech):
            return True
        if not ended:
            ended.append(time.monotonic())
        return False

    listener = RoomClient(server.ws_url, "gaps", "Listener", on_event=stamp)
    speaker = RoomClient(server.ws_url, "gaps", "Speaker", audio_frames=speech, loop_audio=False,
                         talking=talking, silence_frame=opus_silence_frame())
    quiet = RoomClient(server.ws_url, "gaps", "Quiet", audio_frames=speech, talking=lambda: False,
                       silence_frame=opus_silence_frame())  # DTX from the start: only the 3-byte packets
    for client in (listener, speaker, quiet):
        await client.join()
    try:
        await wait_for(lambda: finals_of(listener, speaker), timeout=40)
        final = finals_of(listener, speaker)[-1]
        assert wer(SENTENCE, " ".join(f["text"] for f in finals_of(listener, speaker)), "en") <= 0.35
        # Filled gaps let the end-pointer see the silence: ~0.8 s here; 4.8 s when DTX gaps were not filled.
        assert ended and final["_arrived"] - ended[0] < 2.5, final["_arrived"] - ended[0]
        assert not [e for e in finals_of(listener, quiet) if e["text"].strip()]
        room = server.rooms.rooms["gaps"]
        assert room.participants[quiet.participant_id].media.publications["audio"].frames_received > 10
    finally:
        for client in (quiet, speaker, listener):
            await client.leave()


@pytest.mark.model
async def test_a_speaker_muted_mid_sentence_gets_a_final_without_speaking_again(
        server: RunningServer, tmp_path: Path) -> None:
    speech = encode_opus_clip(to_int16(load_48k(espeak(SENTENCE + " " + SENTENCE, "en", tmp_path))))
    listener = RoomClient(server.ws_url, "mute", "Listener", on_event=stamp)
    speaker = RoomClient(server.ws_url, "mute", "Speaker", audio_frames=speech, loop_audio=True)
    await listener.join()
    await speaker.join()
    try:
        room = server.rooms.rooms["mute"]
        await wait_for(lambda: any(e.get("type") == "caption" and e["speaker_id"] == speaker.participant_id
                                   for e in listener.events), timeout=30)
        # The facilitator mutes mid-sentence: no more packets reach transcription.
        muted_at = time.monotonic()
        room.set_paused(room.participants[speaker.participant_id], "audio", True)
        await wait_for(lambda: finals_of(listener, speaker), timeout=15)
        assert finals_of(listener, speaker)[0]["_arrived"] - muted_at < 4.0
    finally:
        await speaker.leave()
        await listener.leave()
