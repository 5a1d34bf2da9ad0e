"""transcribe/whisper_adapter.py: the short encoder window, pinned to the faster-whisper it was written for.

The real tiny.en model (bundled, ~0.5 s to load) on pytest-audioeval's TTS clips: what the encoder is
given is observed by wrapping faster-whisper's own ``WhisperModel.encode`` (the adapter's hook), so a
faster-whisper upgrade that stops calling it, or pads differently, fails here.
"""

from __future__ import annotations

import numpy as np
import pytest
from faster_whisper import WhisperModel
from faster_whisper.audio import decode_audio

from models.whisper import resolve_whisper_model
from tests.support.speech import audioeval_clips, espeak, have_espeak, wer
from transcribe import whisper_adapter
from transcribe.engine import DecodeRequest, WhisperEngine
from transcribe.whisper_adapter import ShortWindowWhisperModel, load_whisper_model, looks_looped, trim_padding


def test_installed_faster_whisper_is_the_one_the_adapter_was_written_for() -> None:
    whisper_adapter.check_compatibility()


def test_another_faster_whisper_version_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(whisper_adapter, "faster_whisper_version", "9.9.9")
    with pytest.raises(whisper_adapter.IncompatibleFasterWhisper, match=r"9\.9\.9"):
        whisper_adapter.check_compatibility()


def test_an_encode_hook_faster_whisper_no_longer_calls_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    def generate_segments(self, features, tokenizer, options, log_progress, encoder_output=None):  # type: ignore[no-untyped-def]
        return iter(())  # encodes some other way in a future faster-whisper

    monkeypatch.setattr(WhisperModel, "generate_segments", generate_segments)
    with pytest.raises(whisper_adapter.IncompatibleFasterWhisper, match=r"generate_segments no longer calls"):
        whisper_adapter.check_compatibility()


def test_a_model_without_its_ctranslate2_model_attribute_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    """is_multilingual reads WhisperModel.model (faster-whisper's CTranslate2 model): a rename fails the check."""
    def init(self, model_size_or_path, **kwargs):  # type: ignore[no-untyped-def]
        self.ct2_model = None

    monkeypatch.setattr(WhisperModel, "__init__", init)
    with pytest.raises(whisper_adapter.IncompatibleFasterWhisper, match=r"is_multilingual"):
        whisper_adapter.check_compatibility()


def test_a_ctranslate2_model_without_the_multilingual_flag_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    import ctranslate2

    monkeypatch.setattr(ctranslate2.models, "Whisper", type("Whisper", (), {}))
    with pytest.raises(whisper_adapter.IncompatibleFasterWhisper, match=r"is_multilingual"):
        whisper_adapter.check_compatibility()


def padded(content_frames: int, total: int = 3000) -> np.ndarray:
    features = np.zeros((80, total), dtype=np.float32)
    features[:, :content_frames] = np.random.default_rng(0).uniform(-1.5, 1.0, (80, content_frames))
    return features


def test_trim_keeps_the_content_and_the_pad_with_an_even_length() -> None:
    assert trim_padding(padded(250), 100).shape == (80, 350)
    assert trim_padding(padded(251), 100).shape == (80, 352)  # stride-2 convolution wants an even length
    assert trim_padding(padded(250)[None], 100).shape == (1, 80, 350)
    assert np.array_equal(trim_padding(padded(250), 100), padded(250)[:, :350])


def test_trim_leaves_a_full_or_nearly_full_window_alone() -> None:
    assert trim_padding(padded(3000), 100).shape == (80, 3000)
    assert trim_padding(padded(2950), 100).shape == (80, 3000)


def test_silent_features_are_content_not_padding() -> None:
    features = padded(0)
    features[:, :200] = -1.5  # what digital silence normalises to
    assert trim_padding(features, 50).shape == (80, 250)


def test_looped_hypotheses_are_spotted() -> None:
    healthy = [0.0, 0.4, 0.8, 1.2, 1.9]  # last word cut off by the buffer's end: still healthy
    assert not looks_looped(healthy, 2.0)
    assert looks_looped([0.0, 0.3, 0.6, 1.12, 1.12, 1.12, 1.12], 1.14)  # "Hello world Hello Hello Hello"
    assert looks_looped([0.1 * i for i in range(21)], 3.0)  # 21 words in 3 s: nobody speaks that fast
    assert not looks_looped([], 1.0)


@pytest.fixture(scope="module")
def tiny_en_path(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    return resolve_whisper_model("tiny.en", tmp_path_factory.mktemp("cache"), allow_download=False)


@pytest.fixture(scope="module")
def fox() -> tuple[np.ndarray, str]:
    clip = next(c for c in audioeval_clips(["en"]) if c.name == "quick_brown_fox")
    return decode_audio(str(clip.path)), clip.text


def spy_encoder(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    frames: list[int] = []
    real = WhisperModel.encode

    def encode(self: WhisperModel, features: np.ndarray):  # type: ignore[no-untyped-def]
        frames.append(features.shape[-1])
        return real(self, features)

    monkeypatch.setattr(WhisperModel, "encode", encode)
    return frames


@pytest.mark.model
def test_the_encoder_sees_the_speech_plus_the_pad(tiny_en_path, fox, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    audio, reference = fox
    model = load_whisper_model(tiny_en_path, cpu_threads=2, window_pad_s=2.0)
    assert isinstance(model, ShortWindowWhisperModel)
    frames = spy_encoder(monkeypatch)
    hyp = WhisperEngine(model).decode(DecodeRequest(audio=audio, language="en"))
    content = len(audio) // 160  # 10 ms frames
    assert frames and all(abs(f - (content + 200)) <= 2 for f in frames), (frames, content)
    assert not hyp.window_retried
    assert wer(reference, "".join(s.text for s in hyp.segments)) <= 0.15

    frames.clear()
    with model.full_window():
        segments, _ = model.transcribe(audio, language="en")
        list(segments)
    assert frames == [3000]


@pytest.mark.model
def test_a_looped_decode_is_redone_with_the_full_window(tiny_en_path, fox, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    # No pad at all: tiny.en then reliably repeats itself ("The quick brown fox ... The The The"), which
    # is how the rare loops with the real pad look, only every time.
    audio, reference = fox
    engine = WhisperEngine(load_whisper_model(tiny_en_path, cpu_threads=2, window_pad_s=0.0))
    frames = spy_encoder(monkeypatch)
    hyp = engine.decode(DecodeRequest(audio=audio, language="en"))
    assert hyp.window_retried
    assert frames[-1] == 3000 and frames[0] < 3000
    assert wer(reference, "".join(s.text for s in hyp.segments)) <= 0.15


@pytest.mark.model
def test_a_looped_partial_is_reported_not_redone(tiny_en_path, fox, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    # The full-window redo costs 1-2.5 s of a decoder under load, and holds that speaker's captions; a
    # partial is superseded within a second anyway.
    audio, _ = fox
    engine = WhisperEngine(load_whisper_model(tiny_en_path, cpu_threads=2, window_pad_s=0.0))
    frames = spy_encoder(monkeypatch)
    hyp = engine.decode(DecodeRequest(audio=audio, language="en", redo_if_looped=False))
    assert hyp.looped and not hyp.window_retried and hyp.segments == ()
    assert frames and all(f < 3000 for f in frames)


@pytest.mark.model
def test_plain_faster_whisper_when_asked(tiny_en_path, fox, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    model = load_whisper_model(tiny_en_path, cpu_threads=2, window_pad_s=None)
    assert not isinstance(model, ShortWindowWhisperModel)
    assert not whisper_adapter.is_multilingual(model)  # tiny.en
    frames = spy_encoder(monkeypatch)
    WhisperEngine(model).decode(DecodeRequest(audio=fox[0], language="en"))
    assert frames == [3000]


@pytest.mark.model
@pytest.mark.skipif(not have_espeak(), reason="espeak-ng not installed")
async def test_language_is_detected_on_the_full_window_then_decoded_short(tmp_path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    # With a short window base took this Spanish for Latin; detection therefore keeps the 30 s window.
    sentence = "Buenos días a todos. Hoy quiero hablar de mi trabajo y de mi familia."
    audio = decode_audio(str(espeak(sentence, "es", tmp_path, speed=140)))
    model = load_whisper_model(resolve_whisper_model("base", tmp_path / "cache", allow_download=False), cpu_threads=2)
    frames = spy_encoder(monkeypatch)
    hyp = WhisperEngine(model).decode(DecodeRequest(audio=audio, language=None))
    assert hyp.language == "es" and hyp.language_probability > 0.5
    assert frames[0] == 3000 and all(f < 3000 for f in frames[1:]) and len(frames) >= 2, frames
    assert wer(sentence, "".join(s.text for s in hyp.segments), "es") <= 0.15


class _FakeIO:
    def __init__(self, name: str, shape: list[object]) -> None:
        self.name, self.shape = name, shape


class _ChangedSileroSession:
    """Stands in for an onnxruntime session whose signature changed (no other faster-whisper exists here)."""

    def get_inputs(self) -> list[_FakeIO]:
        return [_FakeIO("input", ["batch", 576]), _FakeIO("state", [2, 1, 128]), _FakeIO("sr", [])]

    def get_outputs(self) -> list[_FakeIO]:
        return [_FakeIO("output", []), _FakeIO("stateN", [])]


def test_silero_session_signature_is_checked(monkeypatch: pytest.MonkeyPatch) -> None:
    whisper_adapter.SileroSession()  # the installed one passes
    monkeypatch.setattr(whisper_adapter, "get_vad_model", lambda: type("M", (), {"session": _ChangedSileroSession()}))
    with pytest.raises(whisper_adapter.IncompatibleFasterWhisper, match="Silero"):
        whisper_adapter.check_compatibility()
    with pytest.raises(whisper_adapter.IncompatibleFasterWhisper, match="Silero"):
        whisper_adapter.SileroSession()


def test_silero_session_carries_state_like_the_library_scores_a_file() -> None:
    from faster_whisper.vad import get_vad_model

    rng = np.random.default_rng(3)
    audio = (rng.standard_normal(512 * 6) * 0.05).astype(np.float32)
    windows = audio.reshape(6, 512)
    contexts = np.vstack((np.zeros((1, 64), np.float32), windows[:-1, -64:]))
    session = whisper_adapter.SileroSession()
    h, c = session.initial_state()
    first, h, c = session.run(np.concatenate((contexts[:3], windows[:3]), axis=1), h, c)
    second, h, c = session.run(np.concatenate((contexts[3:], windows[3:]), axis=1), h, c)
    # The library zeroes the last window's final 64 samples in place (its context trick), so its last
    # probability is of different audio: compare the others.
    reference = get_vad_model()(audio.copy()).reshape(-1)
    np.testing.assert_allclose(np.concatenate((first, second))[:-1], reference[:-1], atol=1e-6)


@pytest.mark.model
def test_per_decode_library_logs_stay_out_of_the_console(tiny_en_path, fox, caplog) -> None:  # type: ignore[no-untyped-def]
    import logging

    library = logging.getLogger(whisper_adapter.LIBRARY_LOGGER)
    monkey_level = library.level
    library.setLevel(logging.NOTSET)  # as on a fresh server process
    try:
        caplog.set_level(logging.INFO)  # the server's console shows INFO
        engine = WhisperEngine(load_whisper_model(tiny_en_path, cpu_threads=2))
        engine.decode(DecodeRequest(audio=fox[0], language="en"))
        assert not [r for r in caplog.records if r.name.startswith("faster_whisper")], caplog.text
        library.setLevel(logging.INFO)  # an operator who asks for them still gets them
        engine.decode(DecodeRequest(audio=fox[0], language="en"))
        assert any("Processing audio" in r.getMessage() for r in caplog.records)
    finally:
        library.setLevel(monkey_level)
