"""Settings files for tests that start a real `peerwell serve` process."""

from __future__ import annotations

from pathlib import Path


def open_rooms_settings(directory: Path) -> Path:
    """A settings file that allows ad-hoc rooms (the embedded groups do not), with no groups of its own."""
    path = directory / "open-rooms.toml"
    path.write_text("[server]\nallow_adhoc_rooms = true\n")
    return path
