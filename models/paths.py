"""Where downloaded or assembled models live (never anything said in a room)."""

from __future__ import annotations

import os
from pathlib import Path


def data_home() -> Path:
    """Root for downloaded or assembled models: $PEERWELL_HOME, else ~/.cache/peerwell."""
    configured = os.environ.get("PEERWELL_HOME")
    if configured:
        return Path(configured).expanduser()
    return Path.home() / ".cache" / "peerwell"


def whisper_cache_dir() -> Path:
    return data_home() / "whisper"
