"""Real human speech for tests and benchmarks: recordings shipped in the moonshine-voice 0.1.5 wheel.

The wheel (20 MB, PyPI) carries three recordings under ``moonshine_voice/assets/``: ``two_cities.wav``
(44 s, a reading of the opening of Dickens' *A Tale of Two Cities*, public domain, reference text below),
``beckett.wav`` (10 s) and ``endgame_nagg_nell.wav`` (28 s, two voices in dialogue). We never depend on the
package at run time: ``fetch`` downloads the wheel with pip once and keeps only the three wavs in the test
data cache (``$PEERWELL_TEST_DATA``, else ``~/.cache/peerwell/test-data``). Tests run in a network namespace
without PyPI, so ``make test`` and ``make bench`` fetch first (``python -m tests.support.real_speech``).

For the two clips without a published text, the offline transcript of the same model is the reference
("streaming must not be worse than offline"); their text is never stored in the repository.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

WHEEL = "moonshine-voice==0.1.5"
# The wheel is platform-tagged; its assets are not, so pip may fetch it from any machine.
_PIP_PLATFORM = ("--platform", "manylinux_2_34_x86_64", "--only-binary=:all:", "--python-version", "3.11")
ASSET_DIR = "moonshine_voice/assets/"

# The opening sentence of A Tale of Two Cities (1859), as far as the recording reads it.
TWO_CITIES_TEXT = (
    "It was the best of times, it was the worst of times, it was the age of wisdom, it was the age of "
    "foolishness, it was the epoch of belief, it was the epoch of incredulity, it was the season of Light, "
    "it was the season of Darkness, it was the spring of hope, it was the winter of despair, we had "
    "everything before us, we had nothing before us, we were all going direct to Heaven, we were all going "
    "direct the other way - in short, the period was so far like the present period, that some of its "
    "noisiest authorities insisted on its being received, for good or for evil, in the superlative degree "
    "of comparison only."
)


@dataclass(frozen=True)
class RealClip:
    name: str  # file name in the wheel
    reference: str | None  # published text, or None: offline Whisper is the reference
    language: str = "en"


CLIPS = (
    RealClip("two_cities.wav", TWO_CITIES_TEXT),
    RealClip("beckett.wav", None),
    RealClip("endgame_nagg_nell.wav", None),
)
CLIP_NAMES = tuple(c.name for c in CLIPS)


class RealSpeechMissing(RuntimeError):
    pass


def cache_dir() -> Path:
    configured = os.environ.get("PEERWELL_TEST_DATA")
    base = Path(configured).expanduser() if configured else Path.home() / ".cache" / "peerwell" / "test-data"
    return base / "moonshine-voice-0.1.5"


def clip_path(name: str) -> Path:
    """The cached recording; a clear error (what to run) if it was never fetched."""
    path = cache_dir() / name
    if not path.is_file():
        raise RealSpeechMissing(
            f"{path} is missing: run `make test-data` (or `python -m tests.support.real_speech`) with PyPI "
            f"reachable; the test suite itself runs without network"
        )
    return path


def clip(name: str) -> RealClip:
    return next(c for c in CLIPS if c.name == name)


def fetch(dest: Path | None = None) -> Path:
    """Download the wheel with pip (once) and keep the three recordings. Idempotent."""
    dest = dest or cache_dir()
    if all((dest / name).is_file() for name in CLIP_NAMES):
        return dest
    dest.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="peerwell-wheel-") as tmp:
        subprocess.run(
            [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", *_PIP_PLATFORM, "-d", tmp, WHEEL],
            check=True,
        )
        wheels = list(Path(tmp).glob("moonshine_voice-*.whl"))
        if len(wheels) != 1:
            raise RealSpeechMissing(f"pip download {WHEEL} gave {[w.name for w in wheels]}")
        with zipfile.ZipFile(wheels[0]) as archive:
            for name in CLIP_NAMES:
                data = archive.read(ASSET_DIR + name)
                part = dest / f".{name}.part"
                part.write_bytes(data)
                part.replace(dest / name)  # never a half-written clip in the cache
    return dest


if __name__ == "__main__":
    print(fetch())
