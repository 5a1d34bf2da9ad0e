"""Live captions benchmark: speech streamed in real time into a real room, captions timed at a listener.

    python -m bench.captions [--audio WAV --text REFERENCE.txt] [--model base] [--max-speakers 6]

By default it runs real human speech (tests/support/real_speech.py: two_cities.wav, beckett.wav,
endgame_nagg_nell.wav from the moonshine-voice 0.1.5 wheel, fetched by ``make test-data``) and today's
synthetic espeak-ng monologue, one row per clip; ``--audio``/``--text`` runs one clip of your own instead.

A real peerwell server (CaptionsObserver + CaptionService) runs on 127.0.0.1 in this process; aiortc
publishers stream an Opus clip in real time (sample t of the clip leaves the publisher at publish start
+ t) and an aiortc listener records every caption message with its arrival time. Arrival times are
expressed in the speaker's audio clock (arrival - publish start), so latencies read as "seconds after
the word was spoken". Word end times come from an offline run of the same model on the same audio
(plain faster-whisper, whole clip, word_timestamps=True, the clip's language given as the speakers do).

- partial latency: per offline word, first arrival of that word in any caption (partial or final; words
  matched in order after normalize_for_wer) minus the word's end;
- final latency: per final caption, its arrival minus the end of its last word (offline timestamps
  aligned to the final's text; the caption's own ``end`` if nothing aligns);
- WER of the concatenated finals and of the offline transcript vs the reference (same normaliser); a clip
  without a published text uses the offline transcript as its reference ("not worse than offline");
- inserted words: words of the streamed finals that align to nothing in the reference (jiwer insertions);
- erasure: words shown and then withdrawn (what each caption update removes from the end of what the
  listener saw: finals so far + the current partial), divided by the words of the finals (normalised
  erasure, Arivazhagan et al. 2020, "Re-translation strategies for long form, simultaneous, spoken
  language translation");
- max_realtime_speakers: 1, 2, 3, ... concurrent speakers (the same real clip, staggered by 1 s) until
  final latency p95 exceeds 3 s (capped, and bounded by a time budget).

Where a final's latency goes is measured through CaptionService.observe_decodes (read-only).
Prints a table; the last line is one JSON object: latencies pooled over the real-speech clips, the WER
pair of the real clip furthest behind offline, inserted words summed and erasure pooled over them.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import tempfile
import time
from dataclasses import dataclass, field
from difflib import SequenceMatcher
from pathlib import Path

import numpy as np

from sfu import aiortc_adapter
from sfu.contrib.client import RoomClient, encode_opus_clip
from tests.support import real_speech
from tests.support.speech import (
    erased_words,
    espeak,
    have_espeak,
    inserted_words,
    load_48k,
    normalize_for_wer,
    silence,
    to_int16,
    wer,
)
from transcribe.audio import WHISPER_RATE, Resampler
from transcribe.decoders import DecoderLayout, decoder_layout, usable_cores

RATE = 48_000
FINAL_P95_LIMIT_S = 3.0
STAGGER_S = 1.0
TAIL_S = 3.0  # silence after the clip, so the last utterance ends by VAD as in a real pause
SETTLE_CAP_S = 20.0  # after the last speech ends, wait at most this long for decoding to finish

# A support-group check-in, one sentence per utterance, with pauses a speaker would leave.
MONOLOGUE = (
    "Hi everyone, my name is Sam, and this is my third week in the group.",
    "I wanted to share how things have been going since our last meeting.",
    "Work has been stressful, and some nights I only sleep four or five hours.",
    "On Tuesday I called my brother for the first time in months.",
    "We talked for almost an hour, and it felt good to be honest with him.",
    "I am still anxious in the mornings, but the breathing exercise helps.",
    "Thank you all for listening, it means a lot to me.",
)
PAUSES_S = (1.2, 1.6, 1.0, 2.0, 1.4, 1.8)
LEAD_S = 0.5


@dataclass
class Clip:
    name: str
    audio: np.ndarray  # float32 mono 48 kHz, without the silent tail
    reference: str | None  # None: the offline transcript is the reference
    language: str
    real: bool = True  # human speech (the targets apply), or synthetic

    @property
    def seconds(self) -> float:
        return len(self.audio) / RATE


@dataclass
class OfflineWord:
    word: str  # one normalised token
    start: float
    end: float  # seconds of clip audio


@dataclass
class Offline:
    text: str
    words: list[OfflineWord]
    decode_seconds: float
    language: str


@dataclass
class SpeakerRun:
    name: str
    participant_id: str
    start_perf: float  # perf_counter when frame 0 (clip sample 0) was sent
    start_room: float  # the same instant in room time
    events: list[tuple[float, dict]] = field(default_factory=list)  # (arrival in clip seconds, caption)


@dataclass
class RunResult:
    label: str
    speakers: int
    partial_latencies: list[float]
    final_latencies: list[float]
    final_latencies_by_end: list[float]  # same, against the caption's own `end`
    wer_stream: float  # mean over speakers
    words_seen: int
    words_in_finals: int
    words_total: int
    finals: int
    empty_finals: int
    partials: int
    settled: bool  # decoding finished before the cut-off
    stats: dict[str, int | float]
    wall_seconds: float
    texts: list[str] = field(default_factory=list)  # each speaker's finals, concatenated
    breakdown: Breakdown = field(default_factory=lambda: Breakdown())
    clip: str = ""
    real: bool = True
    wer_offline: float = 0.0
    inserted: int = 0  # words of the finals aligned to nothing in the reference (all speakers)
    erased: int = 0
    final_words: int = 0
    per_final: list[str] = field(default_factory=list)  # the first speaker's finals, one line each

    @property
    def erasure(self) -> float:
        return self.erased / self.final_words if self.final_words else 0.0

    def within_limit(self) -> bool:
        p95 = pct(self.final_latencies, 95)
        return (self.settled and p95 is not None and p95 <= FINAL_P95_LIMIT_S
                and not self.stats.get("finals_dropped") and self.finals > 0)


def pct(values: list[float], q: float) -> float | None:
    return float(np.percentile(values, q)) if values else None


def fmt(value: float | None, digits: int = 2) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


# -- audio ------------------------------------------------------------------------------------------------
def monologue_clip(tmp: Path) -> Clip:
    parts = [silence(LEAD_S)]
    for i, sentence in enumerate(MONOLOGUE):
        parts.append(load_48k(espeak(sentence, "en", tmp, name=f"s{i}")))
        if i < len(PAUSES_S):
            parts.append(silence(PAUSES_S[i]))
    return Clip("espeak-ng monologue", np.concatenate(parts).astype(np.float32), " ".join(MONOLOGUE), "en",
                real=False)


def file_clip(audio: Path, text: Path, language: str) -> Clip:
    return Clip(audio.name, load_48k(audio), text.read_text(encoding="utf-8").strip(), language)


def real_clips() -> list[Clip]:
    return [Clip(c.name, load_48k(real_speech.clip_path(c.name)), c.reference, c.language) for c in real_speech.CLIPS]


def to_16k(audio: np.ndarray) -> np.ndarray:
    return Resampler(RATE, WHISPER_RATE).process(audio.astype(np.float32))


def offline_model(model_name: str) -> object:
    """Plain faster-whisper (its full 30 s encoder window), so the yardstick is not our own adapter."""
    from models.whisper import resolve_whisper_model
    from transcribe.whisper_adapter import load_whisper_model

    return load_whisper_model(resolve_whisper_model(model_name), window_pad_s=None)


def offline_transcript(model: object, clip: Clip, language: str | None) -> Offline:
    """The same model on the whole clip at once: the reference word timings and the WER yardstick."""
    started = time.perf_counter()
    segments, info = model.transcribe(  # type: ignore[attr-defined]
        to_16k(clip.audio), word_timestamps=True, language=language)
    words: list[OfflineWord] = []
    texts: list[str] = []
    for seg in segments:
        texts.append(seg.text)
        for w in seg.words or ():
            for token in normalize_for_wer(w.word, clip.language).split():
                words.append(OfflineWord(token, float(w.start), float(w.end)))
    return Offline("".join(texts).strip(), words, time.perf_counter() - started, info.language)


# -- scoring ----------------------------------------------------------------------------------------------
@dataclass
class SpeakerScore:
    partial: list[float]
    final: list[float]
    final_by_end: list[float]
    text: str  # the finals, concatenated in arrival order
    seen: int  # offline words that appeared in some caption
    covered: int  # offline words matched exactly by the finals
    finals: int
    empty_finals: int
    partials: int
    timed_finals: list[tuple[str, float, float]]  # (segment_id, arrival, last word end), clip seconds
    erased: int  # words shown then withdrawn


def score_speaker(speaker: SpeakerRun, offline: Offline, language: str) -> SpeakerScore:
    """Align what the listener saw, in order, to the offline words."""
    ref = [w.word for w in offline.words]
    seen: list[float | None] = [None] * len(ref)
    final_words: list[str] = []
    finals: list[tuple[float, int, int, dict]] = []  # (arrival, first word, end word, caption)
    partials = 0
    erased = 0
    displayed: list[str] = []
    for arrival, event in speaker.events:
        words = normalize_for_wer(event["text"], language).split()
        if event["final"]:
            finals.append((arrival, len(final_words), len(final_words) + len(words), event))
            final_words += words
            shown = list(final_words)
        else:
            partials += 1
            shown = final_words + words  # finals so far, then the segment in progress
        erased += erased_words(displayed, shown)
        displayed = shown
        for block in SequenceMatcher(None, shown, ref, autojunk=False).get_matching_blocks():
            for j in range(block.b, block.b + block.size):
                if seen[j] is None:
                    seen[j] = arrival
    partial = [t - w.end for t, w in zip(seen, offline.words, strict=True) if t is not None]

    # Each word of the finals mapped to an offline word: equal runs exactly, replaced runs in order.
    mapping: dict[int, int] = {}
    covered = 0
    for op, i1, i2, j1, j2 in SequenceMatcher(None, final_words, ref, autojunk=False).get_opcodes():
        if op == "equal":
            covered += i2 - i1
        if op in ("equal", "replace"):
            for i in range(i1, i2):
                mapping[i] = j1 + min(i - i1, j2 - j1 - 1)
    final: list[float] = []
    by_end: list[float] = []
    timed: list[tuple[str, float, float]] = []
    empty = 0
    for arrival, i0, i1, event in finals:
        if i0 == i1:
            empty += 1  # a segment whose partials were all retracted: nothing to time
            continue
        own_end = event["end"] - speaker.start_room
        by_end.append(arrival - own_end)
        last = next((mapping[i] for i in range(i1 - 1, i0 - 1, -1) if i in mapping), None)
        word_end = offline.words[last].end if last is not None else own_end
        final.append(arrival - word_end)
        timed.append((event["segment_id"], arrival, word_end))
    text = " ".join(event["text"] for _, _, _, event in finals)
    return SpeakerScore(partial, final, by_end, text, sum(t is not None for t in seen), covered,
                        len(finals), empty, partials, timed, erased)


# -- where the time goes (observation only) ---------------------------------------------------------------
class DecodeTimer:
    """Timestamps every decode job of a CaptionService (CaptionService.observe_decodes): queued, started,
    result applied, and for finals the caption emitted while the result was applied."""

    def __init__(self) -> None:
        self.jobs: list[dict] = []
        self.by_segment: dict[str, dict] = {}
        self.enabled = False
        self._current: dict | None = None

    def attach(self, service: object) -> None:
        service.observe_decodes(self)  # type: ignore[attr-defined]
        self.enabled = True

    def decode_started(self, trace: object) -> None:
        pass

    def decode_finished(self, trace: object) -> None:
        self._current = {"kind": trace.kind.name.lower(), "submitted": trace.requested_at,  # type: ignore[attr-defined]
                         "started": trace.started_at, "audio_s": trace.audio_seconds,  # type: ignore[attr-defined]
                         "decode_s": trace.decode_seconds}  # type: ignore[attr-defined]
        self.jobs.append(self._current)

    def decode_applied(self, trace: object) -> None:
        self._current = None

    def caption_emitted(self, caption: object) -> None:
        record = self._current
        if record is not None and record["kind"] == "final" and getattr(caption, "final", False):
            record["emitted"] = time.perf_counter()
            self.by_segment[caption.segment_id] = record  # type: ignore[attr-defined]


@dataclass
class Breakdown:
    """Medians, seconds. endpoint: last word end -> final decode queued (VAD silence); queue: waiting for
    the decoder (usually a partial decode in flight); decode: the final decode (beam 5) until its result is
    applied; deliver: emitted -> arrival at the listener."""

    endpoint: float | None = None
    queue: float | None = None
    decode: float | None = None
    deliver: float | None = None
    final_audio: float | None = None
    partial_decode: float | None = None
    partial_audio: float | None = None
    timed: int = 0


def breakdown(timer: DecodeTimer, runs: list[SpeakerRun], scores: list[SpeakerScore]) -> Breakdown:
    if not timer.enabled:
        return Breakdown()
    parts: dict[str, list[float]] = {k: [] for k in ("endpoint", "queue", "decode", "deliver", "final_audio")}
    for run, score in zip(runs, scores, strict=True):
        for segment_id, arrival, word_end in score.timed_finals:
            rec = timer.by_segment.get(segment_id)
            if rec is None or "emitted" not in rec:
                continue  # e.g. a final cut from a long buffer by a partial decode
            parts["endpoint"].append(rec["submitted"] - run.start_perf - word_end)
            parts["queue"].append(rec["started"] - rec["submitted"])
            parts["decode"].append(rec["emitted"] - rec["started"])
            parts["deliver"].append(arrival - (rec["emitted"] - run.start_perf))
            parts["final_audio"].append(rec["audio_s"])
    partial = [j for j in timer.jobs if j["kind"] == "partial" and j.get("decode_s") is not None]
    return Breakdown(**{k: pct(v, 50) for k, v in parts.items()},
                     partial_decode=pct([j["decode_s"] for j in partial], 50),
                     partial_audio=pct([j["audio_s"] for j in partial], 50), timed=len(parts["decode"]))


# -- one room ---------------------------------------------------------------------------------------------
async def first_frame_sent(client: RoomClient, timeout: float = 15.0) -> float:
    deadline = time.perf_counter() + timeout
    while time.perf_counter() < deadline:
        track = client.audio_track
        if track is not None and 0 in track.sent_at:
            return track.sent_at[0]
        await asyncio.sleep(0.005)
    raise RuntimeError(f"{client.name}: no audio sent within {timeout} s")


async def declare_language(client: RoomClient, language: str, timeout: float = 10.0) -> None:
    """What a participant's language choice sends; without it the room auto-detects per utterance."""
    deadline = time.perf_counter() + timeout
    while client.channel.readyState != "open" and time.perf_counter() < deadline:
        await asyncio.sleep(0.005)
    client.send_channel({"type": "set-spoken-language", "language": language})


async def run_room(label: str, clip: Clip, opus: list[bytes], offline: Offline, *, model: str, speakers: int,
                   workers: int, cpu_threads: int, spoken_language: str | None = None) -> RunResult:
    from aiohttp import web

    from peerwell.captioning import CaptionsObserver
    from sfu.app import create_app
    from sfu.config import ServerConfig
    from sfu.signaling.websocket import ROOMS_KEY
    from transcribe.events import Caption
    from transcribe.service import CaptionService
    from transcribe.transcriber import LocalTranscriber

    wall_start = time.perf_counter()
    timer = DecodeTimer()

    class TimedTranscriber(LocalTranscriber):
        def open_stream(self, speaker_id, language, *, english, on_caption, on_english):  # type: ignore[no-untyped-def]
            def timed(caption: Caption) -> None:
                timer.caption_emitted(caption)
                on_caption(caption)
            return super().open_stream(speaker_id, language, english=english, on_caption=timed, on_english=on_english)

    service = await asyncio.to_thread(CaptionService.from_model_name, None, model,
                                      workers=workers, cpu_threads=cpu_threads)
    timer.attach(service)
    observer = CaptionsObserver(TimedTranscriber(service), None)
    app = create_app(ServerConfig(ice_hosts=("127.0.0.1",), reconnect_grace=0), [observer])
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    url = f"ws://127.0.0.1:{port}/ws"
    room_name = f"bench-w{workers}x{cpu_threads}-n{speakers}"
    clients: list[RoomClient] = []
    arrivals: list[tuple[float, dict]] = []
    try:
        listener = RoomClient(url, room_name, "Listener", keep_frames=False,
                              on_event=lambda event: arrivals.append((time.perf_counter(), event)))
        clients.append(listener)
        await listener.join()
        room = app[ROOMS_KEY].rooms[room_name]
        perf_to_monotonic = time.monotonic() - time.perf_counter()
        runs: list[SpeakerRun] = []
        for i in range(speakers):
            if i:
                await asyncio.sleep(max(0.0, runs[-1].start_perf + STAGGER_S - time.perf_counter()))
            speaker = RoomClient(url, room_name, f"Speaker {i + 1}", audio_frames=opus, loop_audio=False,
                                 keep_frames=False, tag=i)
            clients.append(speaker)
            await speaker.join()
            if spoken_language:
                await declare_language(speaker, spoken_language)
            start = await first_frame_sent(speaker)
            assert speaker.participant_id is not None
            runs.append(SpeakerRun(speaker.name, speaker.participant_id, start,
                                   room.room_time(start + perf_to_monotonic)))
        # Wait out the speech, then until the decoders are idle (every final decoded and sent).
        speech_end = runs[-1].start_perf + clip.seconds
        await asyncio.sleep(max(0.0, speech_end + 1.5 - time.perf_counter()))
        settled = False
        while time.perf_counter() < speech_end + SETTLE_CAP_S:
            stats = service.stats()
            if not stats["pending_jobs"] and not stats["decodes_in_flight"]:
                settled = True
                break
            await asyncio.sleep(0.1)
        await asyncio.sleep(0.5)  # the last messages over the data channel
        stats = service.stats()
        received = list(arrivals)
    finally:
        for client in reversed(clients):
            await client.leave()
        await runner.cleanup()
        await observer.close()

    by_id = {r.participant_id: r for r in runs}
    for arrived, event in received:
        run = by_id.get(event.get("speaker_id", "")) if event.get("type") == "caption" else None
        if run is not None:
            run.events.append((arrived - run.start_perf, event))
    scores = [score_speaker(r, offline, clip.language) for r in runs]
    reference = reference_text(clip, offline)
    texts = {e["segment_id"]: e["text"] for r in runs for _, e in r.events if e["final"]}

    def final_line(segment_id: str, arrival: float, word_end: float, speaker: int) -> str:
        record = timer.by_segment.get(segment_id)
        return (f"{speaker + 1:>3} {word_end:7.2f} {arrival - word_end:6.2f} {'end' if record else 'other':>5} "
                f"{record['audio_s'] if record else 0:6.1f}  {texts.get(segment_id, '')}")

    timed = [(arrival - word_end, final_line(segment_id, arrival, word_end, i))
             for i, score in enumerate(scores) for segment_id, arrival, word_end in score.timed_finals]
    # The first speaker's finals in order, then (with several speakers) the slowest of the others.
    first = [final_line(*f, 0) for f in (scores[0].timed_finals if scores else [])]
    slowest = [line for _, line in sorted(timed, reverse=True)[:5] if not line.startswith("  1 ")]
    per_final = first + (["slowest finals of the other speakers:", *slowest] if slowest else [])
    decodes = sorted((j for j in timer.jobs if j.get("decode_s") is not None), key=lambda j: -j["decode_s"])[:4]
    per_final += ["longest decodes (kind, audio s, queued s, decode s): " + ", ".join(
        f"{j['kind']} {j['audio_s']:.1f} {j['started'] - j['submitted']:.2f} {j['decode_s']:.2f}" for j in decodes)]
    return RunResult(
        label=label, speakers=speakers,
        partial_latencies=[x for s in scores for x in s.partial],
        final_latencies=[x for s in scores for x in s.final],
        final_latencies_by_end=[x for s in scores for x in s.final_by_end],
        wer_stream=float(np.mean([wer(reference, s.text, clip.language) for s in scores])),
        words_seen=sum(s.seen for s in scores), words_in_finals=sum(s.covered for s in scores),
        words_total=len(offline.words) * speakers, finals=sum(s.finals for s in scores),
        empty_finals=sum(s.empty_finals for s in scores), partials=sum(s.partials for s in scores),
        settled=settled, stats=stats, wall_seconds=time.perf_counter() - wall_start,
        texts=[s.text for s in scores], breakdown=breakdown(timer, runs, scores), clip=clip.name, real=clip.real,
        wer_offline=wer(reference, offline.text, clip.language),
        inserted=sum(inserted_words(reference, s.text, clip.language) for s in scores),
        erased=sum(s.erased for s in scores),
        final_words=sum(len(normalize_for_wer(s.text, clip.language).split()) for s in scores),
        per_final=per_final)


def reference_text(clip: Clip, offline: Offline) -> str:
    return clip.reference if clip.reference is not None else offline.text


# -- report -----------------------------------------------------------------------------------------------
STAT_KEYS = (
    "utterances", "partials_emitted", "finals_emitted", "segments_split", "segments_rejected",
    "partial_decodes", "final_decodes", "partials_shed", "partials_coarsened", "finals_dropped", "window_retries",
    "segments_split_at_pause", "partials_for_cuts", "trailing_guesses_dropped", "looped_partials_skipped",
    "finals_speculated",
    "speculations_dropped",
    "context_retries", "gap_fill_ms",
    "decode_seconds_total", "audio_seconds_decoded", "decode_seconds_per_audio_second",
    "partial_decode_seconds_ema", "partial_interval_s", "max_queue_wait_s", "push_us_mean", "push_us_max",
)


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def print_report(model: str, clips: list[Clip], offlines: dict[str, Offline], results: list[RunResult],
                 max_speakers: int, scale_clip: str, notes: list[str], elapsed: float,
                 spoken_language: str | None, per_final: bool = False) -> dict:
    print(f"Live captions benchmark: Whisper {model}, real time over WebRTC on 127.0.0.1, {elapsed:.0f} s in all; "
          f"spoken language {spoken_language or 'not declared (auto-detected per utterance)'}"
          + (" (declared by each speaker, as the join form does)" if spoken_language else ""))
    for clip in clips:
        off = offlines[clip.name]
        print(f"  clip {clip.name!r}: {clip.seconds:.1f} s, {'human' if clip.real else 'synthetic'} speech, "
              f"{len(off.words)} offline words; reference: "
              f"{'published text' if clip.reference is not None else 'offline transcript'}; offline decode "
              f"{off.decode_seconds:.1f} s ({off.decode_seconds / clip.seconds:.2f}x real time)")
    print("latencies in seconds after the word ended in the speaker's audio; final(end) uses the caption's own "
          "`end` instead of the offline word end; ins = inserted words; erasure = withdrawn / final words")
    header = (f"{'clip':<22}{'run':<24}{'spk':>4}{'partial p50':>12}{'p95':>7}{'final p50':>11}{'p95':>7}"
              f"{'final(end) p50':>16}{'WER':>7}{'offline':>8}{'ins':>5}{'erasure':>8}{'seen':>10}"
              f"{'finals':>8}{'partials':>9}{'settled':>8}")
    print(header)
    for r in results:
        print(f"{r.clip[:21]:<22}{r.label:<24}{r.speakers:>4}{fmt(pct(r.partial_latencies, 50)):>12}"
              f"{fmt(pct(r.partial_latencies, 95)):>7}{fmt(pct(r.final_latencies, 50)):>11}"
              f"{fmt(pct(r.final_latencies, 95)):>7}{fmt(pct(r.final_latencies_by_end, 50)):>16}"
              f"{r.wer_stream:>7.3f}{r.wer_offline:>8.3f}{r.inserted:>5}{r.erasure:>8.3f}"
              f"{f'{r.words_seen}/{r.words_total}':>10}"
              f"{f'{r.finals}' + (f'({r.empty_finals}e)' if r.empty_finals else ''):>8}{r.partials:>9}"
              f"{'yes' if r.settled else 'NO':>8}")
    print()
    print("CaptionService.stats() per run")
    labels = [f"{r.clip[:10]} {r.label}" for r in results]
    width = max(12, *(len(label) + 2 for label in labels))
    print(f"{'stat':<38}" + "".join(f"{label:>{width}}" for label in labels))
    for key in STAT_KEYS:
        print(f"{key:<38}" + "".join(f"{r.stats.get(key, '-')!s:>{width}}" for r in results))
    print(f"{'wall seconds':<38}" + "".join(f"{r.wall_seconds:>{width}.1f}" for r in results))
    print()
    print("where a final's latency goes (medians, s; from CaptionService.observe_decodes)")
    rows = (
        ("last word end -> final queued (VAD)", "endpoint"),
        ("queued -> decode starts", "queue"),
        ("final decode -> emitted", "decode"),
        ("emitted -> listener (data channel)", "deliver"),
        ("final decode audio", "final_audio"),
        ("partial decode", "partial_decode"),
        ("partial decode audio", "partial_audio"),
    )
    for title, key in rows:
        print(f"{title:<38}" + "".join(f"{fmt(getattr(r.breakdown, key)):>{width}}" for r in results))
    print(f"{'finals timed':<38}" + "".join(f"{r.breakdown.timed:>{width}}" for r in results))
    print()
    singles = [r for r in results if r.speakers == 1 and r.label == MAIN_LABEL]
    for r in singles:
        print(f"streamed finals, {r.clip}:", r.texts[0] if r.texts else "")
        print(f"offline transcript, {r.clip}:", offlines[r.clip].text)
    if per_final:
        print()
        print("each final of the first speaker: speaker, its last word's end in the clip, latency, how it came (end:")
        print("while its final decode was applied, with that decode's audio seconds; other: cut from a long buffer by")
        print("a partial decode, or a speculative final decode that had finished before the utterance ended), text")
        for r in results:
            print(f"{r.clip} {r.label}:")
            for line in r.per_final:
                print("  " + line)
    for note in notes:
        print("note:", note)

    real = [r for r in singles if r.real]
    partial = [x for r in real for x in r.partial_latencies]
    final = [x for r in real for x in r.final_latencies]
    worst = max(real, key=lambda r: r.wer_stream - r.wer_offline, default=None)
    inserted = sum(r.inserted for r in real)
    erased, final_words = sum(r.erased for r in real), sum(r.final_words for r in real)
    p50p, p50f = pct(partial, 50), pct(final, 50)
    checks = [
        (f"{r.clip}: wer_stream <= wer_offline + 0.02", r.wer_stream <= r.wer_offline + 0.02,
         f"{r.wer_stream:.3f} vs {r.wer_offline:.3f}") for r in real
    ] + [
        (f"{r.clip}: no inserted words", r.inserted == 0, str(r.inserted))
        for r in real if r.clip in ("two_cities.wav", "beckett.wav")
    ] + [
        ("partial latency p50 <= 0.8 s", p50p is not None and p50p <= 0.8, fmt(p50p)),
        ("final latency p50 <= 1.0 s", p50f is not None and p50f <= 1.0, fmt(p50f)),
        (f"max_realtime_speakers >= 4 ({scale_clip})", max_speakers >= 4, str(max_speakers)),
    ]
    print("targets (real speech, one speaker):")
    for name, ok, value in checks:
        print(f"  {name}: {value} {'MET' if ok else 'NOT MET'}")

    def r3(value: float | None) -> float | None:
        return None if value is None else round(value, 3)

    return {
        "model": model,
        "partial_latency_p50_s": r3(p50p),
        "partial_latency_p95_s": r3(pct(partial, 95)),
        "final_latency_p50_s": r3(p50f),
        "final_latency_p95_s": r3(pct(final, 95)),
        "wer_stream": None if worst is None else round(worst.wer_stream, 4),
        "wer_offline": None if worst is None else round(worst.wer_offline, 4),
        "max_realtime_speakers": max_speakers,
        "inserted_words": inserted,
        "erasure": round(erased / final_words, 4) if final_words else None,
    }


# -- overload: more speakers than decoders, through the worker process ----------------------------------
OVERLOAD_BOUND_S = 5.0  # finals within this long of the end of their speech (p95), whatever the load
OVERLOAD_DOMINANT_SHED_MAX = 0.10  # the dominant speaker keeps priority: at most this share of their speech skipped
OVERLOAD_SETTLE_CAP_S = 60.0
OVERLOAD_STATS = ("partial_decodes", "final_decodes", "finals_greedy", "partials_shed", "partials_shed_overload",
                  "finals_skipped", "overload_cuts",
                  "audio_seconds_skipped", "finals_dropped", "max_queue_wait_s", "window_retries")


@dataclass
class OverloadResult:
    speakers: int
    decoders: int
    cpu_threads: int
    seconds: float  # of audio each speaker streamed (speech with its natural pauses)
    finals: list[tuple[int, float, float]]  # (speaker, end of its speech in clip seconds, latency)
    skipped: list[tuple[int, float, float, float]]  # markers: (speaker, end, seconds skipped, latency)
    partials: int
    settle_s: float | None  # speech end -> worker idle; None: still busy at the cap
    stats: dict[str, int | float]

    def latencies(self, speaker: int | None = None, half: int | None = None) -> list[float]:
        middle = self.seconds / 2
        return [lat for spk, end, lat in self.finals if (speaker is None or spk == speaker)
                and (half is None or (end < middle) == (half == 0))]

    def shed_fraction(self, speaker: int | None = None) -> float:
        skipped = sum(s for spk, _, s, _ in self.skipped if speaker is None or spk == speaker)
        return skipped / (self.seconds * (1 if speaker is not None else self.speakers))


def overload_audio(clips: list[Clip], speakers: int, seconds: float) -> list[np.ndarray]:
    """Each speaker reads the real clips one after another, from a different place, for ``seconds``."""
    reel = np.concatenate([c.audio for c in clips] + [silence(0.4)])
    loops = int(np.ceil((seconds + len(reel) / RATE) / (len(reel) / RATE))) + 1
    tape = np.tile(reel, loops)
    out = []
    for i in range(speakers):
        start = int(i * 7.3 * RATE) % len(reel)
        out.append(np.concatenate([silence(LEAD_S), tape[start:start + int(seconds * RATE)], silence(TAIL_S)]))
    return out


async def overload_run(clips: list[Clip], *, speakers: int, decoders: int, model: str,
                       seconds: float) -> OverloadResult:
    """``speakers`` people talk at once for ``seconds`` into one TranscriberProcess (the worker process the
    server runs, with ``decoders`` decoders), Opus packets pushed in real time as SpeechTap does; speaker 0
    is the room's dominant speaker. Latency: arrival of a final minus its own ``end`` (room time)."""
    from transcribe.process import TranscriberProcess
    from transcribe.worker import WorkerOptions

    layout = decoder_layout(usable_cores(), workers=decoders)
    process = TranscriberProcess(WorkerOptions(model=model, workers=layout.workers, cpu_threads=layout.cpu_threads))
    await process.start()
    audio = overload_audio(clips, speakers, seconds)
    frames = [encode_opus_clip(to_int16(a)) for a in audio]
    origin = time.perf_counter() + 0.5
    events: list[tuple[int, float, object]] = []

    def sink(i: int):  # type: ignore[no-untyped-def]
        return lambda caption: events.append((i, time.perf_counter() - origin, caption))

    streams = [process.open_stream(f"speaker-{i}", "en", english=False, on_caption=sink(i),
                                   on_english=lambda caption: None) for i in range(speakers)]
    set_dominant = getattr(streams[0], "set_dominant", None)  # the room's dominant speaker, as SpeechTap says
    if set_dominant is not None:
        set_dominant(True)
    try:
        for k in range(max(len(f) for f in frames)):
            delay = origin + k * 0.02 - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            for stream, packets in zip(streams, frames, strict=True):
                if k < len(packets):
                    stream.push_opus(packets[k], k * 0.02)
        speech_end = origin + LEAD_S + seconds
        settle: float | None = None
        while time.perf_counter() < speech_end + OVERLOAD_SETTLE_CAP_S:
            stats = await process.stats()
            if not stats.get("pending_jobs") and not stats.get("decodes_in_flight") and \
                    time.perf_counter() > speech_end + TAIL_S:
                settle = time.perf_counter() - speech_end
                break
            await asyncio.sleep(0.2)
        for stream in streams:
            await stream.close()
        stats = await process.stats()
    finally:
        await process.close()
    finals: list[tuple[int, float, float]] = []
    skipped: list[tuple[int, float, float, float]] = []
    partials = 0
    for i, arrival, caption in events:
        gap = float(getattr(caption, "skipped", 0.0) or 0.0)
        if gap:  # a marker (with the words already shown, if any): not a final made, timed apart
            skipped.append((i, caption.end - LEAD_S, gap, arrival - caption.end))  # type: ignore[attr-defined]
        elif not caption.final:  # type: ignore[attr-defined]
            partials += 1
        elif caption.text.strip():  # type: ignore[attr-defined]
            finals.append((i, caption.end - LEAD_S, arrival - caption.end))  # type: ignore[attr-defined]
    return OverloadResult(speakers, layout.workers, layout.cpu_threads, seconds, finals, skipped, partials, settle,
                          stats)


def print_overload(model: str, results: list[OverloadResult], load: str, elapsed: float) -> dict:
    print(f"Caption overload benchmark: Whisper {model}, through the transcription worker process "
          f"(TranscriberProcess), real speech, everyone speaking at once; {elapsed:.0f} s in all; load average "
          f"at start {load}")
    print(f"latency = final's arrival - its own `end` (room time), seconds; bound {OVERLOAD_BOUND_S:.0f} s (p95); "
          "halves split by where the final's speech ended; dom = speaker 0, the room's dominant speaker; "
          "shed = seconds of speech announced as skipped / seconds streamed; markers (finals with `skipped`) are "
          "not finals made: their own delivery is 'marker p95'")
    header = (f"{'spk x dec':<11}{'finals':>7}{'p50':>7}{'p95':>7}{'max':>7}{'1st p95':>9}{'2nd p95':>9}"
              f"{'dom p95':>9}{'markers':>9}{'marker p95':>11}{'shed':>7}{'dom shed':>9}{'partials':>9}{'settle':>8}")
    print(header)
    rows = []
    for r in results:
        lat = r.latencies()
        row = {
            "speakers": r.speakers, "decoders": r.decoders, "cpu_threads": r.cpu_threads, "seconds": r.seconds,
            "finals": len(lat), "final_p50_s": pct(lat, 50), "final_p95_s": pct(lat, 95),
            "final_max_s": max(lat) if lat else None, "first_half_p95_s": pct(r.latencies(half=0), 95),
            "second_half_p95_s": pct(r.latencies(half=1), 95), "dominant_p95_s": pct(r.latencies(0), 95),
            "markers": len(r.skipped), "marker_p95_s": pct([m[3] for m in r.skipped], 95),
            "shed_fraction": r.shed_fraction(), "dominant_shed_fraction":
            r.shed_fraction(0), "partials": r.partials, "settle_s": r.settle_s,
        }
        rows.append(row)
        print(f"{f'{r.speakers} x {r.decoders}':<11}{len(lat):>7}{fmt(row['final_p50_s']):>7}"
              f"{fmt(row['final_p95_s']):>7}{fmt(row['final_max_s']):>7}{fmt(row['first_half_p95_s']):>9}"
              f"{fmt(row['second_half_p95_s']):>9}{fmt(row['dominant_p95_s']):>9}{len(r.skipped):>9}"
              f"{fmt(row['marker_p95_s']):>11}"
              f"{r.shed_fraction():>7.2f}{r.shed_fraction(0):>9.2f}{r.partials:>9}"
              f"{fmt(r.settle_s, 1) if r.settle_s is not None else 'NO':>8}")
    print()
    print(f"{'worker stats':<26}" + "".join(f"{f'{r.speakers} x {r.decoders}':>12}" for r in results))
    for key in OVERLOAD_STATS:
        print(f"{key:<26}" + "".join(f"{r.stats.get(key, '-')!s:>12}" for r in results))
    checks = []
    for r, row in zip(results, rows, strict=True):
        name = f"{r.speakers} x {r.decoders}"
        checks += [
            (f"{name}: final p95 <= {OVERLOAD_BOUND_S:.0f} s", row["final_p95_s"], OVERLOAD_BOUND_S),
            (f"{name}: second-half p95 <= {OVERLOAD_BOUND_S:.0f} s (not growing)", row["second_half_p95_s"],
             OVERLOAD_BOUND_S),
            (f"{name}: dominant speaker's shed <= {OVERLOAD_DOMINANT_SHED_MAX}", row["dominant_shed_fraction"],
             OVERLOAD_DOMINANT_SHED_MAX),
        ]
    print("targets:")
    met = True
    for name, value, limit in checks:
        ok = value is not None and value <= limit
        met = met and ok
        print(f"  {name}: {fmt(value)} {'MET' if ok else 'NOT MET'}")

    def r3(value: object) -> object:
        return round(value, 3) if isinstance(value, float) else value

    return {"model": model, "load_average": load, "bound_s": OVERLOAD_BOUND_S, "targets_met": met,
            "overload": [{k: r3(v) for k, v in row.items()} for row in rows]}


async def overload_bench(args: argparse.Namespace, clips: list[Clip]) -> list[OverloadResult]:
    results = []
    for scenario in args.scenarios.split(","):
        speakers, decoders = (int(x) for x in scenario.split(":"))
        log(f"overload: {speakers} speakers on {decoders} decoder(s), {args.overload_seconds:.0f} s of speech each")
        results.append(await overload_run(clips, speakers=speakers, decoders=decoders, model=args.model,
                                          seconds=args.overload_seconds))
    return results


# -- main -------------------------------------------------------------------------------------------------
MAIN_LABEL = "one speaker"


def decoders_from(option: str | None) -> DecoderLayout:
    """--decoders W:T, or what the server would choose on this machine."""
    if option is None:
        return decoder_layout(usable_cores())
    try:
        workers, threads = (int(part) for part in option.split(":"))
        if workers < 1 or threads < 1:
            raise ValueError
    except ValueError:
        sys.exit(f"--decoders {option!r}: expected W:T, two positive integers such as 2:1")
    return DecoderLayout(workers, threads)


def opus_of(clip: Clip) -> list[bytes]:
    return encode_opus_clip(to_int16(np.concatenate([clip.audio, silence(TAIL_S)])))


async def bench(args: argparse.Namespace, clips: list[Clip], offlines: dict[str, Offline], started: float,
                spoken: str | None) -> tuple[list[RunResult], int, str, list[str]]:
    notes: list[str] = []
    opus = {clip.name: opus_of(clip) for clip in clips}
    layout = decoders_from(args.decoders)
    notes.append(f"captions decoded by {layout}")

    def fits(clip: Clip, speakers: int) -> bool:
        estimate = clip.seconds + TAIL_S + speakers * (STAGGER_S + 0.3) + 8
        return time.perf_counter() - started + estimate <= args.budget

    async def run(clip: Clip, label: str, speakers: int, language: str | None = spoken) -> RunResult:
        log(f"run: {clip.name} {label} ({speakers} x {clip.seconds:.0f} s of speech in real time)")
        return await run_room(label, clip, opus[clip.name], offlines[clip.name], model=args.model,
                              speakers=speakers, workers=layout.workers, cpu_threads=layout.cpu_threads,
                              spoken_language=language)

    results: list[RunResult] = []
    for clip in clips:
        results.append(await run(clip, MAIN_LABEL, 1))

    scale = next((c for c in clips if c.name == args.scale_clip), clips[0])
    first = next(r for r in results if r.clip == scale.name)
    max_speakers = 1 if first.within_limit() else 0
    if max_speakers == 0:
        notes.append(f"one speaker already exceeds the final-latency limit on {scale.name}: max_realtime_speakers 0")
    for n in range(2, args.max_speakers + 1):
        if not max_speakers:
            break
        if not fits(scale, n):
            notes.append(f"time budget ({args.budget:.0f} s) reached before {n} speakers: "
                         f"max_realtime_speakers is a lower bound")
            break
        result = await run(scale, f"x{n} speakers", n)
        results.append(result)
        if not result.within_limit():
            p95 = pct(result.final_latencies, 95)
            notes.append(f"{n} speakers: final p95 {fmt(p95)} s (limit {FINAL_P95_LIMIT_S} s)"
                         + ("" if result.settled else ", decoding still behind at the cut-off")
                         + (f", {result.stats['finals_dropped']} finals dropped"
                            if result.stats.get("finals_dropped") else ""))
            break
        max_speakers = n
    else:
        if max_speakers == args.max_speakers:
            notes.append(f"capped at {args.max_speakers} speakers")
    if args.auto_detect and spoken is not None:
        if fits(scale, 1):  # the same speaker without a declared language (nobody picked one)
            results.append(await run(scale, "auto-detect", 1, language=None))
        else:
            notes.append("auto-detect row skipped: time budget")
    return results, max_speakers, scale.name, notes


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--audio", type=Path, help="speech to stream (any format ffmpeg reads), instead of the "
                        "built-in clips")
    parser.add_argument("--text", type=Path, help="reference transcript of --audio")
    parser.add_argument("--language", default="en", help="language of the clips, for WER normalisation")
    parser.add_argument("--model", default="base")
    parser.add_argument("--spoken-language", help="the language speakers declare, as the join form does with the "
                        "group's language (default: the clip's --language); 'auto' declares none")
    parser.add_argument("--clips", default="real,synthetic",
                        help="built-in clips, comma-separated: 'real' (all human speech), 'synthetic' (espeak-ng), "
                        "or clip names such as beckett.wav")
    parser.add_argument("--scale-clip", default="two_cities.wav",
                        help="the clip several speakers talk at once for max_realtime_speakers")
    parser.add_argument("--max-speakers", type=int, default=6)
    parser.add_argument("--budget", type=float, default=600.0, help="seconds; later runs are skipped past it")
    parser.add_argument("--decoders", metavar="W:T", help="decodes side by side : CPU threads each (default: as "
                        "the server chooses, transcribe/decoders.py; the old default was 1:2 on 2 cores)")
    parser.add_argument("--auto-detect", action="store_true", help="add a row without a declared language")
    parser.add_argument("--per-final", action="store_true", help="print every final of each run with its latency")
    parser.add_argument("--overload", action="store_true", help="instead: more speakers than decoders, through the "
                        "worker process (final latency over time and what was shed)")
    parser.add_argument("--scenarios", default="6:2,4:1", help="--overload runs, SPEAKERS:DECODERS, comma-separated")
    parser.add_argument("--overload-seconds", type=float, default=60.0, help="speech per speaker in --overload")
    args = parser.parse_args()
    if args.overload:
        started = time.perf_counter()
        load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
        try:
            clips = real_clips()
        except real_speech.RealSpeechMissing as exc:
            sys.exit(str(exc))
        results = asyncio.run(overload_bench(args, clips))
        print(json.dumps(print_overload(args.model, results, load, time.perf_counter() - started)))
        return
    if (args.audio is None) != (args.text is None):
        parser.error("--audio and --text go together")
    started = time.perf_counter()
    aiortc_adapter.set_ice_host_addresses(["127.0.0.1"])  # the clients' candidates too

    clips: list[Clip] = []
    with tempfile.TemporaryDirectory(prefix="peerwell-bench-") as tmp:
        if args.audio is not None:
            clips.append(file_clip(args.audio, args.text, args.language))
            args.scale_clip = clips[0].name
        else:
            kinds = set(args.clips.split(","))
            named = kinds & set(real_speech.CLIP_NAMES)
            if "real" in kinds or named:
                try:
                    clips += [c for c in real_clips() if "real" in kinds or c.name in named]
                except real_speech.RealSpeechMissing as exc:
                    sys.exit(str(exc))
            if "synthetic" in kinds:
                if have_espeak():
                    clips.append(monologue_clip(Path(tmp)))
                else:
                    log("espeak-ng not installed: synthetic clip skipped")
    if not clips:
        sys.exit("no clips to run")
    spoken = None if args.spoken_language == "auto" else (args.spoken_language or args.language)
    log(f"offline transcription with {args.model}")
    model = offline_model(args.model)
    offlines = {clip.name: offline_transcript(model, clip, spoken) for clip in clips}
    del model
    results, max_speakers, scale_clip, notes = asyncio.run(bench(args, clips, offlines, started, spoken))
    summary = print_report(args.model, clips, offlines, results, max_speakers, scale_clip, notes,
                           time.perf_counter() - started, spoken, per_final=args.per_final)
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
