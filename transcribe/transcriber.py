"""What a room needs from transcription: one stream per speaker, Opus in, captions out to that stream's owner.

Two implementations share this interface: `LocalTranscriber` runs the model in this process (tests,
benchmarks, the worker itself) and `transcribe.process.TranscriberProcess` runs a `LocalTranscriber` in a
separate, lower-priority process so Whisper never competes with forwarding for the event loop.

Each stream has its own outputs: `on_caption` (partials and finals, in the speaker's language) and
`on_english` (Whisper's English translation of a non-English final, same segment id), so a caption goes
straight to the room that opened the stream. Speaker names never enter transcription: the room adds them.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Protocol

import numpy as np

from transcribe.events import Caption
from transcribe.opus import SAMPLE_RATE, OpusDecoder
from transcribe.service import CaptionService
from transcribe.stream import SpeakerStream

CaptionSink = Callable[[Caption], None]

# SpeakerStream feeds a gap between pushes (Opus DTX: one packet per 400 ms of silence) as silence, but its
# clock only moves when audio arrives: a muted or paused microphone sends nothing, and the utterance would
# stay open until they spoke again. So a stream whose packets stop is given silence as time passes, up to
# MAX_FILL_S: enough to end an utterance (the end-pointer waits 0.6 s), never a long stretch.
MAX_FILL_S = 1.0
IDLE_AFTER_S = 0.5  # longer than DTX's 400 ms between packets: only a real stop counts
IDLE_CHECK_S = 0.25


class TranscriberStream(Protocol):
    def push_opus(self, payload: bytes, room_time: float) -> None:
        """One Opus packet that arrived at `room_time` (seconds). Never waits."""

    def set_language(self, language: str | None) -> None: ...

    def set_english(self, wanted: bool) -> None:
        """Whether non-English finals are followed by Whisper's English (costs a decode per final)."""

    def set_dominant(self, dominant: bool) -> None:
        """Whether the speaker is the room's dominant speaker: decoded first when decoding falls behind."""

    async def close(self) -> None:
        """Finalise what was said so far, then stop."""


class Transcriber(Protocol):
    @property
    def multilingual(self) -> bool: ...

    def open_stream(self, speaker_id: str, language: str | None, *, english: bool,
                    on_caption: CaptionSink, on_english: CaptionSink) -> TranscriberStream: ...

    async def stats(self) -> dict[str, int | float]: ...

    async def close(self) -> None: ...


def split_by_task(on_caption: CaptionSink, on_english: CaptionSink) -> CaptionSink:
    """SpeakerStream emits Whisper's English on its caption output marked task="translate": part them here."""
    def emit(caption: Caption) -> None:
        (on_english if caption.task == "translate" else on_caption)(caption)
    return emit


class LocalStream:
    def __init__(self, stream: SpeakerStream, clock: Callable[[], float] = time.monotonic) -> None:
        self._stream = stream
        self._decoder = OpusDecoder()
        self._clock = clock
        self._next_room_time: float | None = None  # where the audio pushed so far ends
        self._last_arrival = 0.0
        self._filled = 0.0  # silence added since the last packet

    def push_opus(self, payload: bytes, room_time: float) -> None:
        pcm = self._decoder.decode(payload)
        if not len(pcm):
            return
        self._stream.push(pcm, room_time)
        self._next_room_time = room_time + len(pcm) / SAMPLE_RATE
        self._last_arrival = self._clock()
        self._filled = 0.0

    def idle_check(self) -> None:
        """Called periodically: a stream whose packets stopped gets its silence now, as time passes."""
        waited = self._clock() - self._last_arrival
        if self._next_room_time is not None and waited > IDLE_AFTER_S:
            self._fill_silence(min(waited, MAX_FILL_S) - self._filled)

    def _fill_silence(self, seconds: float) -> None:
        assert self._next_room_time is not None
        samples = int(seconds * SAMPLE_RATE)
        if samples >= SAMPLE_RATE // 100:
            self._stream.push(np.zeros(samples, dtype=np.int16), self._next_room_time)
            self._next_room_time += samples / SAMPLE_RATE
            self._filled += samples / SAMPLE_RATE

    def set_language(self, language: str | None) -> None:
        self._stream.set_language(language)

    def set_english(self, wanted: bool) -> None:
        self._stream.also_translate_to_english = wanted

    def set_dominant(self, dominant: bool) -> None:
        self._stream.set_dominant(dominant)

    @property
    def decode_errors(self) -> int:
        return self._decoder.decode_errors

    @property
    def closed(self) -> bool:
        return self._stream.closed

    async def close(self) -> None:
        await self._stream.close()


class LocalTranscriber:
    """The model in this process; streams decode Opus here and push to `SpeakerStream`s."""

    def __init__(self, service: CaptionService) -> None:
        self.service = service
        self._streams: set[LocalStream] = set()
        self._ticker: asyncio.Task[None] | None = None

    @property
    def multilingual(self) -> bool:
        return self.service.multilingual

    def open_stream(self, speaker_id: str, language: str | None, *, english: bool,
                    on_caption: CaptionSink, on_english: CaptionSink) -> LocalStream:
        stream = LocalStream(self.service.open_stream(speaker_id, "", language, also_translate_to_english=english,
                                                      on_caption=split_by_task(on_caption, on_english)))
        self._streams.add(stream)
        if self._ticker is None:
            self._ticker = asyncio.ensure_future(self._tick())
        return stream

    async def _tick(self) -> None:
        while True:
            await asyncio.sleep(IDLE_CHECK_S)
            for stream in list(self._streams):
                if stream.closed:
                    self._streams.discard(stream)
                else:
                    stream.idle_check()

    async def stats(self) -> dict[str, int | float]:
        return self.service.stats()

    async def close(self) -> None:
        if self._ticker is not None:
            self._ticker.cancel()
        await self.service.close()
