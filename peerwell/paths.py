"""Where peerwell keeps model files (never anything said in a room)."""

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


def state_dir() -> Path:
    """Server state kept across restarts (generated facilitator secrets only, never anything said):
    $PEERWELL_STATE_DIR, else $XDG_STATE_HOME/peerwell, else ~/.local/state/peerwell."""
    configured = os.environ.get("PEERWELL_STATE_DIR")
    if configured:
        return Path(configured).expanduser()
    xdg = os.environ.get("XDG_STATE_HOME")
    return (Path(xdg).expanduser() if xdg else Path.home() / ".local" / "state") / "peerwell"
