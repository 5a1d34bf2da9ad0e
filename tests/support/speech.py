"""Test audio: espeak-ng speech, pytest-audioeval clips, noise, and a real-time-sized feeder.

Everything is generated into pytest's tmp dirs or kept in memory (captions must never touch disk in
production; tests only write the synthetic speech they synthesise themselves).
"""

from __future__ import annotations

import asyncio
import re
import shutil
import subprocess
import threading
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from transcribe.events import Caption

ROOM_RATE = 48_000
CHUNK = ROOM_RATE // 50  # 20 ms, what an Opus decoder hands over


def have_espeak() -> bool:
    return shutil.which("espeak-ng") is not None


def espeak(text: str, voice: str, out_dir: Path, *, speed: int = 150, name: str = "speech") -> Path:
    """Speak ``text`` into ``out_dir/name.wav`` with espeak-ng (22.05 kHz mono)."""
    path = out_dir / f"{name}.wav"
    subprocess.run(["espeak-ng", "-v", voice, "-s", str(speed), "-w", str(path), text], check=True)
    return path


def load_48k(path: Path) -> np.ndarray:
    """Any audio file as float32 mono at the room's 48 kHz (resampled by PyAV/ffmpeg)."""
    from faster_whisper.audio import decode_audio

    return decode_audio(str(path), sampling_rate=ROOM_RATE).astype(np.float32)


def silence(seconds: float) -> np.ndarray:
    return np.zeros(int(seconds * ROOM_RATE), dtype=np.float32)


def white_noise(seconds: float, dbfs: float = -30.0, seed: int = 0) -> np.ndarray:
    """Gaussian white noise at an RMS of ``dbfs`` (-30 dBFS: a loud fan or room tone on a laptop mic)."""
    rng = np.random.default_rng(seed)
    noise = rng.standard_normal(int(seconds * ROOM_RATE))
    return (noise * 10 ** (dbfs / 20)).astype(np.float32)


def pink_noise(seconds: float, dbfs: float = -30.0, seed: int = 1) -> np.ndarray:
    """1/f noise (shaped in the frequency domain), scaled to an RMS of ``dbfs``."""
    rng = np.random.default_rng(seed)
    n = int(seconds * ROOM_RATE)
    spectrum = np.fft.rfft(rng.standard_normal(n))
    freqs = np.fft.rfftfreq(n, 1 / ROOM_RATE)
    spectrum[1:] /= np.sqrt(freqs[1:])
    spectrum[0] = 0
    pink = np.fft.irfft(spectrum, n)
    pink /= np.sqrt(np.mean(pink**2))
    return (pink * 10 ** (dbfs / 20)).astype(np.float32)


def to_int16(audio: np.ndarray) -> np.ndarray:
    return (np.clip(audio, -1, 1) * 32767).astype(np.int16)


async def feed(
    stream: object, audio: np.ndarray, *, start_time: float = 0.0, speed: float = 1.0, chunk: int = CHUNK
) -> float:
    """Push ``audio`` in 20 ms chunks with room timestamps, pacing at ``speed`` x real time.

    ``speed`` > 1 feeds faster than real time (still chunk by chunk through the streaming path); pacing
    happens every 100 ms of audio so worker results get delivered in between, as in a live room.
    Returns the room time after the last chunk.
    """
    loop = asyncio.get_running_loop()
    t0 = loop.time()
    room_time = start_time
    for i, offset in enumerate(range(0, len(audio), chunk)):
        piece = audio[offset : offset + chunk]
        stream.push(piece, room_time)  # type: ignore[attr-defined]
        room_time += len(piece) / ROOM_RATE
        if i % 5 == 4:
            due = t0 + (room_time - start_time) / speed
            await asyncio.sleep(max(0.0, due - loop.time()))
    return room_time


# -- scoring --------------------------------------------------------------------------------------------
_NUMBERS = {
    "en": "zero one two three four five six seven eight nine ten eleven twelve".split(),
    "es": "cero uno dos tres cuatro cinco seis siete ocho nueve diez once doce".split(),
}


def normalize_for_wer(text: str, language: str = "en") -> str:
    """Casefold, drop punctuation and accents, spell out small numbers (Whisper writes digits)."""
    words = _NUMBERS.get(language, _NUMBERS["en"])
    text = re.sub(r"\d+", lambda m: f" {words[int(m.group())]} " if int(m.group()) < len(words) else m.group(), text)
    text = unicodedata.normalize("NFKD", text.casefold())
    text = "".join(ch for ch in text if not unicodedata.combining(ch))
    text = re.sub(r"[^\w\s']", " ", text)
    if language == "en":  # "I'm" and "I am" are the same words to a reader
        text = " ".join(_CONTRACTIONS.get(word, word) for word in text.split())
    return " ".join(text.split())


_CONTRACTIONS = {
    "i'm": "i am", "it's": "it is", "that's": "that is", "don't": "do not", "can't": "cannot",
    "won't": "will not", "i've": "i have", "i'll": "i will", "i'd": "i would", "we're": "we are",
    "you're": "you are", "they're": "they are", "isn't": "is not", "didn't": "did not", "doesn't": "does not",
    "wasn't": "was not", "there's": "there is", "let's": "let us", "we've": "we have", "couldn't": "could not",
}


def wer(reference: str, hypothesis: str, language: str = "en") -> float:
    import jiwer

    ref = normalize_for_wer(reference, language)
    hyp = normalize_for_wer(hypothesis, language)
    if not hyp:
        return 1.0
    return float(jiwer.wer(ref, hyp))


def inserted_words(reference: str, hypothesis: str, language: str = "en") -> int:
    """Words of ``hypothesis`` that align to nothing in ``reference`` (jiwer's insertions, after the WER
    normaliser): what a caption reader would see someone say that they did not."""
    import jiwer

    ref = normalize_for_wer(reference, language)
    hyp = normalize_for_wer(hypothesis, language)
    if not hyp:
        return 0
    if not ref:
        return len(hyp.split())
    return int(jiwer.process_words(ref, hyp).insertions)


def erased_words(before: list[str], after: list[str]) -> int:
    """Words of ``before`` (what was on screen) that ``after`` withdraws: everything past their common prefix."""
    common = 0
    for old, new in zip(before, after, strict=False):
        if old != new:
            break
        common += 1
    return len(before) - common


@dataclass(frozen=True)
class ReferenceClip:
    name: str
    language: str
    text: str
    path: Path


def audioeval_clips(languages: Iterable[str] = ("en",)) -> list[ReferenceClip]:
    """The TTS clips pytest-audioeval ships (16 kHz wav + reference text), via its sample registry."""
    from pytest_audioeval.samples.registry import SampleLang, SampleRegistry

    registry = SampleRegistry()
    clips: list[ReferenceClip] = []
    for lang in languages:
        for sample in registry.by_lang(SampleLang(lang)):
            clips.append(ReferenceClip(sample.name, lang, sample.reference_text, sample.audio_path))
    return clips


# -- recording captions ---------------------------------------------------------------------------------
class Recorder:
    def __init__(self) -> None:
        self.events: list[Caption] = []
        self.threads: set[int] = set()

    def __call__(self, caption: Caption) -> None:
        self.events.append(caption)
        self.threads.add(threading.get_ident())

    def by_segment(self) -> dict[str, list[Caption]]:
        out: dict[str, list[Caption]] = {}
        for ev in self.events:
            out.setdefault(ev.segment_id, []).append(ev)
        return out


def check_caption_protocol(events: list[Caption]) -> None:
    """The contract clients rely on, per segment: partials (never repeated, committed part only grows)
    then exactly one final; nothing for that segment after its final; one segment at a time per speaker."""
    finished: set[str] = set()
    last_partial: dict[str, str] = {}
    for ev in events:
        if ev.task == "translate":
            assert ev.segment_id in finished and ev.final and ev.language == "en"
            continue
        assert ev.segment_id not in finished, f"event after final for {ev.segment_id}"
        assert ev.start <= ev.end
        if ev.final:
            finished.add(ev.segment_id)
        else:
            assert last_partial.get(ev.segment_id) != ev.text, "identical partial sent twice"
            last_partial[ev.segment_id] = ev.text
