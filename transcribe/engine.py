"""The model call: one Whisper decode of an audio buffer, run in a worker thread.

Everything here is stateless apart from the shared WhisperModel, which CTranslate2 lets several threads
use at once (up to the model's num_workers) and which releases the GIL while it computes.

With a ShortWindowWhisperModel (transcribe/whisper_adapter.py) a decode encodes only the buffer plus a
short pad; one that looks looped is decoded again with the full 30 s window. Requests without word
timestamps (Whisper's translate task) cannot be checked that way, so they always use the full window.
Language detection, when the request names no language, runs once on the full window first.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

import numpy as np

from transcribe.audio import WHISPER_RATE
from transcribe.commit import Word
from transcribe.events import Task
from transcribe.whisper_adapter import ShortWindowWhisperModel, is_multilingual, looks_looped, quiet_library_logs

if TYPE_CHECKING:
    from faster_whisper import WhisperModel
    from faster_whisper.transcribe import Segment, TranscriptionInfo


# Whisper knows classical languages nobody speaks in a group; on a few seconds of Spanish or Italian base
# sometimes ranks Latin first. Detection picks the most likely language people actually speak.
NOT_CONVERSATIONAL = frozenset({"la", "sa"})  # Latin, Sanskrit


def spoken_language(ranked: list[tuple[str, float]]) -> tuple[str, float]:
    """The most probable language from Whisper's ranking (best first) that people speak today."""
    return next(((code, p) for code, p in ranked if code not in NOT_CONVERSATIONAL), ranked[0])


@dataclass(frozen=True)
class DecodeRequest:
    audio: np.ndarray  # float32, 16 kHz mono, an owned copy
    task: Task = "transcribe"
    language: str | None = None  # None: let Whisper detect it
    prompt: str | None = None  # recent committed text of this speaker (context, not to be transcribed)
    beam_size: int = 1
    temperatures: tuple[float, ...] = (0.0,)
    word_timestamps: bool = True
    max_new_tokens: int | None = None  # None: scaled to the audio length (see token_budget)
    # A short-window decode that looks looped is decoded again with the full window (1-2.5 s on 2 cores
    # under load). A partial need not be: the next one comes within a second, so it is reported looped.
    redo_if_looped: bool = True


@dataclass(frozen=True)
class DecodedSegment:
    start: float  # seconds from the start of the request's audio
    end: float
    text: str
    words: tuple[Word, ...]
    no_speech_prob: float
    avg_logprob: float
    compression_ratio: float


@dataclass(frozen=True)
class Hypothesis:
    segments: tuple[DecodedSegment, ...]
    language: str
    language_probability: float
    audio_seconds: float
    decode_seconds: float
    window_retried: bool = False  # the short-window decode looked looped and was redone with the full window
    looped: bool = False  # it looked looped and was not redone (``redo_if_looped`` False): no segments


def token_budget(audio_seconds: float) -> int:
    """Upper bound on tokens for this much speech. Garbage decodes (noise, wrong language) otherwise run
    to Whisper's 448-token limit and cost 10x a normal decode. Fast speech is ~4-5 tokens/s in English,
    more in scripts with long byte-level tokens; 16/s leaves room. Capped so that a 224-token prompt fits.
    """
    return min(220, 24 + int(16 * audio_seconds))


_Decoded = tuple[tuple[DecodedSegment, ...], "TranscriptionInfo"]


class WhisperEngine:
    """Turns DecodeRequests into Hypotheses with one shared faster-whisper model."""

    def __init__(self, model: WhisperModel) -> None:
        self.model = model
        self.multilingual = is_multilingual(model)
        quiet_library_logs()

    def decode(self, req: DecodeRequest) -> Hypothesis:
        started = time.perf_counter()
        model = self.model
        if not (req.word_timestamps and isinstance(model, ShortWindowWhisperModel)):
            return self._hypothesis(req, *self._transcribe(req, full_window=True), started)
        detected: tuple[str, float] | None = None
        if self._language(req) is None:
            # Language detection needs the full window (with a short one base heard Spanish as Latin);
            # the transcription that follows does not.
            with model.full_window():
                _, _, ranked = model.detect_language(req.audio)
            language, probability = spoken_language(ranked)
            detected = (language, float(probability))
            req = replace(req, language=language)
        decoded, info = self._transcribe(req, full_window=False)
        looped = looks_looped([w.start for seg in decoded for w in seg.words], len(req.audio) / WHISPER_RATE)
        if looped and not req.redo_if_looped:
            return self._hypothesis(req, (), info, started, looped=True, detected=detected)
        if looped:
            decoded, info = self._transcribe(req, full_window=True)
        return self._hypothesis(req, decoded, info, started, window_retried=looped, detected=detected)

    def _transcribe(self, req: DecodeRequest, *, full_window: bool) -> _Decoded:
        model = self.model
        if full_window and isinstance(model, ShortWindowWhisperModel):
            with model.full_window():  # the segment generator encodes lazily: consume it inside
                return self._run(req)
        return self._run(req)

    def _run(self, req: DecodeRequest) -> _Decoded:
        language = self._language(req)
        segments, info = self.model.transcribe(
            req.audio,
            language=language,
            task=req.task if self.multilingual else "transcribe",
            beam_size=req.beam_size,
            best_of=max(req.beam_size, 1),
            temperature=list(req.temperatures),
            initial_prompt=req.prompt or None,
            # One buffer (< 30 s) per call: no cross-window conditioning, which is what loops on silence.
            condition_on_previous_text=False,
            word_timestamps=req.word_timestamps,
            vad_filter=False,  # our own streaming VAD already chose the audio
            without_timestamps=False,
            log_progress=False,
            max_new_tokens=req.max_new_tokens or token_budget(len(req.audio) / WHISPER_RATE),
        )
        return tuple(self._segment(s) for s in segments), info  # the generator does the decoding work

    def _language(self, req: DecodeRequest) -> str | None:
        return req.language if self.multilingual else "en"

    @staticmethod
    def _hypothesis(
        req: DecodeRequest,
        decoded: tuple[DecodedSegment, ...],
        info: TranscriptionInfo,
        started: float,
        *,
        window_retried: bool = False,
        looped: bool = False,
        detected: tuple[str, float] | None = None,
    ) -> Hypothesis:
        language, probability = detected or (info.language, float(info.language_probability))
        return Hypothesis(
            segments=decoded,
            language=language,
            language_probability=probability,
            audio_seconds=len(req.audio) / WHISPER_RATE,
            decode_seconds=time.perf_counter() - started,
            window_retried=window_retried,
            looped=looped,
        )

    @staticmethod
    def _segment(seg: Segment) -> DecodedSegment:
        words = tuple(Word(float(w.start), float(w.end), str(w.word), float(w.probability)) for w in seg.words or ())
        return DecodedSegment(
            start=float(seg.start),
            end=float(seg.end),
            text=str(seg.text),
            words=words,
            no_speech_prob=float(seg.no_speech_prob),
            avg_logprob=float(seg.avg_logprob),
            compression_ratio=float(seg.compression_ratio),
        )
