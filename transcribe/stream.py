"""One speaker's caption pipeline: 48 kHz audio in, Caption events out.

Runs entirely on the event loop except the Whisper calls, which the scheduler sends to worker threads.
Per utterance (VAD start to VAD end): every ~0.6 s of new audio the buffer is re-decoded and fed to the
LocalAgreement policy; committed words plus the tentative tail go out as a partial. When the buffer
grows long, the committed text up to a pause or a Whisper segment boundary is sent as a final and cut from
the buffer (a long monologue becomes several captions, each with its own id). At end of speech the rest is
decoded once more and sent as the final.

Every decode sees up to ``left_context_s`` of the audio before its buffer (the previous utterance, or the
part a long one was cut off at) and drops the words said there: Whisper hears a short utterance as it
would offline, without the text prompt that steered it into inventing words (docs/architecture.md). A long
utterance ends at a shorter pause than a short one (VadConfig.long_min_silence_ms), and is cut at committed
pauses: finals come at the speaker's breaths.

Audio lives only in memory and only as long as a decode may need it.
"""

from __future__ import annotations

import bisect
import logging
import time
import uuid
from collections import Counter, deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from transcribe.audio import WHISPER_RATE, Resampler, to_float32_mono
from transcribe.commit import LocalAgreement, Word, completed_boundary, join_words
from transcribe.engine import DecodeRequest, Hypothesis
from transcribe.events import Caption
from transcribe.filters import GateConfig, SegmentScore, rejection_reason, without_trailing_guesses
from transcribe.scheduler import DecodeScheduler, Job, JobKind, Prepared
from transcribe.vad import WINDOW, EndPointer, SpeechEnd, SpeechStart, StreamingVad, VadConfig

if TYPE_CHECKING:
    from transcribe.engine import DecodedSegment

log = logging.getLogger(__name__)

_MIN_WORD_S = 0.05  # a word ending less than this after speech began cannot be one said in that speech


@dataclass(frozen=True)
class StreamConfig:
    input_rate: int = 48_000
    update_interval_s: float = 0.6  # re-decode cadence while someone speaks (stretched under load)
    min_partial_audio_s: float = 0.6  # no partial before this much audio: too little context to agree on
    min_detect_audio_s: float = 2.0  # language auto-detection on less audio than this is mostly noise
    # Past this, cut the buffer at a committed segment boundary or a short pause (``cut_pause_ms``): a
    # monologue without pauses long enough to end it (vad.long_min_silence_ms) gets finals every few
    # seconds, and partial decodes stay short (left context keeps the cut harmless).
    trim_after_s: float = 6.0
    # Non-speech this long inside an utterance is a place to cut between words: no word is split there.
    # Once the words before such a pause are committed and make this much audio, they are sent as a final
    # (no decode needed); a cut that waited for a 6 s buffer and for Whisper to end a segment came 3-5 s
    # after the words it finalised. Not sooner than 4 s, like vad.long_speech_ms (short finals translate
    # badly: their Whisper-English is decoded from their own audio).
    cut_pause_ms: int = 96
    pause_cut_after_s: float = 4.0
    # Once the buffer is long (trim_after_s), an earlier pause will do: a long sentence whose only pause
    # came 3.7 s in otherwise waited for Whisper to end a segment (its final 2.5-3 s after its words).
    long_pause_cut_after_s: float = 2.0
    # Committed words ending at most this long before a pause's first silent window reach it (Whisper's
    # word ends jitter and Silero lags); see pause_within.
    pause_reach_s: float = 0.3
    # Audio just before the buffer (the end of the previous utterance, or what a long one was cut off at)
    # decoded with it and its words dropped: on its own a short utterance lacks the context offline
    # Whisper has, and base mishears it ("Everfair old" for "ever failed", "We're all" for "We were all").
    # Audio, not text: earlier text as a prompt made Whisper continue it (see prompt_chars).
    left_context_s: float = 3.0
    # ...but a long buffer carries its own context: the context is cut so that the two make at most
    # ``context_with_buffer_s``, keeping ``min_left_context_s``. With 3 s before a 4.5 s sentence, base wrote
    # "the breathing exercise helps" as "I'm help" (espeak monologue; 0-2.2 s of context gave "helps"),
    # and every partial of a long buffer decoded 3 s of audio it then threw away.
    context_with_buffer_s: float = 6.0
    min_left_context_s: float = 1.0
    max_buffer_s: float = 12.0  # hard cap: cut at the last committed word
    # While decoding cannot keep up and this speaker is not the dominant one, their partials are shed, so
    # nothing cuts a long buffer at committed words: the utterance is ended here instead, so its final is
    # small enough to decode (or to skip) within the latency bound.
    overload_cut_s: float = 6.0
    # Earlier finals given to Whisper as a prompt steer it into continuing them: on real speech it then
    # invented words in the pause after an utterance ("Yeah.", "You", "2.") and looped on short buffers
    # (tests/test_transcribe_real_speech.py). Off; a positive value gives that many characters as context.
    prompt_chars: int = 0
    lock_language_probability: float = 0.8  # auto-detect: keep the language once this sure...
    lock_language_after_s: float = 3.0  # ...or once this much audio was used to detect it
    partial_beam_size: int = 1  # partials are provisional: greedy is ~2x cheaper
    final_beam_size: int = 5
    final_temperatures: tuple[float, ...] = (0.0, 0.2, 0.4)  # fallback out of repetition loops
    gap_s: float = 1.0  # a jump in room_time this big (muted mic, DTX) ends the utterance
    # Start the final decode after this much silence, while the end-pointer still waits for its full
    # window; kept if the silence lasts (same audio, same result), dropped if speech resumes. Only when a
    # worker is free, so it never delays anyone else. 0 turns it off.
    speculate_after_ms: int = 250
    vad: VadConfig = field(default_factory=VadConfig)
    gate: GateConfig = field(default_factory=GateConfig)


class _Speculation:
    """A final decode started before the end of speech was certain."""

    def __init__(self) -> None:
        self.prepared_end: int | None = None  # buffer end (stream samples) the decode saw
        self.result: tuple[Hypothesis | None, BaseException | None, _Span | None] | None = None
        self.claimed = False  # the utterance ended and this decode is its final
        self.shed = False  # dropped as too late before it ran: no result will come


@dataclass(frozen=True)
class _Span:
    """Where a decode's audio sits on the stream clock."""

    offset: float  # stream seconds of the decoded audio's first sample
    context_end: float  # stream seconds: words centred before this belong to the context...
    speech_start: float  # ...unless they end after the buffer's speech began (then they are the buffer's)

    def is_new(self, start: float, end: float) -> bool:
        """Whisper stretches the word on one side of a pause over it; where a word ends or lies says which
        side it is on. ``start``/``end`` in stream seconds."""
        return (start + end) / 2 >= self.context_end or end >= self.speech_start + _MIN_WORD_S


class _Utterance:
    """Speech from VAD start to VAD end; its buffer holds only the audio not yet sent as a final."""

    def __init__(self, segment_id: str, start_sample: int, origin_room_time: float) -> None:
        self.segment_id = segment_id
        self.origin_sample = start_sample  # stream sample clock <-> room time anchor for this utterance
        self.origin_room_time = origin_room_time
        self.buffer_start = start_sample
        self.context = np.zeros(0, dtype=np.float32)  # audio right before buffer_start, decoded as context
        # Middle of the pause between the context's speech and this buffer's, and where this buffer's
        # speech starts (stream samples); see _Span.is_new.
        self.context_end = start_sample
        self.speech_start: int | None = start_sample
        self.chunks: list[np.ndarray] = []
        self.samples = 0
        self.agreement = LocalAgreement()
        self.language: str | None = None  # locked language (auto-detect mode)
        self.detected_language: str | None = None  # latest detection, locked or not
        self.ended = False
        self.requested_at = 0  # buffer end (stream samples) when the last partial was requested
        self.coarsened_at = 0  # buffer end when a partial update was last skipped for load
        self.last_partial: str | None = None
        self.vad_mean_prob = 1.0
        self.speculation: _Speculation | None = None
        self.pauses: list[Pause] = []  # inside the buffer, in order
        self.quiet_from: int | None = None  # where the current run of non-speech windows began
        self.spoken_until: float | None = None  # perf_counter time its speech ended (the latency bound's origin)

    @property
    def buffer_end(self) -> int:
        return self.buffer_start + self.samples

    def append(self, audio: np.ndarray) -> None:
        self.chunks.append(audio)
        self.samples += len(audio)

    def audio(self) -> np.ndarray:
        if len(self.chunks) > 1:
            self.chunks = [np.concatenate(self.chunks)]
        return self.chunks[0].copy() if self.chunks else np.zeros(0, dtype=np.float32)

    def cut_before(self, sample: int, keep_context: int = 0, pause: Pause | None = None) -> None:
        drop = min(max(0, sample - self.buffer_start), self.samples)
        if drop:
            audio = self.audio()
            rest = audio[drop:]
            if keep_context:
                self.context = np.concatenate((self.context, audio[:drop]))[-keep_context:]
            self.chunks, self.samples, self.buffer_start = [rest], len(rest), self.buffer_start + drop
            self.pauses = [p for p in self.pauses if p.middle > self.buffer_start]
            if pause is not None:  # as between utterances: a word stretched over the pause is on its side
                self.context_end, self.speech_start = pause.middle, pause.end
            else:  # a cut inside speech has no pause for Whisper to stretch a word over: the centre decides
                self.context_end, self.speech_start = self.buffer_start, None

    def cut_after(self, sample: int) -> None:
        keep = min(max(0, sample - self.buffer_start), self.samples)
        self.chunks = [self.audio()[:keep]]
        self.samples = keep

    def room_time(self, stream_seconds: float) -> float:
        return self.origin_room_time + stream_seconds - self.origin_sample / WHISPER_RATE


class SpeakerStream:
    """Captions for one participant. Create with CaptionService.open_stream; push audio from the loop."""

    def __init__(
        self,
        *,
        speaker_id: str,
        speaker_name: str,
        language: str | None,
        also_translate_to_english: bool,
        scheduler: DecodeScheduler,
        emit: Callable[[Caption], None],
        counters: Counter[str],
        config: StreamConfig,
        on_closed: Callable[[SpeakerStream], None],
    ) -> None:
        self.speaker_id = speaker_id
        self.speaker_name = speaker_name
        self.language = language
        self.also_translate_to_english = also_translate_to_english
        self._scheduler = scheduler
        self._emit = emit
        self._counters = counters
        self._config = config
        self._on_closed = on_closed
        self._multilingual = scheduler.engine.multilingual
        self._token = uuid.uuid4().hex[:8]  # ids stay unique if the same speaker reconnects
        self._segments = 0
        self._resampler = Resampler(config.input_rate, WHISPER_RATE)
        self._vad = StreamingVad()
        self._endpointer = EndPointer(config.vad)
        self._context_samples = int(config.left_context_s * WHISPER_RATE)
        self._cut_pause_samples = config.cut_pause_ms * WHISPER_RATE // 1000
        history = max(config.vad.pre_roll_ms * WHISPER_RATE // 1000, self._context_samples)
        # The last few seconds of audio (pre-roll and left context); nothing older is kept.
        self._recent: deque[tuple[int, np.ndarray]] = deque(maxlen=-(-history // WINDOW) + 2)
        self._last_voiced_end: int | None = None  # stream sample where the previous utterance's speech ended
        self._last_language: str | None = None  # the language the previous utterance locked (auto-detect)
        self._window_index = 0
        self._samples_in = 0  # 16 kHz samples produced so far: the stream's own clock
        self._anchors: deque[tuple[int, float]] = deque(maxlen=256)  # (sample, room_time) per push
        self._next_room_time: float | None = None
        self._active: _Utterance | None = None
        self._context = ""  # recent committed text, the decoding prompt
        self._closed = False

    # -- public interface ---------------------------------------------------------------------------
    def push(self, pcm: np.ndarray, room_time: float) -> None:
        """Add ~20 ms of 48 kHz mono audio that started at ``room_time``. Never waits; cheap (see stats)."""
        if self._closed:
            return
        started = time.perf_counter()
        samples = to_float32_mono(pcm)
        rate = self._config.input_rate
        expected = self._next_room_time
        missing = 0.0 if expected is None else room_time - expected
        if missing > self._config.gap_s:
            if self._active is not None:
                # Audio stopped arriving (mute, loss): what we have is the whole utterance.
                self._counters["gap_ends"] += 1
                self._process(self._vad.feed(np.zeros(0, dtype=np.float32), flush=True))
                self._end_active(self._endpointer.force_end())
        elif expected is not None and missing * rate > len(samples) / 2:
            # Opus DTX sends one 20 ms frame per 400 ms of silence: the silence it did not send is fed as
            # silence, or the end-pointer would count only the frames (600 ms of them take 12 s).
            self._counters["gap_fill_ms"] += round(missing * 1000)
            self._ingest(np.zeros(round(missing * rate), dtype=np.float32), expected)
        self._next_room_time = room_time + len(samples) / rate
        self._ingest(samples, room_time)
        elapsed = time.perf_counter() - started
        self._counters["pushes"] += 1
        self._counters["push_us_total"] += int(elapsed * 1e6)
        self._counters["push_us_max"] = max(self._counters["push_us_max"], int(elapsed * 1e6))

    def _ingest(self, samples: np.ndarray, room_time: float) -> None:
        audio16 = self._resampler.process(samples)
        self._anchors.append((self._samples_in, room_time))
        self._samples_in += len(audio16)
        self._process(self._vad.feed(audio16))

    def set_language(self, language: str | None) -> None:
        """Fix the spoken language (None: detect per utterance). Applies from the next decode."""
        self.language = language
        self._last_language = None
        if self._active is not None:
            self._active.language = None

    def set_speaker_name(self, name: str) -> None:
        self.speaker_name = name

    def set_dominant(self, dominant: bool) -> None:
        """The room's dominant speaker: decoded first under load, and keeps partials while others lose theirs."""
        self._scheduler.set_dominant(self, dominant)

    async def close(self) -> None:
        """Finalise pending speech, wait for its captions, then release everything."""
        if self._closed:
            return
        self._process(self._vad.feed(np.zeros(0, dtype=np.float32), flush=True))
        self._end_active(self._endpointer.force_end())
        self._closed = True
        await self._scheduler.wait_idle(self)
        self._scheduler.mark_speaking(self, False)
        self._recent.clear()
        self._scheduler.set_dominant(self, False)
        self._on_closed(self)

    @property
    def closed(self) -> bool:
        return self._closed

    # -- audio path ---------------------------------------------------------------------------------
    def _room_time_at(self, sample: int) -> float:
        if not self._anchors:
            return sample / WHISPER_RATE
        samples = [a[0] for a in self._anchors]
        i = max(0, bisect.bisect_right(samples, sample) - 1)
        anchor_sample, anchor_time = self._anchors[i]
        return anchor_time + (sample - anchor_sample) / WHISPER_RATE

    def _process(self, scored: Sequence[tuple[np.ndarray, float]]) -> None:
        for window, prob in scored:
            index = self._window_index
            self._window_index += 1
            event = self._endpointer.step(prob)
            if isinstance(event, SpeechStart):
                self._start_utterance(event)
            if self._active is not None and not self._active.ended:
                self._active.append(window)
                self._active.vad_mean_prob = self._endpointer.mean_prob
                self._note_pause(self._active, index * WINDOW, prob)
            self._recent.append((index * WINDOW, window))
            if isinstance(event, SpeechEnd):
                self._end_active(event)
            elif self._active is not None and self._overload_cut(self._active):
                self._counters["overload_cuts"] += 1
                self._end_active(self._endpointer.force_end())
            elif self._active is not None:
                self._maybe_speculate(self._active)
                self._maybe_request_partial(self._active)

    def _overload_cut(self, utt: _Utterance) -> bool:
        return utt.samples >= self._config.overload_cut_s * WHISPER_RATE and self._scheduler.sheds_partials(self)

    def _note_pause(self, utt: _Utterance, window_start: int, prob: float) -> None:
        if prob < self._config.vad.threshold:
            if utt.quiet_from is None:
                utt.quiet_from = window_start
            return
        if utt.quiet_from is not None and window_start - utt.quiet_from >= self._cut_pause_samples:
            utt.pauses.append(Pause(utt.quiet_from, window_start))
        utt.quiet_from = None

    def _new_segment_id(self) -> str:
        self._segments += 1
        return f"{self._token}-{self._segments}"

    def _start_utterance(self, start: SpeechStart) -> None:
        start_sample = start.sample
        utt = _Utterance(self._new_segment_id(), start_sample, self._room_time_at(start_sample))
        for window_start, window in self._recent:  # pre-roll: the onset before VAD was sure
            if window_start + WINDOW > start_sample:
                utt.append(window[max(0, start_sample - window_start) :])
        utt.buffer_start = start_sample
        utt.context = self._context_before(start_sample)
        if len(utt.context) and self._last_voiced_end is not None:
            utt.context_end = min(start_sample, (self._last_voiced_end + start.voiced_sample) // 2)
            utt.speech_start = start.voiced_sample
            # The same speaker going on after a short pause: keep the language detected for what they
            # said just before (detected afresh on a short clause, base heard "Gracias por escucharme"
            # after Spanish sentences as Italian).
            utt.language = self._last_language
        self._active = utt
        self._counters["utterances"] += 1
        self._scheduler.mark_speaking(self, True)

    def _context_before(self, start_sample: int) -> np.ndarray:
        """Recent audio before ``start_sample``, if someone spoke in it (silence alone is no context)."""
        last_end = self._last_voiced_end
        if not self._context_samples or last_end is None or start_sample - last_end >= self._context_samples:
            return np.zeros(0, dtype=np.float32)
        first = start_sample - self._context_samples
        parts = [w[max(0, first - ws) : max(0, start_sample - ws)] for ws, w in self._recent
                 if ws + WINDOW > first and ws < start_sample]
        return np.concatenate(parts) if parts else np.zeros(0, dtype=np.float32)

    def _end_active(self, end: SpeechEnd | None) -> None:
        utt = self._active
        if utt is None or end is None:
            return
        self._active = None
        # Audio arrives in real time: the speech ended as long ago as the silence heard since.
        utt.spoken_until = time.perf_counter() - max(0, self._window_index * WINDOW - end.voiced_end) / WHISPER_RATE
        self._last_voiced_end = end.voiced_end
        self._last_language = utt.language
        self._scheduler.mark_speaking(self, False)
        utt.ended = True
        utt.cut_after(end.sample)
        utt.vad_mean_prob = end.mean_prob
        if not self._endpointer.is_long_enough(end) and utt.last_partial is None:
            self._counters["utterances_too_short"] += 1
            return
        spec = utt.speculation
        # The speculative decode covers the final's audio if it started no earlier than this (a window
        # of slack: end.sample includes post-padding rounded to windows).
        covers = spec is not None and (spec.prepared_end is None or spec.prepared_end >= end.sample - WINDOW)
        if spec is not None and covers and not spec.shed:
            self._counters["finals_speculated"] += 1
            spec.claimed = True
            if spec.result is not None:
                hyp, error, span = spec.result
                self._apply_final(utt, None if error else hyp, span)
            return  # still decoding (or queued): its result becomes the final
        utt.speculation = None
        self._submit_final(utt)

    def _submit_final(self, utt: _Utterance) -> None:
        self._scheduler.submit(Job(JobKind.FINAL, self, lambda: self._prepare(utt, final=True),
                                   spoken_until=utt.spoken_until, on_shed=lambda: self._shed_final(utt)))

    def _shed_final(self, utt: _Utterance) -> None:
        """The final could no longer arrive within the latency bound: its audio is dropped. The words already
        shown stay, as a final (checked for safety like any other), followed by how many seconds of speech
        have no caption, so readers know something was missed."""
        words = self._shown_words(utt)
        if not words and utt.samples == 0:
            return
        end = utt.buffer_end / WHISPER_RATE
        gap_start = max(words[-1].end, utt.buffer_start / WHISPER_RATE) if words else utt.buffer_start / WHISPER_RATE
        skipped = round(max(0.1, end - gap_start), 1)
        self._counters["finals_skipped"] += 1
        self._counters["audio_ms_skipped"] += round(skipped * 1000)
        start = utt.room_time(words[0].start) if words else utt.room_time(gap_start)
        self._emit(Caption(segment_id=utt.segment_id, speaker_id=self.speaker_id, speaker_name=self.speaker_name,
                           text=join_words(words), final=True, start=round(start, 3),
                           end=round(max(utt.room_time(end), start), 3), language=self._caption_language(utt),
                           skipped=skipped))

    @staticmethod
    def _shown_words(utt: _Utterance) -> list[Word]:
        """Everything the partials showed and no final has carried yet (committed words and the tail)."""
        utt.agreement.finish()
        return utt.agreement.release_until(float("inf"))

    def _maybe_speculate(self, utt: _Utterance) -> None:
        cfg = self._config
        silence = self._endpointer.silence_ms
        if utt.speculation is not None:
            if silence == 0:  # speech resumed: that decode saw an unfinished sentence
                utt.speculation = None
                self._counters["speculations_dropped"] += 1
            return
        if (not cfg.speculate_after_ms or silence < cfg.speculate_after_ms or utt.samples == 0
                or not self._scheduler.has_spare_worker()):
            return
        spec = utt.speculation = _Speculation()
        spoken_until = time.perf_counter() - silence / 1000

        def shed() -> None:
            # Not claimed yet: kept (marked) so it is not tried again every window; the final is requested
            # as usual when the utterance ends.
            spec.shed = True
            if spec.claimed:
                self._shed_final(utt)

        self._scheduler.submit(Job(JobKind.FINAL, self, lambda: self._prepare_speculative(utt, spec),
                                   spoken_until=spoken_until, on_shed=shed))

    def _prepare_speculative(self, utt: _Utterance, spec: _Speculation) -> Prepared | None:
        if utt.speculation is not spec or self._closed or utt.samples == 0:
            if spec.claimed:  # ended with nothing left to decode: finish as a normal final would
                self._apply_final(utt, None, None)
            return None
        request, span = self._decode_request(utt, final=True)
        spec.prepared_end = utt.buffer_end

        def on_done(hyp: Hypothesis | None, error: BaseException | None) -> None:
            if utt.speculation is not spec:
                return  # speech resumed meanwhile; the real final will follow
            if spec.claimed:
                self._apply_final(utt, None if error else hyp, span)
            else:
                spec.result = (hyp, error, span)

        return Prepared(request, on_done)

    def _maybe_request_partial(self, utt: _Utterance) -> None:
        if utt.speculation is not None:
            return  # a final decode is already out; a partial now would only delay it
        if self._endpointer.silence_ms >= self._config.vad.min_silence_ms // 3:
            # Nothing new was said: a partial of the trailing silence would only hold the worker when
            # the final decode wants to start (measured: the main cause of late finals after speculation).
            return
        cfg = self._config
        minimum = cfg.min_partial_audio_s
        if self._decode_language(utt) is None:
            minimum = max(minimum, cfg.min_detect_audio_s)
        if utt.samples < minimum * WHISPER_RATE:
            return
        base = cfg.update_interval_s * WHISPER_RATE
        since = utt.buffer_end - utt.requested_at
        if since < base:
            return
        # A pause the buffer may be cut at, not yet settled: the decode that settles it gives a final, so it
        # comes at the base cadence and before other speakers' partials (under load partials are spaced
        # out, and a cut waiting for them came 3-4 s after its words with 4 speakers).
        cut_due = any(p.middle > utt.agreement.last_committed_end * WHISPER_RATE for p in self._cut_pauses(utt))
        if not cut_due and since < self._scheduler.partial_interval(cfg.update_interval_s) * WHISPER_RATE:
            # Decoding is behind: this update is skipped (counted once per skipped base interval).
            if utt.buffer_end - utt.coarsened_at >= base:
                utt.coarsened_at = utt.buffer_end
                self._counters["partials_coarsened"] += 1
            return
        utt.requested_at = utt.coarsened_at = utt.buffer_end
        self._counters["partials_for_cuts"] += cut_due
        self._scheduler.submit(Job(JobKind.PARTIAL, self, lambda: self._prepare(utt, final=False), urgent=cut_due))

    # -- decoding -----------------------------------------------------------------------------------
    def _decode_language(self, utt: _Utterance) -> str | None:
        if not self._multilingual:
            return "en"
        return self.language or utt.language

    def _prepare(self, utt: _Utterance, *, final: bool) -> Prepared | None:
        """Snapshot the buffer now (a worker is free), so a job that waited decodes current audio."""
        if not final and (utt.ended or self._closed):
            return None  # the final decode is coming and supersedes this partial
        if utt.samples == 0:
            if final:
                self._finalize(utt, self._shown_words(utt), None)
            return None
        request, span = self._decode_request(utt, final=final)

        def on_done(hyp: Hypothesis | None, error: BaseException | None) -> None:
            if final:
                self._apply_final(utt, hyp, span)
            elif hyp is not None and hyp.looped:
                self._counters["looped_partials_skipped"] += 1
            elif hyp is not None:
                self._apply_partial(utt, hyp, span)

        return Prepared(request, on_done)

    def _decode_request(self, utt: _Utterance, *, final: bool) -> tuple[DecodeRequest, _Span]:
        cfg = self._config
        # While decoding is behind, others' finals are decoded greedily (about half the cost of beam 5 with
        # fallbacks): a slightly rougher final in time beats a skipped one. The dominant speaker's keep theirs.
        thorough = final and not self._scheduler.sheds_partials(self)
        self._counters["finals_greedy"] += final and not thorough
        keep = max(cfg.min_left_context_s * WHISPER_RATE, cfg.context_with_buffer_s * WHISPER_RATE - utt.samples)
        context = utt.context[-int(keep) :] if keep < len(utt.context) else utt.context
        request = DecodeRequest(
            audio=np.concatenate((context, utt.audio())) if len(context) else utt.audio(),
            language=self._decode_language(utt),
            prompt=(self._context[-cfg.prompt_chars :] or None) if cfg.prompt_chars else None,
            beam_size=cfg.final_beam_size if thorough else cfg.partial_beam_size,
            temperatures=cfg.final_temperatures if thorough else (0.0,),
            redo_if_looped=final,
        )
        start = utt.buffer_start / WHISPER_RATE
        speech_start = float("inf") if utt.speech_start is None else utt.speech_start / WHISPER_RATE
        return request, _Span(start - len(context) / WHISPER_RATE, utt.context_end / WHISPER_RATE, speech_start)

    def _accepted_words(self, utt: _Utterance, hyp: Hypothesis, span: _Span) -> tuple[list[Word], list[float]]:
        """Words of segments that pass the hallucination gate, in stream seconds; and segment ends.

        Words centred in the left context were said before this buffer (and captioned already)."""
        offset = span.offset
        if self._multilingual and self.language is None:
            self._learn_language(utt, hyp)
        words: list[Word] = []
        ends: list[float] = []
        for seg in hyp.segments:
            reason = rejection_reason(_score(seg), utt.vad_mean_prob, self._config.gate)
            if reason is not None:
                self._counters["segments_rejected"] += 1
                log.debug("caption segment rejected: %s", reason)  # no text: never log what was said
                continue
            new = [Word(w.start + offset, w.end + offset, w.text, w.probability) for w in seg.words
                   if span.is_new(w.start + offset, w.end + offset)]
            if not new:
                continue
            words.extend(new)
            # A segment ends where its last word does, if Whisper's segment timestamp is earlier.
            ends.append(max([seg.end + offset, *(w.end for w in new)]))
        kept = without_trailing_guesses(words, self._config.gate)
        self._counters["trailing_guesses_dropped"] += len(words) - len(kept)
        return kept, ends

    def _learn_language(self, utt: _Utterance, hyp: Hypothesis) -> None:
        cfg = self._config
        utt.detected_language = hyp.language
        if utt.language is None and (
            hyp.language_probability >= cfg.lock_language_probability or hyp.audio_seconds >= cfg.lock_language_after_s
        ):
            utt.language = hyp.language  # later decodes skip detection (it costs an extra encoder pass)

    def _caption_language(self, utt: _Utterance) -> str:
        if not self._multilingual:
            return "en"
        return self.language or utt.language or utt.detected_language or "und"

    def _apply_partial(self, utt: _Utterance, hyp: Hypothesis, span: _Span) -> None:
        words, ends = self._accepted_words(utt, hyp, span)
        utt.agreement.update(words)
        self._maybe_split(utt, ends)
        if utt.ended:
            return  # the final is queued; a partial now would only flicker
        shown = utt.agreement.committed + utt.agreement.tail
        text = join_words(shown)
        if not text or text == utt.last_partial:
            return
        utt.last_partial = text
        self._counters["partials_emitted"] += 1
        self._send(utt.segment_id, text, False, utt, shown)

    def _maybe_split(self, utt: _Utterance, segment_ends: list[float]) -> None:
        """Long buffer: send committed text up to a pause or a segment boundary as a final, cut that audio
        off."""
        cfg = self._config
        committed_end = utt.agreement.last_committed_end
        tail = utt.agreement.tail
        pause = pause_within(self._cut_pauses(utt), committed_end * WHISPER_RATE,
                             tail[0].start * WHISPER_RATE if tail else None, cfg.pause_reach_s * WHISPER_RATE)
        if self._decode_language(utt) is None:
            pause = None  # a final cut now would carry a language still being detected
        long = utt.samples >= cfg.trim_after_s * WHISPER_RATE
        if pause is None and not long:
            return
        cut = completed_boundary(segment_ends, committed_end) if long else None
        at_pause = pause is not None and (cut is None or pause.middle / WHISPER_RATE > cut)
        if at_pause:
            cut = pause.middle / WHISPER_RATE
        if cut is None and utt.samples >= cfg.max_buffer_s * WHISPER_RATE:
            if utt.agreement.committed:
                cut = utt.agreement.last_committed_end
            else:
                # Nothing Whisper agrees on for this long (music, noise): keep only the newest audio.
                self._counters["buffer_overflows"] += 1
                utt.cut_before(utt.buffer_end - int(cfg.trim_after_s * WHISPER_RATE))
                return
        if cut is None:
            return
        if not any(w.start < cut for w in utt.agreement.committed):
            return  # nothing to send before it
        cut_sample = int(cut * WHISPER_RATE)
        released = utt.agreement.release_until(cut)
        audio = utt.audio()[: max(0, cut_sample - utt.buffer_start)]
        self._finalize(utt, released, audio)
        utt.cut_before(cut_sample, keep_context=self._context_samples, pause=pause if at_pause else None)
        utt.segment_id = self._new_segment_id()
        utt.last_partial = None
        self._counters["segments_split"] += 1
        self._counters["segments_split_at_pause"] += at_pause

    def _cut_pauses(self, utt: _Utterance) -> list[Pause]:
        """Pauses the buffer may be cut at: past ``pause_cut_after_s`` of it, or of a long buffer, past
        ``long_pause_cut_after_s`` (a shorter final beats one that waits for Whisper to end a segment)."""
        cfg = self._config
        after = cfg.long_pause_cut_after_s if utt.samples >= cfg.trim_after_s * WHISPER_RATE else cfg.pause_cut_after_s
        earliest = utt.buffer_start + after * WHISPER_RATE
        return [p for p in utt.pauses if p.middle >= earliest]

    def _apply_final(self, utt: _Utterance, hyp: Hypothesis | None, span: _Span | None) -> None:
        if hyp is None or span is None:  # decode failed: keep what was already shown
            self._finalize(utt, self._shown_words(utt), None)
            return
        words, _ = self._accepted_words(utt, hyp, span)
        if not words and not utt.agreement.committed and len(utt.context) and utt.samples:
            # Whisper heard nothing after the context: it collapses a line said twice in a row into the
            # first one. Decode this utterance on its own rather than lose it.
            utt.context = np.zeros(0, dtype=np.float32)
            utt.context_end = utt.speech_start = utt.buffer_start
            self._counters["context_retries"] += 1
            self._submit_final(utt)
            return
        utt.agreement.finish(words)
        self._finalize(utt, utt.agreement.release_until(float("inf")), utt.audio())

    def _finalize(self, utt: _Utterance, words: list[Word], audio: np.ndarray | None) -> None:
        text = join_words(words)
        if not text and utt.last_partial is None:
            return  # nothing was ever shown for this segment: stay silent
        self._counters["finals_emitted"] += 1
        language = self._caption_language(utt)
        self._send(utt.segment_id, text, True, utt, words)
        if text and self._config.prompt_chars:  # kept only if used: never more text than the prompt needs
            self._context = (self._context + " " + text).strip()[-self._config.prompt_chars * 2 :]
        if (
            text
            and audio is not None
            and len(audio)
            and self.also_translate_to_english
            and self._multilingual
            and language not in ("en", "und")
        ):
            self._request_translation(utt, words, audio, language)

    def _request_translation(self, utt: _Utterance, words: list[Word], audio: np.ndarray, language: str) -> None:
        segment_id, start, end = utt.segment_id, utt.room_time(words[0].start), utt.room_time(words[-1].end)
        vad_prob = utt.vad_mean_prob

        def prepare() -> Prepared:
            request = DecodeRequest(
                audio=audio,
                task="translate",
                language=language,
                beam_size=self._config.final_beam_size,
                temperatures=self._config.final_temperatures,
                word_timestamps=False,
            )
            return Prepared(request, on_done)

        def on_done(hyp: Hypothesis | None, error: BaseException | None) -> None:
            if hyp is None:
                return
            kept = [s.text for s in hyp.segments if rejection_reason(_score(s), vad_prob, self._config.gate) is None]
            text = "".join(kept).strip()
            if not text:
                return
            self._counters["translations_emitted"] += 1
            self._emit(
                Caption(segment_id, self.speaker_id, self.speaker_name, text, True, start, end, "en", "translate")
            )

        self._scheduler.submit(Job(JobKind.TRANSLATE, self, prepare, spoken_until=time.perf_counter()))

    def _send(self, segment_id: str, text: str, final: bool, utt: _Utterance, words: Sequence[Word]) -> None:
        if words:
            start, end = utt.room_time(words[0].start), utt.room_time(words[-1].end)
        else:
            start = end = utt.room_time(utt.buffer_end / WHISPER_RATE)
        self._emit(
            Caption(
                segment_id=segment_id,
                speaker_id=self.speaker_id,
                speaker_name=self.speaker_name,
                text=text,
                final=final,
                start=round(start, 3),
                end=round(max(end, start), 3),
                language=self._caption_language(utt),
            )
        )


@dataclass(frozen=True)
class Pause:
    """Non-speech inside an utterance (VAD), stream samples."""

    start: int  # first non-speech window
    end: int  # first speech window after it

    @property
    def middle(self) -> int:
        """Where a cut goes."""
        return (self.start + self.end) // 2


def pause_within(pauses: Sequence[Pause], committed_end: float, next_word_start: float | None = None,
                 reach: float = 0.0) -> Pause | None:
    """The latest pause with every word before it committed, so a cut in its middle splits none.

    Either the committed words go on past its middle, or they reach its start (within ``reach``: Whisper's
    word ends jitter, Silero lags) and the newest hypothesis's first uncommitted word starts in or after
    it: nothing uncommitted was heard before the pause. The second needs one decode after the pause,
    the first two that agree on a word after it. Same clock for all arguments."""
    settled = [p for p in pauses if p.middle <= committed_end
               or (next_word_start is not None and committed_end >= p.start - reach and next_word_start >= p.start)]
    return max(settled, key=lambda p: p.middle, default=None)


def _score(seg: DecodedSegment) -> SegmentScore:
    return SegmentScore(seg.text, seg.no_speech_prob, seg.avg_logprob, seg.compression_ratio)
