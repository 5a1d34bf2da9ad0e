"""Real Chromium A speaks (an espeak-ng wav as its fake microphone); Chromium B reads A's words as captions."""

from __future__ import annotations

import wave
from collections.abc import AsyncIterator
from pathlib import Path

import numpy as np
import pytest
from playwright.async_api import async_playwright

from peerwell.captioning import CaptionsObserver
from tests.conftest import RunningServer, start_server
from tests.support.browser import join, launch_chromium, new_page, poll, uncaught, write_tone_wav
from tests.support.speech import espeak, load_48k, normalize_for_wer, silence, to_int16
from transcribe.service import CaptionService
from transcribe.transcriber import LocalTranscriber

pytestmark = [pytest.mark.browser, pytest.mark.model]

SENTENCE = "Good evening everyone. Today I went for a long walk by the river."

CAPTIONS = """(speaker) => [...document.querySelectorAll('#captions-live .caption, #captions-history li')]
  .filter(line => line.querySelector('.speaker').textContent.startsWith(speaker))
  .map(line => line.querySelector('.text').textContent).join(' ')"""


@pytest.fixture
def observer() -> CaptionsObserver:
    observer = CaptionsObserver(LocalTranscriber(CaptionService.from_model_name(None, "base")), None)
    return observer


@pytest.fixture
async def caption_server(observer: CaptionsObserver) -> AsyncIterator[RunningServer]:
    runner, running = await start_server(observers=[observer])
    yield running
    await runner.cleanup()


def speech_wav(tmp_path: Path) -> Path:
    """Speech then two seconds of silence (Chromium loops the file), as 48 kHz mono 16-bit."""
    audio = np.concatenate([load_48k(espeak(SENTENCE, "en", tmp_path, name="raw")), silence(2.0)])
    path = tmp_path / "speech.wav"
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(48000)
        out.writeframes(to_int16(audio).tobytes())
    return path


async def test_listener_reads_speakers_words_attributed_to_their_name(
        caption_server: RunningServer, tmp_path: Path) -> None:
    async with async_playwright() as playwright:
        speaking = await launch_chromium(playwright, speech_wav(tmp_path))
        listening = await launch_chromium(playwright, write_tone_wav(tmp_path / "quiet.wav", frequency=0.0))
        try:
            reader = await new_page(listening, caption_server.http_url)
            await join(reader, "Reader", room="caption-room", mic=False, camera=False)
            speaker = await new_page(speaking, caption_server.http_url)
            await join(speaker, "Ada", room="caption-room", mic=True, camera=False)

            def heard(text: str) -> bool:
                words = set(normalize_for_wer(text).split())
                return {"evening", "walk", "river"} <= words

            text = await poll(reader, CAPTIONS, "Ada", heard, timeout=60)
            assert heard(text)
            # The caption area is an ARIA live region, so screen readers announce new captions.
            assert await reader.get_attribute("#captions-live", "aria-live") in ("polite", "assertive")
            assert not uncaught(reader, speaker)
        finally:
            await speaking.close()
            await listening.close()
