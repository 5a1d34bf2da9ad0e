"""Voice activity: Silero VAD run incrementally, and a pure end-pointer that turns probabilities into
speech start/end decisions.

faster-whisper ships the Silero model (no download). Its wrapper scores a whole file from a fresh state;
here the recurrent state and the 64-sample context are carried between calls, which gives exactly the same
probabilities as scoring the whole signal at once (checked in tests). The ONNX session itself is driven by
transcribe/whisper_adapter.py (library internals, pinned and checked there).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from transcribe.audio import WHISPER_RATE
from transcribe.whisper_adapter import SILERO_CONTEXT as _CONTEXT
from transcribe.whisper_adapter import SILERO_WINDOW as WINDOW
from transcribe.whisper_adapter import SileroSession


class StreamingVad:
    """Speech probability per 32 ms window of a 16 kHz stream, scored in small batches."""

    def __init__(self, batch_windows: int = 3) -> None:
        self._session = SileroSession()
        self._batch = batch_windows
        self._h, self._c = SileroSession.initial_state()
        self._context = np.zeros(_CONTEXT, dtype=np.float32)
        self._pending = np.zeros(0, dtype=np.float32)

    def feed(self, samples: np.ndarray, flush: bool = False) -> list[tuple[np.ndarray, float]]:
        """Add samples; return (window audio, speech probability) for every window scored now.

        Scoring waits for ``batch_windows`` windows (96 ms) to amortise the ONNX call; ``flush`` scores
        whatever is pending, zero-padding the last window.
        """
        self._pending = np.concatenate((self._pending, samples))
        n = len(self._pending) // WINDOW
        if flush and len(self._pending) % WINDOW:
            pad = WINDOW - len(self._pending) % WINDOW
            self._pending = np.concatenate((self._pending, np.zeros(pad, dtype=np.float32)))
            n += 1
        if n == 0 or (n < self._batch and not flush):
            return []
        windows = self._pending[: n * WINDOW].reshape(n, WINDOW)
        self._pending = self._pending[n * WINDOW :].copy()
        contexts = np.vstack((self._context[None, :], windows[:-1, -_CONTEXT:]))
        batch = np.concatenate((contexts, windows), axis=1)
        probs, self._h, self._c = self._session.run(batch, self._h, self._c)
        self._context = windows[-1, -_CONTEXT:].copy()
        return list(zip(windows, probs.tolist(), strict=True))


@dataclass(frozen=True)
class VadConfig:
    threshold: float = 0.5  # a window at or above this is speech
    neg_threshold: float = 0.35  # below this is silence; in between keeps the current state
    min_silence_ms: int = 600  # silence this long ends the utterance...
    # ...and this much ends one with more than ``long_speech_ms`` of speech behind it. A reader or a
    # monologue breathes every few seconds in pauses of 300-500 ms; ending there gives a final at once,
    # where waiting for 600 ms meant cutting the buffer mid-speech later, once Whisper agreed on a
    # sentence end (finals 3-4 s after their last word on two_cities.wav), and ever longer decodes. Not
    # sooner: a final's Whisper-English is decoded from its audio alone, and short clauses translate badly.
    long_speech_ms: int = 4000
    long_min_silence_ms: int = 300
    min_speech_ms: int = 250  # utterances with less voiced audio than this are dropped (clicks, coughs)
    pre_roll_ms: int = 300  # audio kept before the first speech window (soft onsets)
    post_pad_ms: int = 250  # audio kept after the last speech window


@dataclass
class SpeechStart:
    sample: int  # first sample of the utterance, pre-roll included
    voiced_sample: int = 0  # first sample of the first speech window


@dataclass
class SpeechEnd:
    sample: int  # one past the last sample of the utterance, padding included
    voiced_ms: int
    mean_prob: float  # mean speech probability over the utterance's windows: weak evidence if low
    voiced_end: int = 0  # one past the last sample of the last speech window


@dataclass
class EndPointer:
    """Pure state machine: feed it one probability per 32 ms window, get start/end decisions."""

    config: VadConfig = field(default_factory=VadConfig)
    speaking: bool = False
    _window_index: int = 0
    _first_speech: int = 0
    _last_speech: int = 0
    _silent_windows: int = 0
    _voiced_windows: int = 0
    _windows: int = 0  # windows since the utterance started
    _prob_sum: float = 0.0
    _speech_span: tuple[int, float] = (0, 0.0)  # (windows, prob sum) up to the last speech window

    def _ms(self, windows: int) -> int:
        return windows * WINDOW * 1000 // WHISPER_RATE

    def step(self, prob: float) -> SpeechStart | SpeechEnd | None:
        i = self._window_index
        self._window_index += 1
        cfg = self.config
        if not self.speaking:
            if prob < cfg.threshold:
                return None
            self.speaking = True
            self._first_speech = self._last_speech = i
            self._silent_windows = 0
            self._voiced_windows = 1
            self._windows = 1
            self._prob_sum = prob
            self._speech_span = (1, prob)
            pre_roll = cfg.pre_roll_ms * WHISPER_RATE // 1000
            return SpeechStart(max(0, i * WINDOW - pre_roll), i * WINDOW)
        self._windows += 1
        self._prob_sum += prob
        if prob >= cfg.threshold:
            self._voiced_windows += 1
            self._last_speech = i
            self._silent_windows = 0
            self._speech_span = (self._windows, self._prob_sum)
        elif prob < cfg.neg_threshold:
            self._silent_windows += 1
        if self._ms(self._silent_windows) < self.silence_to_end():
            return None
        return self._end()

    def silence_to_end(self) -> int:
        """Milliseconds of silence that end the current utterance (shorter once it has gone on long)."""
        cfg = self.config
        spoken = self._ms(self._last_speech - self._first_speech + 1)
        return cfg.long_min_silence_ms if spoken >= cfg.long_speech_ms else cfg.min_silence_ms

    def force_end(self) -> SpeechEnd | None:
        """End the current utterance now (stream closing, or a gap in the audio)."""
        return self._end() if self.speaking else None

    def _end(self) -> SpeechEnd:
        self.speaking = False
        pad = self.config.post_pad_ms * WHISPER_RATE // 1000
        end = min((self._last_speech + 1) * WINDOW + pad, self._window_index * WINDOW)
        voiced_end = (self._last_speech + 1) * WINDOW
        return SpeechEnd(end, self._ms(self._voiced_windows), self.mean_prob, min(voiced_end, end))

    @property
    def silence_ms(self) -> int:
        """Silence since the last speech window of the current utterance (0 while someone talks)."""
        return self._ms(self._silent_windows) if self.speaking else 0

    @property
    def mean_prob(self) -> float:
        """Mean speech probability from the first to the last speech window (trailing silence excluded)."""
        windows, total = self._speech_span
        return total / windows if windows else 0.0

    def is_long_enough(self, end: SpeechEnd) -> bool:
        return end.voiced_ms >= self.config.min_speech_ms
