"""Where peerwell keeps its state (never anything said in a room); model files: models/paths.py."""

from __future__ import annotations

import os
from pathlib import Path


def state_dir() -> Path:
    """Server state kept across restarts (generated facilitator secrets only, never anything said):
    $PEERWELL_STATE_DIR, else $XDG_STATE_HOME/peerwell, else ~/.local/state/peerwell."""
    configured = os.environ.get("PEERWELL_STATE_DIR")
    if configured:
        return Path(configured).expanduser()
    xdg = os.environ.get("XDG_STATE_HOME")
    return (Path(xdg).expanduser() if xdg else Path.home() / ".local" / "state") / "peerwell"
