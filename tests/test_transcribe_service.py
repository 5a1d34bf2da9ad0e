"""CaptionService mechanics with a scripted stand-in for the Whisper model (fast, deterministic):
threads, event ordering and stability, shedding under load, close/gap finalisation, translation.

The stand-in replaces only ``WhisperModel``; audio, VAD, scheduling, commit policy and the engine's
result handling are the real code. Real-model behaviour is in test_transcribe_streaming.py.
"""

from __future__ import annotations

import asyncio
import itertools
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from tests.support.speech import (
    Recorder,
    check_caption_protocol,
    espeak,
    feed,
    have_espeak,
    load_48k,
    silence,
    to_int16,
)
from transcribe.service import CaptionService
from transcribe.stream import StreamConfig

pytestmark = pytest.mark.skipif(not have_espeak(), reason="espeak-ng not installed")

WORD_EVERY = 0.4  # the stand-in "hears" one word per 0.4 s of buffer


@dataclass
class ScriptedModel:
    """Quacks like faster_whisper.WhisperModel: word k of the buffer is "w<k>", spaced WORD_EVERY apart.

    The newest word is still being spoken, so it comes out misheard ("w<k>?") until more audio follows,
    which gives LocalAgreement something to disagree about.
    """

    delay: float = 0.02
    multilingual: bool = True
    language: str = "en"
    calls: list[dict] = field(default_factory=list)
    threads: set[str] = field(default_factory=set)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def __post_init__(self) -> None:
        self.model = SimpleNamespace(is_multilingual=self.multilingual)

    def transcribe(self, audio: np.ndarray, **kwargs: object) -> tuple[object, object]:
        with self.lock:
            self.calls.append({"seconds": len(audio) / 16000, **kwargs})
            self.threads.add(threading.current_thread().name)
        time.sleep(self.delay)
        duration = len(audio) / 16000
        if kwargs.get("task") == "translate":
            segs = [self._segment(0.0, duration, [(0.0, duration, " translated text")])]
        else:
            n = int(duration / WORD_EVERY)
            words = [(k * WORD_EVERY, k * WORD_EVERY + 0.3, f" w{k}") for k in range(n)]
            if words and kwargs.get("beam_size", 1) == 1:  # partial pass: last word not yet clear
                a, b, t = words[-1]
                words[-1] = (a, b, t + "?")
            segs = [self._segment(0.0, duration, words)] if words else []
        info = SimpleNamespace(language=kwargs.get("language") or self.language, language_probability=0.99)
        return iter(segs), info

    @staticmethod
    def _segment(start: float, end: float, words: list[tuple[float, float, str]]) -> object:
        return SimpleNamespace(
            start=start,
            end=end,
            text="".join(w for _, _, w in words),
            words=[SimpleNamespace(start=a, end=b, word=t, probability=0.9) for a, b, t in words],
            no_speech_prob=0.01,
            avg_logprob=-0.1,
            compression_ratio=1.2,
        )


@pytest.fixture(scope="module")
def speech(tmp_path_factory: pytest.TempPathFactory) -> np.ndarray:
    """About 5 s of English speech at 48 kHz, with silence around it."""
    path = espeak(
        "We meet every Tuesday evening, and everyone is welcome to share or to listen.",
        "en",
        Path(tmp_path_factory.mktemp("speech")),
    )
    return np.concatenate([silence(0.5), load_48k(path), silence(1.2)])


def committed_part(text: str) -> str:
    """The stand-in marks its tentative last word with '?'; everything before it is committed."""
    return " ".join(w for w in text.split() if not w.endswith("?"))


async def test_partials_then_final_on_the_loop_thread_decodes_in_workers(speech: np.ndarray) -> None:
    model = ScriptedModel()
    rec = Recorder()
    service = CaptionService(model, rec, workers=1)  # type: ignore[arg-type]
    stream = service.open_stream("p1", "Robin", language="en")
    await feed(stream, to_int16(speech), start_time=100.0, speed=4.0)  # int16, like a decoder gives
    await stream.close()
    await service.close()

    assert rec.threads == {threading.get_ident()}  # on_caption only ever ran on the loop thread
    assert model.threads and all(name.startswith("captions-decode") for name in model.threads)
    check_caption_protocol(rec.events)
    segments = rec.by_segment()
    assert len(segments) == 1
    (events,) = segments.values()
    partials, final = events[:-1], events[-1]
    assert partials and all(not p.final for p in partials) and final.final
    commits = [committed_part(p.text) for p in partials]
    assert all(b.startswith(a) for a, b in itertools.pairwise(commits))
    assert final.text.startswith(commits[-1])
    assert "?" not in final.text
    assert final.speaker_id == "p1" and final.speaker_name == "Robin" and final.language == "en"
    assert 100.0 <= final.start < final.end <= 100.0 + len(speech) / 48_000
    stats = service.stats()
    assert stats["final_decodes"] == 1 and stats["partial_decodes"] >= 2
    assert stats["finals_emitted"] == 1 and stats["partials_emitted"] == len(partials)


async def test_load_shedding_keeps_up_and_every_utterance_gets_a_final(speech: np.ndarray) -> None:
    # Each decode takes 0.8 s of one worker; three people talk at once at real time: far beyond capacity.
    model = ScriptedModel(delay=0.8)
    rec = Recorder()
    service = CaptionService(model, rec, workers=1)  # type: ignore[arg-type]
    streams = [service.open_stream(f"p{i}", f"P{i}", language="en") for i in range(3)]
    ended_at = 0.0

    async def talk(stream: object) -> None:
        nonlocal ended_at
        await feed(stream, speech, speed=1.0)
        ended_at = time.monotonic()

    max_pending = 0
    max_interval = 0.0

    async def watch() -> None:
        nonlocal max_pending, max_interval
        while True:
            now = service.stats()
            max_pending = max(max_pending, int(now["pending_jobs"]))
            max_interval = max(max_interval, float(now["partial_interval_s"]))
            await asyncio.sleep(0.05)

    watcher = asyncio.create_task(watch())
    await asyncio.gather(*(talk(s) for s in streams))
    await asyncio.gather(*(s.close() for s in streams))
    finals_done = time.monotonic()
    watcher.cancel()
    stats = service.stats()
    await service.close()

    check_caption_protocol(rec.events)
    finals = [e for e in rec.events if e.final]
    assert sorted(e.speaker_id for e in finals) == ["p0", "p1", "p2"]  # finals are never shed
    assert stats["partials_shed"] + stats["partials_coarsened"] > 0
    assert max_interval > 2.0  # updates were spaced out to the measured decode cost x speakers
    assert max_pending <= 3 * 2  # at most one partial + one final waiting per speaker
    # Bounded latency: the three finals (plus at most the partials already running) fit in a few decodes.
    assert finals_done - ended_at < 6 * 0.8 + 1.0


async def test_push_never_waits_for_the_model(speech: np.ndarray) -> None:
    model = ScriptedModel(delay=1.5)
    service = CaptionService(model, Recorder(), workers=1)  # type: ignore[arg-type]
    stream = service.open_stream("p1", "P", language="en")
    slowest = 0.0
    room_time = 0.0
    for i in range(0, len(speech), 960):
        t = time.perf_counter()
        stream.push(speech[i : i + 960], room_time)
        slowest = max(slowest, time.perf_counter() - t)
        room_time += 0.02
        if i % (960 * 5) == 0:
            await asyncio.sleep(0)
    assert slowest < 0.05  # decodes of 1.5 s were running meanwhile
    await service.close()


async def test_close_finalises_speech_that_has_not_ended(speech: np.ndarray) -> None:
    rec = Recorder()
    service = CaptionService(ScriptedModel(), rec)  # type: ignore[arg-type]
    stream = service.open_stream("p1", "P", language="en")
    await feed(stream, speech[: int(3.0 * 48_000)], speed=4.0)  # cut mid-sentence, no trailing silence
    await service.close()  # closes the stream too
    assert [e.final for e in rec.events][-1] is True
    assert stream.closed and service.stats()["streams_open"] == 0
    stream.push(speech[:960], 10.0)  # ignored after close


async def test_gap_in_room_time_ends_the_utterance(speech: np.ndarray) -> None:
    rec = Recorder()
    service = CaptionService(ScriptedModel(), rec)  # type: ignore[arg-type]
    stream = service.open_stream("p1", "P", language="en")
    part = speech[: int(3.0 * 48_000)]
    end = await feed(stream, part, speed=4.0)
    await feed(stream, part, start_time=end + 5.0, speed=4.0)  # 5 s without audio (mic muted, DTX)
    await stream.close()
    await service.close()
    finals = [e for e in rec.events if e.final]
    assert len(finals) == 2 and finals[0].segment_id != finals[1].segment_id
    assert finals[0].end <= end + 0.01 and finals[1].start >= end + 5.0
    assert service.stats()["gap_ends"] == 1


async def test_translation_event_follows_the_final(speech: np.ndarray) -> None:
    rec = Recorder()
    model = ScriptedModel()
    service = CaptionService(model, rec, also_translate_to_english=True)  # type: ignore[arg-type]
    spanish = service.open_stream("p1", "Ana", language="es")
    english = service.open_stream("p2", "Bo", language="en")
    await asyncio.gather(feed(spanish, speech, speed=4.0), feed(english, speech, speed=4.0))
    await service.close()
    check_caption_protocol(rec.events)
    translations = [e for e in rec.events if e.task == "translate"]
    assert len(translations) == 1  # English speech needs no translation
    (tr,) = translations
    final = next(e for e in rec.events if e.final and e.task == "transcribe" and e.speaker_id == "p1")
    assert tr.segment_id == final.segment_id and tr.language == "en" and tr.text == "translated text"
    assert (tr.start, tr.end) == (final.start, final.end) and final.language == "es"
    call = next(c for c in model.calls if c.get("task") == "translate")
    assert call["language"] == "es"


async def test_english_only_model_never_translates_and_reports_english(speech: np.ndarray) -> None:
    rec = Recorder()
    model = ScriptedModel(multilingual=False)
    service = CaptionService(model, rec, also_translate_to_english=True)  # type: ignore[arg-type]
    stream = service.open_stream("p1", "P")  # auto-detect requested, but tiny.en only knows English
    await feed(stream, speech, speed=4.0)
    await service.close()
    assert rec.events and all(e.language == "en" and e.task == "transcribe" for e in rec.events)
    assert all(c["language"] == "en" and c["task"] == "transcribe" for c in model.calls)


async def test_speaker_rename_and_language_switch_apply_to_later_captions(speech: np.ndarray) -> None:
    rec = Recorder()
    model = ScriptedModel()
    service = CaptionService(model, rec)  # type: ignore[arg-type]
    stream = service.open_stream("p1", "Old name")
    end = await feed(stream, speech, speed=4.0)
    await asyncio.sleep(0.3)
    stream.set_speaker_name("New name")
    stream.set_language("fr")
    await feed(stream, speech, start_time=end, speed=4.0)
    await service.close()
    finals = [e for e in rec.events if e.final]
    # A long sentence may be cut at a pause into several finals; each keeps its own utterance's name.
    pairs = [(f.speaker_name, f.language) for f in finals]
    switch = pairs.index(("New name", "fr"))
    assert switch > 0 and set(pairs[:switch]) == {("Old name", "en")} and set(pairs[switch:]) == {("New name", "fr")}
    assert model.calls[0]["language"] is None  # auto-detect until told
    assert model.calls[-1]["language"] == "fr"


async def run_once(audio: np.ndarray, config: StreamConfig) -> tuple[list[str], dict[str, int | float]]:
    rec = Recorder()
    service = CaptionService(ScriptedModel(), rec, workers=1, config=config)  # type: ignore[arg-type]
    stream = service.open_stream("p1", "Robin", language="en")
    await feed(stream, to_int16(audio), speed=2.0)
    await stream.close()
    stats = service.stats()
    await service.close()
    check_caption_protocol(rec.events)
    return [e.text for e in rec.events if e.final], stats


async def test_final_decode_starts_in_the_trailing_silence_and_gives_the_same_final(speech: np.ndarray) -> None:
    # final_beam_size=5: the stand-in tells finals from partials by beam size.
    early, early_stats = await run_once(speech, StreamConfig(final_beam_size=5))
    late, late_stats = await run_once(speech, StreamConfig(final_beam_size=5, speculate_after_ms=0))
    assert early_stats["finals_speculated"] == 1 and late_stats["finals_speculated"] == 0
    assert len(early) == len(late) == 1
    # Same audio up to one 32 ms window, so at most one stand-in word apart.
    assert abs(len(early[0].split()) - len(late[0].split())) <= 1 and "?" not in early[0]


async def test_a_pause_shorter_than_the_end_of_speech_drops_the_early_final(speech: np.ndarray) -> None:
    voiced = speech[int(0.5 * 48_000):-int(1.2 * 48_000)]
    half = len(voiced) // 2
    audio = np.concatenate([silence(0.3), voiced[:half], silence(0.45), voiced[half:], silence(1.2)])
    # No cut at the pause (pause_cut_after_s): this is about the speculative final decode alone.
    finals, stats = await run_once(audio, StreamConfig(final_beam_size=5, pause_cut_after_s=60))
    assert stats["speculations_dropped"] >= 1
    assert len(finals) == 1  # one utterance: the early decode of its first half was discarded
    assert len(finals[0].split()) >= int(len(voiced) / 48_000 / WORD_EVERY) - 2


async def test_a_speaker_going_on_after_a_short_pause_keeps_the_detected_language(speech: np.ndarray) -> None:
    # No language declared: detected per utterance. After a short pause the same speaker goes on, and the
    # next utterance is decoded with the first as its context; detected afresh on a short clause, base
    # heard the end of a Spanish talk ("Gracias por escucharme") as Italian. The stand-in "detects" Italian
    # for the second utterance: the stream keeps the Spanish it locked.
    voiced = speech[int(0.5 * 48_000):-int(1.2 * 48_000)]
    model = ScriptedModel(language="es")
    rec = Recorder()
    service = CaptionService(model, rec, workers=1)  # type: ignore[arg-type]
    stream = service.open_stream("p1", "Robin")
    end = await feed(stream, np.concatenate([silence(0.3), voiced, silence(1.0)]), speed=4.0)
    await asyncio.sleep(0.5)
    model.language = "it"
    await feed(stream, np.concatenate([voiced, silence(1.2)]), start_time=end, speed=4.0)
    await service.close()
    finals = [e for e in rec.events if e.final]
    assert len(finals) >= 2 and {f.language for f in finals} == {"es"}, finals
    assert model.calls[-1]["language"] == "es"


async def test_decode_observer_sees_every_decode_and_the_captions_it_produced(speech: np.ndarray) -> None:
    # The hook bench.captions times finals with (instead of patching the scheduler's methods).
    log: list[tuple[str, str]] = []

    class Observer:
        def decode_started(self, trace) -> None:  # type: ignore[no-untyped-def]
            log.append(("started", trace.kind.name))
            assert trace.started_at >= trace.requested_at and trace.audio_seconds > 0

        def decode_finished(self, trace) -> None:  # type: ignore[no-untyped-def]
            log.append(("finished", trace.kind.name))
            assert trace.finished_at >= trace.started_at and trace.decode_seconds is not None

        def decode_applied(self, trace) -> None:  # type: ignore[no-untyped-def]
            log.append(("applied", trace.kind.name))

    def on_caption(caption) -> None:  # type: ignore[no-untyped-def]
        log.append(("caption", "final" if caption.final else "partial"))

    # No early final: a speculative final's caption is emitted when the silence lasts, after its decode.
    config = StreamConfig(speculate_after_ms=0)
    service = CaptionService(ScriptedModel(), on_caption, workers=1, config=config)  # type: ignore[arg-type]
    service.observe_decodes(Observer())
    stream = service.open_stream("p1", "Robin", language="en")
    await feed(stream, speech, speed=4.0)
    await service.close()
    stats = service.stats()
    assert sum(1 for event, _ in log if event == "started") == stats["decodes_run"]
    assert sum(1 for event, _ in log if event == "applied") == stats["decodes_run"]
    final_at = log.index(("caption", "final"))
    assert log[final_at - 1] == ("finished", "FINAL") and log[final_at + 1] == ("applied", "FINAL")


@dataclass
class CollapsingModel(ScriptedModel):
    """Hears only the first second of a buffer that starts in speech (one with left context: an utterance
    alone starts with its pre-roll's silence), as base does when a line repeats what the context just
    said (it transcribes the first instance and stops)."""

    def transcribe(self, audio: np.ndarray, **kwargs: object) -> tuple[object, object]:
        segments, info = super().transcribe(audio, **kwargs)
        starts_in_speech = float(np.sqrt(np.mean(audio[:3200] ** 2))) > 0.01
        if starts_in_speech and kwargs.get("task") != "translate":
            segments = iter([self._segment(0.0, 1.0, [(0.0, 0.3, " w0"), (0.4, 0.7, " w1")])])
        return segments, info


async def test_an_utterance_whisper_hears_only_as_its_context_is_decoded_alone(speech: np.ndarray) -> None:
    rec = Recorder()
    # The whole 3 s of context, as a short utterance gets it (this one is ~5 s, whose context is cut).
    config = StreamConfig(context_with_buffer_s=9.0)
    service = CaptionService(CollapsingModel(), rec, workers=1, config=config)  # type: ignore[arg-type]
    stream = service.open_stream("p1", "Robin", language="en")
    end = await feed(stream, speech, speed=4.0)  # ends in 1.2 s of silence: the next one has left context
    await feed(stream, speech, start_time=end, speed=4.0)
    await service.close()
    finals = [e for e in rec.events if e.final]
    assert len(finals) == 2 and all(f.text for f in finals), [f.text for f in finals]
    assert service.stats()["context_retries"] >= 1


async def test_a_partial_that_may_settle_a_final_goes_before_other_partials() -> None:
    from transcribe.engine import DecodeRequest, WhisperEngine
    from transcribe.scheduler import DecodeScheduler, Job, JobKind, Prepared

    scheduler = DecodeScheduler(WhisperEngine(ScriptedModel(delay=0.2)), workers=1)  # type: ignore[arg-type]
    order: list[str] = []
    done = asyncio.Event()

    def job(owner: str, kind: JobKind = JobKind.PARTIAL, urgent: bool = False) -> Job:
        def prepare() -> Prepared:
            def on_done(hyp: object, error: BaseException | None) -> None:
                order.append(owner)
                if len(order) == 5:
                    done.set()
            return Prepared(DecodeRequest(np.zeros(16000, dtype=np.float32), language="en"), on_done)
        return Job(kind, owner, prepare, urgent=urgent)

    scheduler.submit(job("busy"))  # takes the only worker
    scheduler.submit(job("a"))
    scheduler.submit(job("b", urgent=True))
    scheduler.submit(job("c"))
    scheduler.submit(job("c", urgent=True))  # replaces c's queued partial, and keeps its place in time
    scheduler.submit(job("final", JobKind.FINAL))
    await asyncio.wait_for(done.wait(), 10)
    await scheduler.close()
    # Finals first, then the urgent partials in request order, then the rest.
    assert order == ["busy", "final", "b", "c", "a"]
