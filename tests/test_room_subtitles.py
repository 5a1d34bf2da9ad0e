"""Subtitles in a room: real captions from real speech, translated by a real (test-built) Argos package.

No Argos package can be downloaded on these machines, so the en->es package is built by the test with
random weights (tests/support/argos_package.py): its Spanish is gibberish, but loading, tokenising and
translating run through the same code as a real package. The Whisper path (Spanish speech -> English
subtitles) uses the real bundled multilingual model and real words.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path

import numpy as np
import pytest
from faster_whisper import WhisperModel

from models.argos import install_package_file
from peerwell.captioning import CaptionsObserver
from sfu.contrib.client import RoomClient, encode_opus_clip
from tests.conftest import RunningServer, start_server
from tests.support.argos_package import cached_package
from tests.support.speech import espeak, load_48k, normalize_for_wer, silence, to_int16
from transcribe.service import CaptionService
from transcribe.transcriber import LocalTranscriber
from translate.service import TranslationService

pytestmark = pytest.mark.model

ENGLISH = "Thank you for listening to me tonight. This week was hard, but I feel a little better now."
SPANISH = "Gracias por escucharme. Esta semana fue muy difícil, pero mi hermana me ayudó mucho."


@pytest.fixture(scope="module")
def argos_packages(tmp_path_factory: pytest.TempPathFactory) -> Path:
    packages = tmp_path_factory.mktemp("argos-packages")
    install_package_file(cached_package("en", "es"), dest=packages)
    return packages


@pytest.fixture
def observer(whisper_base: WhisperModel, argos_packages: Path) -> CaptionsObserver:
    # The models are shared; the services (bound to this test's event loop) are not.
    observer = CaptionsObserver(LocalTranscriber(CaptionService(whisper_base)), TranslationService([argos_packages]))
    return observer


@pytest.fixture
async def server(observer: CaptionsObserver) -> AsyncIterator[RunningServer]:
    runner, running = await start_server(observers=[observer])
    yield running
    await runner.cleanup()


async def wait_until(predicate, timeout: float) -> bool:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            return False
        await asyncio.sleep(0.2)
    return True


def of_type(client: RoomClient, kind: str) -> list[dict]:
    return [e for e in client.events if e.get("type") == kind]


async def join_listener(server: RunningServer, room: str, name: str, language: str | None) -> RoomClient:
    client = RoomClient(server.ws_url, room, name)
    await client.join()
    assert await wait_until(lambda: client.channel.readyState == "open", 10)
    if language is not None:
        client.send_channel({"type": "set-subtitle-language", "language": language})
    return client


def speech(text: str, voice: str, tmp_path: Path) -> list[bytes]:
    audio = load_48k(espeak(text, voice, tmp_path, name=voice))
    return encode_opus_clip(to_int16(np.concatenate([audio, silence(3.0)])))


async def test_each_final_translated_once_per_language_and_sent_only_to_its_listeners(
        server: RunningServer, observer: CaptionsObserver, tmp_path: Path) -> None:
    spanish_listeners = [await join_listener(server, "subs", f"es{i}", "es") for i in range(3)]
    plain = await join_listener(server, "subs", "plain", None)
    speaker = RoomClient(server.ws_url, "subs", "Speaker", audio_frames=speech(ENGLISH, "en", tmp_path),
                         loop_audio=False)
    await speaker.join()
    room = server.rooms.rooms["subs"]
    router = observer.rooms[room].router
    assert router is not None

    def finals() -> list[dict]:
        return [e for e in of_type(plain, "caption") if e["final"]]

    assert await wait_until(lambda: sum(len(f["text"]) for f in finals()) > len(ENGLISH) * 0.6, 40)
    final_ids = {f["segment_id"] for f in finals()}
    assert await wait_until(lambda: all({s["segment_id"] for s in of_type(c, "subtitle")} >= final_ids
                                        for c in spanish_listeners), 20)
    await asyncio.sleep(1.0)
    final_ids = {f["segment_id"] for f in finals()}

    for listener in spanish_listeners:
        status = of_type(listener, "subtitle-status")
        assert status and status[0]["available"] and status[0]["language"] == "es"
        subtitles = of_type(listener, "subtitle")
        assert {s["segment_id"] for s in subtitles} == final_ids
        assert all(s["language"] == "es" and s["source_language"] == "en" and s["text"] for s in subtitles)
    assert of_type(plain, "subtitle") == [] and of_type(speaker, "subtitle") == []
    # Three listeners on "es", yet each final ran the model (or the cache) once.
    assert router.stats.translations_run + router.stats.cache_hits == len(final_ids)
    assert router.stats.subtitles_sent == 3 * len(final_ids)
    offered = of_type(plain, "subtitle-languages")
    assert offered and "es" in offered[-1]["languages"]
    for client in (*spanish_listeners, plain, speaker):
        await client.leave()


async def test_missing_pair_is_told_plainly(server: RunningServer) -> None:
    listener = await join_listener(server, "nopair", "L", "fr")
    assert await wait_until(lambda: of_type(listener, "subtitle-status"), 10)
    status = of_type(listener, "subtitle-status")[0]
    assert status["available"] is False and "fr" in status["message"]
    await listener.leave()


async def test_spanish_speech_becomes_english_subtitles_through_whisper(
        server: RunningServer, tmp_path: Path) -> None:
    listener = await join_listener(server, "whisper-en", "Listener", "en")
    speaker = RoomClient(server.ws_url, "whisper-en", "Hablante", audio_frames=speech(SPANISH, "es", tmp_path),
                         loop_audio=False)
    await speaker.join()

    def english() -> str:
        return normalize_for_wer(" ".join(s["text"] for s in of_type(listener, "subtitle")))

    assert await wait_until(lambda: all(w in english() for w in ("thank", "difficult", "help")), 45), english()
    subtitles = of_type(listener, "subtitle")
    assert all(s["language"] == "en" and s["source_language"] == "es" for s in subtitles)
    captions = [e for e in of_type(listener, "caption") if e["final"]]
    assert captions and all(c["language"] == "es" for c in captions)
    assert {s["segment_id"] for s in subtitles} <= {c["segment_id"] for c in captions}
    for client in (speaker, listener):
        await client.leave()
