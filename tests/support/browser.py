"""Real headless Chromium for end-to-end tests, kept on loopback inside a private network namespace.

`make test` runs pytest under `unshare -n` with only `lo` up, so the browser and the server can reach
nothing but 127.0.0.1. Outside such a namespace Chromium would also pair ICE candidates from the
machine's real interfaces, which these tests must never touch, so the fixture refuses to start there.
"""

from __future__ import annotations

import os
import shutil
import wave
from pathlib import Path

import numpy as np

CHROMIUM = os.environ.get("PEERWELL_CHROMIUM", "/usr/bin/chromium")


def network_interfaces() -> list[str]:
    # /proc/self/net/dev follows the current network namespace (sysfs may still show the host's).
    lines = Path("/proc/self/net/dev").read_text().splitlines()[2:]
    return sorted(line.split(":", 1)[0].strip() for line in lines)


def require_loopback_only_namespace() -> None:
    interfaces = network_interfaces()
    if interfaces != ["lo"]:
        raise RuntimeError(
            "browser tests run only inside a private network namespace with just loopback "
            f"(found interfaces {interfaces}); run them through `make test`, which uses `unshare -n`")
    if shutil.which(CHROMIUM) is None and not Path(CHROMIUM).exists():
        raise RuntimeError(f"Chromium not found at {CHROMIUM}; `.ci/run` installs Debian's chromium package")


def chromium_args(fake_audio: Path | None) -> list[str]:
    args = [
        "--no-sandbox", "--disable-gpu", "--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream",
        "--allow-loopback-in-peer-connection", "--disable-background-networking", "--disable-component-update",
        "--disable-sync", "--no-first-run", "--autoplay-policy=no-user-gesture-required", "--disable-quic",
    ]
    if fake_audio is not None:
        args.append(f"--use-file-for-fake-audio-capture={fake_audio}")
    return args


def write_tone_wav(path: Path, seconds: float = 3.0, frequency: float = 440.0) -> Path:
    rate = 48000
    t = np.arange(int(rate * seconds)) / rate
    samples = (np.sin(2 * np.pi * frequency * t) * 8000).astype(np.int16)
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(rate)
        out.writeframes(samples.tobytes())
    return path
