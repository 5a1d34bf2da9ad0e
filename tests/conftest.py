"""Shared fixtures: a real peerwell server on 127.0.0.1 with a random port."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from aiohttp import web
from faster_whisper import WhisperModel
from playwright.async_api import Browser, async_playwright

from models.argos import install_package_file
from models.whisper import resolve_whisper_model
from sfu import aiortc_adapter
from sfu.app import create_app
from sfu.config import ServerConfig
from sfu.contrib.client import encode_opus_clip, encode_vp8_clip
from sfu.signaling.websocket import ROOMS_KEY, Rooms
from tests.support.argos_package import cached_package
from tests.support.browser import launch_chromium, write_tone_wav
from transcribe.whisper_adapter import load_whisper_model
from translate.service import TranslationService


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """With pytest-xdist (`make test` runs two workers), the tests that load a core on their own (a real
    Chromium or Firefox, a real Whisper model) run one at a time on one worker, beside the light ones: two of
    them at once on a 2-core machine would time each other's real-time media out. Tests that build network
    topologies take turns with them too: browsers refuse to run where interfaces other than loopback exist."""
    for item in items:
        if any(item.get_closest_marker(mark) for mark in ("browser", "model", "topology")):
            item.add_marker(pytest.mark.xdist_group("heavy"))


@pytest.fixture(scope="session", autouse=True)
def aiortc_as_peerwell_runs_it() -> None:
    """Tests that build RTCPeerConnections themselves see aiortc as the server and the client run it
    (both install the adapter's patches when they start; importing never does)."""
    aiortc_adapter.install_patches()


@dataclass
class RunningServer:
    app: web.Application
    port: int

    @property
    def http_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/ws"

    @property
    def rooms(self) -> Rooms:
        return self.app[ROOMS_KEY]


async def start_server(config: ServerConfig | None = None, observers: list | None = None,
                       app: web.Application | None = None) -> tuple[web.AppRunner, RunningServer]:
    config = config or ServerConfig(ice_hosts=("127.0.0.1",), reconnect_grace=0)
    app = app or create_app(config, observers)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    return runner, RunningServer(app, port)


async def wait_for(predicate: Callable[[], object], timeout: float = 15.0) -> None:
    """Poll `predicate` until it holds; fails the test after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.05)


@pytest.fixture(autouse=True)
def private_state_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Generated facilitator secrets go to a temporary state directory, never the user's."""
    directory = tmp_path / "peerwell-state"
    monkeypatch.setenv("PEERWELL_STATE_DIR", str(directory))
    return directory


@pytest.fixture
async def server() -> AsyncIterator[RunningServer]:
    runner, running = await start_server()
    yield running
    await runner.cleanup()


@pytest.fixture
async def browser(tmp_path: Path) -> AsyncIterator[Browser]:
    """Headless Chromium (loopback-only namespace required) with a tone as its fake microphone."""
    async with async_playwright() as playwright:
        browser = await launch_chromium(playwright, write_tone_wav(tmp_path / "tone.wav"))
        yield browser
        await browser.close()


@pytest.fixture(scope="session")
def clips() -> tuple[list[bytes], list[bytes]]:
    """Small VP8 (160x120, a keyframe every 15 frames) and Opus clips for headless members; a module that
    needs other video defines its own `clips`."""
    return encode_vp8_clip(frames=30, width=160, height=120, keyframe_interval=15), encode_opus_clip(seconds=1.0)


@pytest.fixture(scope="session")
def whisper_base() -> WhisperModel:
    """The bundled multilingual Whisper base, loaded once per run (tests share it, not its services)."""
    return load_whisper_model(resolve_whisper_model("base"))


@pytest.fixture(scope="session")
def argos_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Test-built Argos packages xx->en, en->yy, en->es installed in a private directory."""
    packages = tmp_path_factory.mktemp("argos-packages")
    for src, tgt in (("xx", "en"), ("en", "yy"), ("en", "es")):
        install_package_file(cached_package(src, tgt), dest=packages)
    return packages


@pytest.fixture
def service(argos_dir: Path) -> Iterator[TranslationService]:
    svc = TranslationService([argos_dir])
    yield svc
    svc.close()
