"""Faults in the caption path stay there: a decode that crashes costs that decode only (the worker goes on
and later speech is captioned) while the room's media carries on; a corrupt model is refused with a clear
reason, repaired when it is only the cached copy, and rooms run without captions when it cannot be.
(A transcription worker process that dies is restarted: tests/test_transcriber_process.py.)"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

import models.whisper as mw
from models.whisper import ModelChecksumError, resolve_whisper_model
from peerwell.captioning import CaptionsObserver
from peerwell.server import CaptionOptions, start_captions
from sfu.contrib.client import RoomClient, encode_opus_clip, encode_vp8_clip
from tests.conftest import start_server, wait_for
from tests.support.speech import espeak, have_espeak, load_48k, silence, to_int16
from transcribe.service import CaptionService
from transcribe.transcriber import LocalTranscriber
from transcribe.whisper_adapter import load_whisper_model
from transcribe.worker import WorkerOptions, load_failure, load_transcriber

SPEECH = "Thank you for listening to me tonight. This week was a little easier than the last one."


def test_corrupt_cached_copy_is_removed_and_assembled_again(tmp_path: Path) -> None:
    first = resolve_whisper_model("base", cache_dir=tmp_path)  # joined from the two bundled parts
    assert first.source == "bundled"
    with (first.path / "model.bin").open("r+b") as fh:  # one flipped byte, as a bad disk would do
        fh.seek(1000)
        byte = fh.read(1)
        fh.seek(1000)
        fh.write(bytes([byte[0] ^ 0xFF]))
    again = resolve_whisper_model("base", cache_dir=tmp_path)
    assert again.source == "bundled" and again.path == first.path
    assert mw.sha256_of(again.path / "model.bin") == mw.BUNDLED["base"].sha256


def test_corrupt_model_is_refused_with_a_clear_reason(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    # The package's bytes do not match the published checksum (here: the checksum is the one changed).
    monkeypatch.setitem(mw.BUNDLED, "tiny.en", mw.BundledModel(**{**mw.BUNDLED["tiny.en"].__dict__,
                                                                    "sha256": "0" * 64}))
    monkeypatch.setenv("PEERWELL_HOME", str(tmp_path))
    with pytest.raises(ModelChecksumError):
        resolve_whisper_model("tiny.en", cache_dir=tmp_path, allow_download=False)
    # What the transcription worker does on start (in this process, so the patched checksum applies).
    with pytest.raises(ModelChecksumError) as caught:
        load_transcriber(WorkerOptions(model="tiny.en"))
    reason = load_failure(caught.value)  # what the worker reports, and `joined.captions.reason` says
    assert "corrupt" in reason and "sha256" in reason


async def test_rooms_run_without_captions_when_the_model_is_corrupt(tmp_path: Path) -> None:
    corrupt = tmp_path / "tiny-corrupt"  # a model directory whose weights were damaged on disk
    shutil.copytree(resolve_whisper_model("tiny.en").path, corrupt)
    with (corrupt / "model.bin").open("r+b") as fh:
        fh.truncate(1000)
    observer = CaptionsObserver(None, None)
    status = await start_captions(CaptionOptions(enabled=True, model=str(corrupt)), observer)  # the real worker
    assert not status.enabled and observer.transcriber is None
    runner, server = await start_server(observers=[observer])
    server.rooms.captions_status = status
    vp8 = encode_vp8_clip(frames=30, width=160, height=120, keyframe_interval=15)
    speaker = RoomClient(server.ws_url, "circle", "Speaker", vp8, encode_opus_clip(seconds=1.0), tag=1)
    listener = RoomClient(server.ws_url, "circle", "Listener")
    try:
        await speaker.join()
        await listener.join()
        assert listener.joined["captions"]["enabled"] is False
        assert "failed to load" in listener.joined["captions"]["reason"]
        await wait_for(lambda: listener.count_from(speaker.participant_id, "video") > 20)  # type: ignore[arg-type]
        await wait_for(lambda: listener.count_from(speaker.participant_id, "audio") > 50)  # type: ignore[arg-type]
    finally:
        await speaker.leave()
        await listener.leave()
        await runner.cleanup()


@pytest.mark.model
async def test_a_crashing_decode_is_contained_and_captions_resume(tmp_path: Path) -> None:
    if not have_espeak():
        pytest.skip("espeak-ng is needed for speech")
    model = load_whisper_model(resolve_whisper_model("tiny.en"))
    service = CaptionService(model)
    observer = CaptionsObserver(LocalTranscriber(service), None)
    engine = service._scheduler.engine
    real_decode = engine.decode
    crashes = {"left": 2}

    # Fault injection (the one stand-in here): the real engine, made to raise inside the worker thread on
    # its first decodes, as a ctranslate2 error or a bug in our decode path would.
    def crashing_decode(request):  # type: ignore[no-untyped-def]
        if crashes["left"] > 0:
            crashes["left"] -= 1
            raise RuntimeError("injected decoder crash")
        return real_decode(request)

    engine.decode = crashing_decode  # type: ignore[method-assign]
    runner, server = await start_server(observers=[observer])
    audio = load_48k(espeak(SPEECH, "en", tmp_path, name="speech"))
    clip = encode_opus_clip(to_int16(np.concatenate([audio, silence(2.0), audio, silence(3.0)])))
    vp8 = encode_vp8_clip(frames=30, width=160, height=120, keyframe_interval=15)
    speaker = RoomClient(server.ws_url, "captions", "Speaker", vp8, clip, tag=1, loop_audio=False)
    listener = RoomClient(server.ws_url, "captions", "Listener")
    try:
        await listener.join()
        await speaker.join()
        await wait_for(lambda: crashes["left"] == 0, 30)
        video_at_crash = listener.count_from(speaker.participant_id, "video")  # type: ignore[arg-type]
        await wait_for(lambda: any(e.get("type") == "caption" and e["final"] for e in listener.events),
                       len(clip) * 0.02 + 30)
        assert service.stats()["decode_errors"] >= 2
        finals = [e["text"].lower() for e in listener.events if e.get("type") == "caption" and e["final"]]
        assert any("week" in text or "listening" in text for text in finals), finals
        # The room never noticed: video kept flowing through and after the crashes.
        assert listener.count_from(speaker.participant_id, "video") > video_at_crash + 20  # type: ignore[arg-type]
    finally:
        await speaker.leave()
        await listener.leave()
        await runner.cleanup()
        await observer.close()
    shutil.rmtree(tmp_path, ignore_errors=True)
