"""Firefox in the room: a real headless Firefox (Debian's firefox-esr over WebDriver BiDi) and a real Chromium
join through the UI, see and hear each other, Firefox reads the Chromium speaker's captions, and a Firefox
reload takes its seat back."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from playwright.async_api import Page, async_playwright

from sfu.config import ServerConfig
from tests.conftest import RunningServer, start_server
from tests.support.browser import (
    AUDIO_BYTES,
    PARTICIPANT_ID,
    TILE_STATE,
    join,
    launch_chromium,
    new_page,
    poll,
    uncaught,
    write_tone_wav,
)
from tests.support.firefox import FirefoxPage
from tests.support.speech import normalize_for_wer

pytestmark = pytest.mark.browser


@pytest.fixture
async def server() -> AsyncIterator[RunningServer]:
    runner, running = await start_server(ServerConfig(ice_hosts=("127.0.0.1",), reconnect_grace=20))
    yield running
    await runner.cleanup()


@pytest.fixture
async def firefox(server: RunningServer) -> AsyncIterator[FirefoxPage]:
    page = await FirefoxPage(server.http_url).start()
    yield page
    await page.close()


async def video_and_audio_arrive(page: Page | FirefoxPage, other: str, other_id: str, timeout: float = 30) -> None:
    """`other`'s tile plays a video that advances, and bytes of their audio keep arriving."""
    first = await poll(page, TILE_STATE, other, lambda v: v is not None and v["width"] > 0 and v["time"] > 0, timeout)
    before = await poll(page, AUDIO_BYTES, other_id, lambda b: b > 0, timeout)
    await asyncio.sleep(1.5)
    assert (await page.evaluate(TILE_STATE, other))["time"] > first["time"], f"{other}'s video is not advancing"
    assert await page.evaluate(AUDIO_BYTES, other_id) > before, f"{other}'s audio stopped"


async def test_firefox_and_chromium_see_and_hear_each_other_and_firefox_resumes(
        server: RunningServer, firefox: FirefoxPage, tmp_path: Path) -> None:
    async with async_playwright() as playwright:
        chromium = await launch_chromium(playwright, write_tone_wav(tmp_path / "tone.wav"))
        try:
            await join(firefox, "Fox", room="firefox-room", mic=True, camera=True)
            carol = await new_page(chromium, server.http_url)
            await join(carol, "Carol", room="firefox-room", mic=True, camera=True)
            fox_id = await poll(firefox, PARTICIPANT_ID, None, lambda pid: pid is not None)
            carol_id = await poll(carol, PARTICIPANT_ID, None, lambda pid: pid is not None)

            await video_and_audio_arrive(firefox, "Carol", carol_id)
            await video_and_audio_arrive(carol, "Fox", fox_id)
            room = server.rooms.rooms["firefox-room"]
            codecs = {kind: room.participants[fox_id].media.publications[kind].codec.mimeType
                      for kind in ("audio", "video")}
            assert codecs == {"audio": "audio/opus", "video": "video/VP8"}

            # A reload: the tab's resume token takes the same seat back; media flows both ways again.
            await firefox.reload()
            await firefox.wait_for_selector("#room:not([hidden])", timeout=20000)
            assert await poll(firefox, PARTICIPANT_ID, None, lambda pid: pid is not None) == fox_id
            assert sorted(p.name for p in room.participants.values()) == ["Carol", "Fox"]
            await video_and_audio_arrive(firefox, "Carol", carol_id)
            await video_and_audio_arrive(carol, "Fox", fox_id)
            assert not uncaught(carol) and not uncaught(firefox)  # type: ignore[arg-type]
        finally:
            await chromium.close()


@pytest.mark.model
async def test_firefox_shows_captions(tmp_path: Path) -> None:
    from peerwell.captioning import CaptionsObserver
    from tests.test_browser_captions import CAPTIONS, speech_wav
    from transcribe.service import CaptionService
    from transcribe.transcriber import LocalTranscriber

    observer = CaptionsObserver(LocalTranscriber(CaptionService.from_model_name(None, "base")), None)
    runner, server = await start_server(observers=[observer])
    firefox = await FirefoxPage(server.http_url).start()
    try:
        async with async_playwright() as playwright:
            speaking = await launch_chromium(playwright, speech_wav(tmp_path))
            try:
                await join(firefox, "Reader", room="firefox-captions", mic=False, camera=False)
                ada = await new_page(speaking, server.http_url)
                await join(ada, "Ada", room="firefox-captions", mic=True, camera=False)

                def heard(text: str) -> bool:
                    return {"evening", "walk", "river"} <= set(normalize_for_wer(text).split())

                assert heard(await poll(firefox, CAPTIONS, "Ada", heard, timeout=60))
                assert not uncaught(ada) and not uncaught(firefox)  # type: ignore[arg-type]
            finally:
                await speaking.close()
    finally:
        await firefox.close()
        await runner.cleanup()
