"""Tests that start a real `peerwell serve` process: a free port, settings files, and waiting until it runs."""

from __future__ import annotations

import asyncio
import os
import socket
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SECRET = "facilitator-secret-for-tests"
LOBBY_GROUP = f"""
[server]
allow_adhoc_rooms = false

[[group]]
slug = "circle"
name = "Circle"
agreement = "Be kind."
lobby = true
facilitator_secret = "{SECRET}"
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def text(path: Path) -> str:
    return path.read_text(errors="replace")


def open_rooms_settings(directory: Path) -> Path:
    """A settings file that allows ad-hoc rooms (the embedded groups do not), with no groups of its own."""
    path = directory / "open-rooms.toml"
    path.write_text("[server]\nallow_adhoc_rooms = true\n")
    return path


async def start_serve(arguments: list[str], log: Path, *, env: dict[str, str] | None = None,
                      timeout: float = 60.0) -> asyncio.subprocess.Process:
    """`python -m peerwell.cli serve ARGUMENTS`, output appended to `log`; returns once it says it runs."""
    with log.open("ab") as out:
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "peerwell.cli", "serve", *arguments, cwd=ROOT, stdout=out, stderr=out,
            env={**os.environ, **(env or {})})
    deadline = time.monotonic() + timeout
    while "peerwell is running" not in text(log):
        assert process.returncode is None and time.monotonic() < deadline, text(log)
        await asyncio.sleep(0.1)
    return process
