"""Audio front end without Whisper: resampling, streaming VAD, end-pointing, hallucination gate."""

from __future__ import annotations

import numpy as np
import pytest

from tests.support.speech import espeak, have_espeak, load_48k, pink_noise, silence, to_int16
from transcribe.audio import Resampler, to_float32_mono
from transcribe.commit import Word
from transcribe.filters import SegmentScore, is_blocklisted, rejection_reason, without_trailing_guesses
from transcribe.vad import WINDOW, EndPointer, SpeechEnd, SpeechStart, StreamingVad, VadConfig


def test_resampler_in_20ms_chunks_equals_one_pass() -> None:
    x = np.random.default_rng(0).standard_normal(48_000).astype(np.float32)
    whole = Resampler().process(x)
    for size in (960, 1001, 17):
        r = Resampler()
        parts = np.concatenate([r.process(x[i : i + size]) for i in range(0, len(x), size)])
        np.testing.assert_array_equal(parts, whole)
    assert len(whole) == 16_000


def test_resampler_keeps_speech_band_and_rejects_aliases() -> None:
    t = np.arange(48_000) / 48_000
    tone = Resampler().process(np.sin(2 * np.pi * 1000 * t).astype(np.float32))
    alias = Resampler().process(np.sin(2 * np.pi * 12_000 * t).astype(np.float32))  # would fold to 4 kHz
    assert np.abs(tone[100:]).max() == pytest.approx(1.0, abs=0.01)
    assert np.abs(alias[100:]).max() < 1e-3


def test_int16_and_float_input() -> None:
    pcm = np.array([0, 16384, -32768], dtype=np.int16)
    np.testing.assert_allclose(to_float32_mono(pcm), [0.0, 0.5, -1.0])
    assert to_float32_mono(pcm.reshape(1, -1)).shape == (3,)
    with pytest.raises(ValueError):
        to_float32_mono(np.zeros((2, 10), dtype=np.float32))


@pytest.mark.skipif(not have_espeak(), reason="espeak-ng not installed")
def test_streaming_vad_matches_whole_file_scoring(tmp_path) -> None:
    from faster_whisper.vad import get_vad_model

    audio16 = Resampler().process(load_48k(espeak("Hello, how are you today?", "en", tmp_path)))
    audio16 = audio16[: len(audio16) // WINDOW * WINDOW]
    reference = get_vad_model()(audio16).reshape(-1)
    vad = StreamingVad()
    scored = []
    for i in range(0, len(audio16), 320):  # 20 ms at 16 kHz
        scored += vad.feed(audio16[i : i + 320])
    scored += vad.feed(np.zeros(0, dtype=np.float32), flush=True)
    np.testing.assert_allclose([p for _, p in scored], reference, atol=1e-6)
    assert max(reference) > 0.9


def test_streaming_vad_is_quiet_on_silence_and_noise() -> None:
    vad = StreamingVad()
    audio16 = Resampler().process(np.concatenate([silence(3), pink_noise(5, dbfs=-25)]))
    probs = [p for _, p in vad.feed(audio16, flush=True)]
    assert max(probs) < 0.5


def run_endpointer(probs: list[float], config: VadConfig | None = None) -> list[tuple[int, object]]:
    ep = EndPointer(config or VadConfig())
    return [(i, ev) for i, p in enumerate(probs) if (ev := ep.step(p)) is not None]


def test_endpointer_start_end_with_pre_roll_and_padding() -> None:
    # 10 silent windows, 20 speech windows, then silence: 600 ms = 19 windows of silence end it.
    probs = [0.0] * 10 + [0.9] * 20 + [0.0] * 30
    events = run_endpointer(probs, VadConfig(min_silence_ms=600))
    (i_start, start), (i_end, end) = events
    assert isinstance(start, SpeechStart) and isinstance(end, SpeechEnd)
    assert i_start == 10 and start.sample == 10 * WINDOW - 4800  # 300 ms pre-roll
    assert i_end == 30 + 18  # the 19th silent window (608 ms)
    assert end.sample == 30 * WINDOW + 4000  # 250 ms after the last speech window
    assert end.voiced_ms == 20 * 32 and end.mean_prob == pytest.approx(0.9)


def test_endpointer_short_pauses_and_hysteresis_keep_the_utterance() -> None:
    probs = [0.9] * 10 + [0.1] * 10 + [0.4] * 30 + [0.9] * 5 + [0.0] * 25
    events = run_endpointer(probs, VadConfig(min_silence_ms=600))
    assert [type(e).__name__ for _, e in events] == ["SpeechStart", "SpeechEnd"]  # one utterance
    assert EndPointer().is_long_enough(events[1][1])  # type: ignore[arg-type]



def test_endpointer_ends_a_long_utterance_at_a_shorter_pause() -> None:
    # A reader pauses 300-500 ms between clauses (two_cities.wav). Early in an utterance that is no end
    # (people pause mid-sentence), but after 3 s of speech it is: the final comes at the pause, not
    # seconds later from a cut inside the speech.
    config = VadConfig(min_silence_ms=600, long_speech_ms=3000, long_min_silence_ms=300)
    pause = [0.05] * 11  # 352 ms
    early = run_endpointer([0.9] * 40 + pause + [0.9] * 40 + [0.0] * 30, config)  # pause after 1.3 s
    assert [type(e).__name__ for _, e in early] == ["SpeechStart", "SpeechEnd"]
    assert early[1][0] > 91  # ended by the 600 ms after the second run, not at the pause
    late = run_endpointer([0.9] * 100 + pause + [0.9] * 40 + [0.0] * 30, config)  # pause after 3.2 s
    assert [type(e).__name__ for _, e in late] == ["SpeechStart", "SpeechEnd", "SpeechStart", "SpeechEnd"]
    assert late[1][0] == 100 + 9  # the 10th silent window: 320 ms
    ep = EndPointer(config)
    assert ep.silence_to_end() == 600
    for _ in range(94):
        ep.step(0.9)
    assert ep.silence_to_end() == 300


def test_endpointer_force_end() -> None:
    ep = EndPointer()
    assert ep.force_end() is None
    ep.step(0.95)
    end = ep.force_end()
    assert isinstance(end, SpeechEnd) and not ep.speaking
    assert not ep.is_long_enough(end)  # 32 ms of speech: a click, not an utterance


def score(text: str, no_speech: float = 0.05, logprob: float = -0.2, ratio: float = 1.3) -> SegmentScore:
    return SegmentScore(text, no_speech, logprob, ratio)


def test_gate_keeps_clear_speech_even_when_it_says_thank_you() -> None:
    assert rejection_reason(score(" Thank you."), vad_mean_prob=0.95) is None
    assert rejection_reason(score(" I slept better this week."), vad_mean_prob=0.9) is None


@pytest.mark.parametrize(
    ("segment", "vad_prob"),
    [
        (score(" Thank you.", no_speech=0.4), 0.9),  # Whisper doubts there was speech
        (score(" Thanks for watching!", logprob=-0.9), 0.9),  # unsure decode
        (score(" Subtitles by the Amara.org community"), 0.6),  # VAD barely heard speech
        (score(" Thank you.", ratio=1.0), 0.55),
        (score(" la la la la la la la la la la la la", ratio=3.1), 0.95),  # repetition loop
        (score(" Hello", no_speech=0.8, logprob=-1.2), 0.9),  # Whisper's own silence rule
        (score(" Hello", no_speech=0.7), 0.3),  # both models doubt it
        (score(" [MUSIC]"), 0.95),
        (score(" ♪ ♪"), 0.95),
    ],
)
def test_gate_rejects_hallucinations(segment: SegmentScore, vad_prob: float) -> None:
    assert rejection_reason(segment, vad_mean_prob=vad_prob) is not None


def test_blocklist() -> None:
    assert is_blocklisted("Thank you.")
    assert is_blocklisted("Subtítulos realizados por la comunidad de Amara.org")
    assert not is_blocklisted("Thank you for listening to me today")


def test_words_whisper_appends_where_the_audio_stops_are_dropped() -> None:
    # two_cities.wav 21.6-28.34 s, a final's audio ending 0.1 s after "way": base added a word of its own
    # with next to no probability ("Okay." 0.04, "Ready?" 0.06, "You" 0.01; in the benchmark "3.", "D.").
    said = [Word(5.84, 6.14, " the", 0.86), Word(6.14, 6.32, " other", 0.99), Word(6.32, 6.54, " way.", 1.0)]
    assert without_trailing_guesses([*said, Word(6.54, 6.58, " Okay.", 0.04)]) == said
    assert without_trailing_guesses([*said, Word(6.52, 6.6, " See", 0.05), Word(6.6, 6.7, " you.", 0.03)]) == said
    # Only at the end: an unsure word inside the sentence is still what was heard there.
    unsure = [Word(0.0, 0.3, " It", 0.9), Word(0.3, 0.5, " wass", 0.05), Word(0.5, 0.8, " cold.", 0.9)]
    assert without_trailing_guesses(unsure) == unsure
    assert without_trailing_guesses([]) == []


def test_int16_speech_helper_round_trips() -> None:
    x = np.array([0.0, 0.5, -0.5], dtype=np.float32)
    np.testing.assert_allclose(to_float32_mono(to_int16(x)), x, atol=1e-4)
