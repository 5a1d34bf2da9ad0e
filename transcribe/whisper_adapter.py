"""faster-whisper adapter: encode the speech plus a short pad, not Whisper's whole 30 s window.

Why: faster-whisper pads every chunk's log-mel features with zeros to 3000 frames (30 s) before the
encoder, so a 2 s partial costs as much as 30 s of audio (~0.5 s of base's ~0.8 s decode on 2 cores).
CTranslate2's encoder accepts shorter inputs, and Whisper transcribes as well with a few seconds of the
same zero padding (measured on this project's speech set, base int8: WER 0.060-0.079 vs 0.084-0.088 with
the full window, at ~1/3 of the decode time). It needs the pad: with none Whisper loops (WER 0.85).
With a short window Whisper still sometimes loops on a very short buffer ("Hello Hello Hello ..."); such a
decode has its invented words squeezed into the last instant of the audio (the aligner finds no audio for
them), which ``looks_looped`` spots so the engine can decode that buffer again with the full window.

The hook is ``WhisperModel.encode``, which faster-whisper 1.2.1 calls with the already padded features
(``generate_segments`` and ``detect_language``); the padded tail is found as trailing all-zero frames,
which real log-mel features never are (digital silence normalises to about -1.5, not 0). This relies on
faster-whisper internals, so the version is pinned here and ``check_compatibility`` plus
tests/test_whisper_adapter.py fail loudly if an upgrade changes them.

The same goes for voice activity: faster-whisper ships Silero VAD (``silero_vad_v6.onnx``) but only scores
whole files from a fresh state. ``SileroSession`` drives its ONNX session directly (inputs ``input``
(windows with 64 samples of context), ``h``, ``c``; outputs probabilities, ``hn``, ``cn``) so the recurrent
state can be carried across 20 ms pushes; ``check_compatibility`` checks that signature too.

Whether a model is multilingual is known only to the CTranslate2 model faster-whisper keeps in its
``WhisperModel.model`` attribute (faster-whisper reads ``model.model.is_multilingual`` itself);
``is_multilingual`` is the one place that reads it, and ``check_compatibility`` checks it is still there.

faster-whisper also logs "Processing audio with duration ..." at INFO on every decode (one line per
speaker every ~0.7 s); ``quiet_library_logs`` keeps that chatter out of the console unless asked for.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import ctranslate2
import numpy as np
from faster_whisper import WhisperModel
from faster_whisper import __version__ as faster_whisper_version
from faster_whisper.audio import pad_or_trim
from faster_whisper.vad import get_vad_model

from models.whisper import ResolvedModel

log = logging.getLogger(__name__)

SUPPORTED_FASTER_WHISPER = "1.2.1"
SILERO_WINDOW = 512  # samples at 16 kHz per probability (32 ms)
SILERO_CONTEXT = 64  # samples of the previous window prepended to each window
SILERO_STATE_SHAPE = (1, 1, 128)
_SILERO_INPUTS = {"input": ["seq_len", SILERO_CONTEXT + SILERO_WINDOW], "h": list(SILERO_STATE_SHAPE),
                  "c": list(SILERO_STATE_SHAPE)}
LIBRARY_LOGGER = "faster_whisper"
FRAMES_PER_SECOND = 100  # Whisper's log-mel hop is 10 ms
# Words starting this close to the audio's end: healthy decodes had at most 2 (a word cut off by the
# buffer's end), loops 5 or more (134 buffers, en + es, measured for this adapter).
SQUEEZE_WINDOW_S = 0.25
LOOPED_MIN_SQUEEZED = 3
# Conversational speech is 2-3.5 words/s; a hypothesis far denser than that repeats itself.
LOOPED_WORDS_PER_S = 5.0


def trim_padding(features: np.ndarray, pad_frames: int) -> np.ndarray:
    """Drop trailing all-zero frames (faster-whisper's padding) beyond ``pad_frames`` of them.

    ``features`` is (n_mels, frames) or (1, n_mels, frames). The kept length is even: the encoder's
    first convolution has stride 2.
    """
    frames = features.shape[-1]
    mels = features[0] if features.ndim == 3 else features
    nonzero = np.flatnonzero(np.any(mels != 0, axis=0))
    content = int(nonzero[-1]) + 1 if len(nonzero) else 0
    keep = content + max(pad_frames, 0)
    keep += keep % 2
    return features if keep >= frames else features[..., :keep]


def looks_looped(word_starts: Sequence[float], audio_seconds: float) -> bool:
    """True if several words start in the last instant of the audio (text the audio does not contain),
    or if there are more words than anyone can say in that time."""
    squeezed = sum(1 for start in word_starts if start >= audio_seconds - SQUEEZE_WINDOW_S)
    return squeezed >= LOOPED_MIN_SQUEEZED or len(word_starts) > 2 + LOOPED_WORDS_PER_S * audio_seconds


class ShortWindowWhisperModel(WhisperModel):
    """A WhisperModel whose encoder sees the speech plus ``pad_s`` of padding instead of 30 s."""

    def __init__(self, *args: object, pad_s: float, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.pad_frames = round(pad_s * FRAMES_PER_SECOND)
        self._local = threading.local()  # decodes run in several worker threads at once

    @contextmanager
    def full_window(self) -> Iterator[None]:
        """Within this block (this thread only) the encoder sees Whisper's usual 30 s window.

        faster-whisper encodes lazily while its segment generator is consumed: consume it inside."""
        self._local.full = True
        try:
            yield
        finally:
            self._local.full = False

    def encode(self, features: np.ndarray):  # type: ignore[no-untyped-def]  # -> ctranslate2.StorageView
        if not getattr(self._local, "full", False):
            features = trim_padding(features, self.pad_frames)
        return super().encode(features)


class SileroSession:
    """faster-whisper's bundled Silero VAD, one step at a time with the caller's recurrent state.

    The ONNX session is shared by every stream (``get_vad_model`` is cached; ``run`` is thread-safe)."""

    def __init__(self) -> None:
        self._session: Any = get_vad_model().session
        _check_silero(self._session)

    @staticmethod
    def initial_state() -> tuple[np.ndarray, np.ndarray]:
        return np.zeros(SILERO_STATE_SHAPE, dtype=np.float32), np.zeros(SILERO_STATE_SHAPE, dtype=np.float32)

    def run(self, batch: np.ndarray, h: np.ndarray, c: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``batch``: (n, 64 + 512) float32, each window preceded by its context. Returns (probs (n,), h, c)."""
        probs, h, c = self._session.run(None, {"input": batch, "h": h, "c": c})
        return np.asarray(probs, dtype=np.float32).reshape(-1), h, c


def quiet_library_logs(level: int = logging.WARNING) -> None:
    """faster-whisper's per-decode INFO lines stay out of the console (they say nothing an operator needs;
    set the ``faster_whisper`` logger lower to see them again)."""
    logger = logging.getLogger(LIBRARY_LOGGER)
    if logger.level == logging.NOTSET:  # someone who configured it explicitly keeps their choice
        logger.setLevel(level)


class IncompatibleFasterWhisper(RuntimeError):
    pass


_NO_CODE = (lambda: None).__code__  # what a function faster-whisper no longer has "calls": nothing


def check_compatibility() -> None:
    """Raise if the installed faster-whisper is not the one this adapter was written against, or if an internal
    this adapter relies on (padding, the encode hook, the multilingual flag, Silero's session) moved."""
    if faster_whisper_version != SUPPORTED_FASTER_WHISPER:
        raise IncompatibleFasterWhisper(
            f"transcribe/whisper_adapter.py was written for faster-whisper {SUPPORTED_FASTER_WHISPER}, "
            f"found {faster_whisper_version}: re-check how it pads features before WhisperModel.encode"
        )
    probe = pad_or_trim(np.ones((2, 4), dtype=np.float32))
    if probe.shape[-1] != 30 * FRAMES_PER_SECOND or np.any(probe[:, 4:] != 0):
        raise IncompatibleFasterWhisper("faster-whisper no longer zero-pads features to 3000 frames")
    for caller in ("generate_segments", "detect_language"):
        if "encode" not in getattr(getattr(WhisperModel, caller, None), "__code__", _NO_CODE).co_names:
            raise IncompatibleFasterWhisper(
                f"faster-whisper's WhisperModel.{caller} no longer calls WhisperModel.encode "
                "(ShortWindowWhisperModel's hook)")
    _check_multilingual_flag()
    _check_silero(get_vad_model().session)


def is_multilingual(model: WhisperModel) -> bool:
    """Whether `model` can transcribe other languages than English (and translate): read from the CTranslate2
    model faster-whisper keeps in ``WhisperModel.model`` (checked by ``check_compatibility``)."""
    return bool(model.model.is_multilingual)


def _check_multilingual_flag() -> None:
    """``is_multilingual`` relies on WhisperModel setting ``self.model`` to a ctranslate2 Whisper model, whose
    ``is_multilingual`` faster-whisper itself reads."""
    if "model" not in WhisperModel.__init__.__code__.co_names or not hasattr(
            ctranslate2.models.Whisper, "is_multilingual"):
        raise IncompatibleFasterWhisper(
            "faster-whisper's WhisperModel no longer keeps a ctranslate2 Whisper with is_multilingual in .model "
            "(transcribe/whisper_adapter.is_multilingual)")


def _check_silero(session: Any) -> None:  # an onnxruntime.InferenceSession
    inputs = {i.name: list(i.shape) for i in session.get_inputs()}
    if inputs != _SILERO_INPUTS or len(session.get_outputs()) != 3:
        raise IncompatibleFasterWhisper(
            f"faster-whisper's Silero VAD session changed: inputs {inputs}, {len(session.get_outputs())} outputs; "
            f"transcribe/whisper_adapter.SileroSession expects {_SILERO_INPUTS} and (probs, h, c)"
        )


# Padding the encoder sees after each buffer: 3-5 s loops least.
WINDOW_PAD_S = 5.0


def load_whisper_model(
    resolved: ResolvedModel, cpu_threads: int = 0, num_workers: int = 1, window_pad_s: float | None = WINDOW_PAD_S
) -> WhisperModel:
    """faster-whisper model on CPU with int8 weights.

    ``num_workers`` > 1 lets that many threads decode at once (CTranslate2 keeps one replica per worker);
    match it to CaptionService(workers=...). ``cpu_threads`` 0 lets CTranslate2 choose. ``window_pad_s``:
    the encoder sees each buffer plus this much padding (ShortWindowWhisperModel, ~4x faster than
    Whisper's full 30 s window, as accurate); None runs faster-whisper unchanged.
    """
    options = {
        "device": "cpu",
        "compute_type": "int8",
        "cpu_threads": cpu_threads,
        "num_workers": num_workers,
        "local_files_only": True,
    }
    if window_pad_s is not None:
        try:
            check_compatibility()
        except IncompatibleFasterWhisper as exc:
            log.warning("captions use Whisper's full 30 s window (slower): %s", exc)
        else:
            return ShortWindowWhisperModel(str(resolved.path), pad_s=window_pad_s, **options)
    return WhisperModel(str(resolved.path), **options)
