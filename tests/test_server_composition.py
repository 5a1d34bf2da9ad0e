"""`peerwell serve` composition: arguments, groups file errors, and rooms that work without captions."""

from __future__ import annotations

from pathlib import Path

import pytest

from peerwell.cli import build_parser
from peerwell.server import CaptionOptions, ServeError, build_app, settings_from_args
from sfu.contrib.client import RoomClient
from sfu.signaling.websocket import ROOMS_KEY
from tests.conftest import start_server


def serve_args(*extra: str):  # type: ignore[no-untyped-def]
    return build_parser().parse_args(["serve", *extra])


def test_flags_become_config(tmp_path: Path) -> None:
    config = settings_from_args(serve_args("--port", "9000", "--ice-host", "127.0.0.1", "--ice-host", "::1",
                                           "--stun", "stun:stun.example.org:3478", "--turn", "turn:t.example.org",
                                           "--turn-username", "u", "--turn-credential", "c")).server
    assert config.port == 9000 and config.ice_hosts == ("127.0.0.1", "::1")
    assert [s.urls for s in config.ice_servers] == [["stun:stun.example.org:3478"], ["turn:t.example.org"]]
    assert config.ice_servers[1].username == "u"
    assert config.groups.groups  # the embedded default groups


@pytest.mark.parametrize("flags, message", [
    (("--stun", "http://not-stun"), "must start with stun:"),
    (("--turn", "turn:x"), "turn.urls needs"),
    (("--port", "70000"), "--port"),
])
def test_bad_flags_are_clear_errors(flags: tuple[str, ...], message: str) -> None:
    with pytest.raises(ServeError, match=message):
        settings_from_args(serve_args(*flags))


def test_bad_groups_file_names_the_problem(tmp_path: Path) -> None:
    bad = tmp_path / "groups.toml"
    bad.write_text('[[group]]\nslug = "Bad Slug"\nname = "x"\nagreement = "y"\n')
    with pytest.raises(ServeError, match=r"groups\.toml.*slug"):
        settings_from_args(serve_args("--config", str(bad)))


async def test_rooms_work_and_say_captions_are_off_when_no_model_loads(tmp_path: Path) -> None:
    config = settings_from_args(serve_args("--ice-host", "127.0.0.1")).server
    missing = tmp_path / "no-such-model"
    app = build_app(config, CaptionOptions(enabled=True, model=str(missing)), translation=False)
    runner, server = await start_server(app=app)  # the transcription worker starts (and fails) here
    try:
        status = app[ROOMS_KEY].captions_status
        assert status.enabled is False and "no-such-model" in (status.reason or "")
        group = config.groups.groups[0].slug
        client = RoomClient(server.ws_url, group, "Guest", secret=config.groups.groups[0].facilitator_secret)
        await client.join()
        assert client.joined["captions"] == {"enabled": False, "model": None, "reason": status.reason}
        assert client.joined["group"]["slug"] == group
        await client.leave()
    finally:
        await runner.cleanup()


@pytest.mark.model
@pytest.mark.parametrize("full_window", [False, True])
async def test_whisper_window_option_reaches_the_model(full_window: bool) -> None:
    from peerwell.server import settings_from_args, worker_options
    from transcribe.whisper_adapter import ShortWindowWhisperModel
    from transcribe.worker import load_transcriber

    args = serve_args("--whisper-model", "tiny.en", *(["--whisper-full-window"] if full_window else []))
    options = settings_from_args(args).captions
    worker = worker_options(options)
    # What the server passes on the worker's command line is what the worker parses.
    assert ("--full-window" in worker.arguments()) is full_window
    transcriber = load_transcriber(worker)
    try:
        model = transcriber.service._scheduler.engine.model
        assert isinstance(model, ShortWindowWhisperModel) is not full_window
        # Decoders laid out over the cores (transcribe/decoders.py) reach CTranslate2 as replicas.
        assert model.model.num_workers == worker.workers == transcriber.service._scheduler.workers
    finally:
        await transcriber.close()
