"""Decode scheduling on the event loop: priorities, coalescing, load shedding, worker hand-off.

Only the Whisper call runs in the worker threads. Everything else (choosing what to decode, snapshotting
audio, applying results) happens on the event loop, so stream state needs no locks. A job's audio is
snapshotted when a worker becomes free, not when it is requested, so a job that waited decodes the
newest audio instead of stale audio.

Bounds: at most one pending partial per stream (a newer request replaces the queued one: "shed"), finals
before translations before partials (urgent ones first: those that may settle a final), at most
``max_pending`` jobs in all, and partial updates spaced by the measured decode cost, so latency stays
bounded when decoding falls behind real time.

Overload (speech arriving faster than the decoders can keep up), with a ``latency_bound_s`` (the worker
process, i.e. production, sets one; None decodes everything however late, for quality tests that measure
text): finals must reach the room within the bound of the end of their speech, or not at all. The room's
dominant speaker (``set_dominant``) goes first: their finals, then their partials, then everyone else's
finals, translations, partials. While behind (a final that could have run waited longer than OVERLOAD_WAIT_S
for a decoder, or one was shed), partials of everyone but the dominant speaker are shed, not queued. A final
or translation that can no longer finish within the bound is shed too (its audio dropped, not queued;
checked when a decoder comes free and every SWEEP_EVERY_S; a lone speaker's only past twice the bound): the
job's ``on_shed`` lets the stream say so in the caption stream. ``abandon`` drops
everything not started (shutdown).
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import time
from collections import Counter
from collections.abc import Callable, Hashable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from enum import IntEnum
from typing import Protocol

from transcribe.audio import WHISPER_RATE
from transcribe.engine import DecodeRequest, Hypothesis, WhisperEngine

log = logging.getLogger(__name__)

LATENCY_BOUND_S = 5.0  # a final later than this after its speech ended helps nobody: the talk moved on
DELIVERY_MARGIN_S = 0.75  # of the bound, kept for delivery to the room and for decode-time estimate errors
OVERLOAD_WAIT_S = 1.0  # a final waiting this long for a decoder means speech arrives faster than decoding
SWEEP_EVERY_S = 0.25  # while every decoder is busy, late jobs are shed this often (not only when one frees)
# A decode's cost grows with its audio plus a fixed part (the encoder's 5 s pad, the beam's set-up): cost per
# second of (audio + this) predicts a long final's decode from short ones without overestimating it.
FIXED_COST_AUDIO_S = 5.0


class JobKind(IntEnum):  # lower value = more urgent
    FINAL = 0
    TRANSLATE = 1
    PARTIAL = 2


OnDone = Callable[[Hypothesis | None, BaseException | None], None]


@dataclass(frozen=True)
class Prepared:
    request: DecodeRequest
    on_done: OnDone  # called on the event loop with the result or the error


@dataclass
class DecodeTrace:
    """What happened to one decode job, for observers (benchmarks, diagnostics). perf_counter seconds."""

    kind: JobKind
    owner: Hashable
    requested_at: float
    started_at: float = 0.0
    finished_at: float = 0.0  # result back on the loop, before it is applied
    audio_seconds: float = 0.0
    decode_seconds: float | None = None  # None: the decode failed


class DecodeObserver(Protocol):
    """Told about every decode that runs. Called on the event loop; must be cheap and must not raise.

    ``decode_finished`` comes right before the result is applied (captions it produces are emitted
    between it and ``decode_applied``)."""

    def decode_started(self, trace: DecodeTrace) -> None: ...
    def decode_finished(self, trace: DecodeTrace) -> None: ...
    def decode_applied(self, trace: DecodeTrace) -> None: ...


@dataclass(eq=False)
class Job:
    kind: JobKind
    owner: Hashable  # jobs of one owner (a speaker stream) run one at a time, in priority order
    prepare: Callable[[], Prepared | None]  # on the loop, when a worker is free; None = no longer needed
    urgent: bool = False  # ahead of the other jobs of its kind (a partial that may settle a final)
    requested_at: float = field(default_factory=time.perf_counter)
    seq: int = 0
    # perf_counter time the speech this job finalises ended (finals, translations): the latency bound
    # counts from here. None: no bound (partials).
    spoken_until: float | None = None
    on_shed: Callable[[], None] | None = None  # on the loop, when the job is shed for lateness instead of run


class DecodeScheduler:
    def __init__(self, engine: WhisperEngine, workers: int = 1, max_pending: int = 64,
                 latency_bound_s: float | None = None, clock: Callable[[], float] = time.perf_counter) -> None:
        if workers < 1:
            raise ValueError("workers must be >= 1")
        self.engine = engine
        self.workers = workers
        self.max_pending = max_pending
        self.latency_bound_s = latency_bound_s
        self._clock = clock
        self._dominant: set[Hashable] = set()
        self._behind_until = float("-inf")  # overloaded until then (clock seconds)
        self._final_cost_ema: float | None = None  # seconds per final decode...
        self._final_rate_ema: float | None = None  # ...and per second of (audio + FIXED_COST_AUDIO_S)
        self._free_since: dict[Hashable, float] = {}  # when each owner's last decode finished
        self._sweep_handle: asyncio.TimerHandle | None = None
        self._abandoned = False
        self._executor = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="captions-decode")
        self._loop: asyncio.AbstractEventLoop | None = None
        self._pending: list[Job] = []
        self._busy: set[Hashable] = set()
        self._outstanding: Counter[Hashable] = Counter()
        self._idle: dict[Hashable, list[asyncio.Future[None]]] = {}
        self._speaking: set[Hashable] = set()
        self._seq = itertools.count()
        self._closed = False
        self.counters: Counter[str] = Counter()
        self._float_stats: dict[str, float] = {
            "decode_seconds_total": 0.0,
            "audio_seconds_decoded": 0.0,
            "max_queue_wait_s": 0.0,
        }
        self._partial_cost_ema: float | None = None
        self._observers: list[DecodeObserver] = []

    def add_observer(self, observer: DecodeObserver) -> None:
        """Observe every decode from now on (read-only: observers cannot change what is decoded)."""
        self._observers.append(observer)

    # -- called by streams, on the loop -------------------------------------------------------------
    def submit(self, job: Job) -> None:
        if self._closed:
            return
        if self._loop is None or self._loop.is_closed():
            self._loop = asyncio.get_running_loop()
        job.seq = next(self._seq)
        if self.sheds_partials(job.owner) and job.kind is JobKind.PARTIAL:
            self.counters["partials_shed_overload"] += 1
            return
        if job.kind is JobKind.PARTIAL:
            for i, queued in enumerate(self._pending):
                if queued.owner == job.owner and queued.kind is JobKind.PARTIAL:
                    # Coalesce: the queued update had not started; the newer one supersedes it.
                    job.seq, job.requested_at = queued.seq, queued.requested_at
                    job.urgent = job.urgent or queued.urgent
                    self._pending[i] = job
                    self.counters["partials_shed"] += 1
                    return
        if len(self._pending) >= self.max_pending and not self._make_room(job):
            return
        self._pending.append(job)
        self._outstanding[job.owner] += 1
        self._pump()

    def has_spare_worker(self) -> bool:
        """Nothing queued and a worker free: speculative work costs nobody anything now."""
        return not self._pending and len(self._busy) < self.workers

    def set_dominant(self, owner: Hashable, dominant: bool) -> None:
        """The room's dominant speaker: decoded first, and keeps partials while others lose theirs."""
        if dominant:
            self._dominant.add(owner)
        else:
            self._dominant.discard(owner)

    def behind(self) -> bool:
        """Decoding cannot keep up with speech right now (see the module docstring)."""
        return self._clock() < self._behind_until

    def sheds_partials(self, owner: Hashable) -> bool:
        return owner not in self._dominant and self.behind()

    def mark_speaking(self, owner: Hashable, speaking: bool) -> None:
        if speaking:
            self._speaking.add(owner)
        else:
            self._speaking.discard(owner)

    def partial_interval(self, base: float) -> float:
        """Seconds of audio between partial updates: ``base``, stretched when decoding cannot keep up."""
        if self._partial_cost_ema is None:
            return base
        load = self._partial_cost_ema * max(1, len(self._speaking)) / self.workers
        return max(base, 1.2 * load)

    async def wait_idle(self, owner: Hashable) -> None:
        if self._outstanding[owner] == 0:
            return
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._idle.setdefault(owner, []).append(fut)
        await fut

    async def close(self) -> None:
        self._closed = True
        if self._sweep_handle is not None:
            self._sweep_handle.cancel()
        for job in self._pending:  # whoever still waits for these gets told they are gone
            self._settle(job.owner)
        self._pending.clear()
        await asyncio.to_thread(self._executor.shutdown, wait=not self._abandoned)

    def abandon(self) -> int:
        """Shutdown with no time left: drop every job not started (their owners stop waiting) and take no new
        ones; decodes in flight finish on their own. Returns how many jobs were dropped."""
        dropped = len(self._pending)
        self.counters["jobs_dropped_at_shutdown"] += dropped
        self._closed = self._abandoned = True
        if self._sweep_handle is not None:
            self._sweep_handle.cancel()
        pending, self._pending = self._pending, []
        for job in pending:
            self._settle(job.owner)
        self._executor.shutdown(wait=False, cancel_futures=True)
        return dropped

    def stats(self) -> dict[str, int | float]:
        out: dict[str, int | float] = {
            k: self.counters[k]
            for k in (
                "decodes_run",
                "partial_decodes",
                "final_decodes",
                "translate_decodes",
                "decode_errors",
                "window_retries",
                "partials_shed",
                "partials_shed_overload",
                "translations_shed",
                "finals_dropped",
                "late_jobs_shed",
                "jobs_dropped_at_shutdown",
            )
        }
        out.update({k: round(v, 4) for k, v in self._float_stats.items()})
        audio = self._float_stats["audio_seconds_decoded"]
        out["decode_seconds_per_audio_second"] = (
            round(self._float_stats["decode_seconds_total"] / audio, 4) if audio else 0.0
        )
        out["pending_jobs"] = len(self._pending)
        out["decodes_in_flight"] = len(self._busy)
        out["workers"] = self.workers
        out["partial_decode_seconds_ema"] = round(self._partial_cost_ema or 0.0, 4)
        out["final_decode_seconds_ema"] = round(self._final_cost_ema or 0.0, 4)
        out["behind"] = int(self.behind())
        return out

    # -- internals ----------------------------------------------------------------------------------
    def _make_room(self, incoming: Job) -> bool:
        """Queue full: drop the least valuable job (a partial, then a translation) or refuse the new one."""
        for kind, counter in ((JobKind.PARTIAL, "partials_shed"), (JobKind.TRANSLATE, "translations_shed")):
            victims = [j for j in self._pending if j.kind is kind]
            if victims and kind >= incoming.kind:
                victim = min(victims, key=lambda j: j.seq)
                self._pending.remove(victim)
                self.counters[counter] += 1
                self._settle(victim.owner)
                return True
        name = {JobKind.FINAL: "finals_dropped", JobKind.TRANSLATE: "translations_shed"}.get(
            incoming.kind, "partials_shed"
        )
        self.counters[name] += 1
        log.warning("caption decode queue full (%d jobs); dropped a %s job", len(self._pending), incoming.kind.name)
        return False

    def _rank(self, job: Job) -> int:
        """Dominant speaker's finals, their partials, other finals, translations, other partials (without a
        bound: finals, translations, partials)."""
        if job.owner in self._dominant and job.kind is not JobKind.TRANSLATE and self.latency_bound_s is not None:
            return 0 if job.kind is JobKind.FINAL else 1
        return {JobKind.FINAL: 2, JobKind.TRANSLATE: 3, JobKind.PARTIAL: 4}[job.kind]

    def _too_late(self, job: Job, now: float, audio_seconds: float | None = None) -> bool:
        """Started now, would it finish after the bound while anyone else speaks or has work here, or after
        twice the bound anyway? (One speaker alone on a slow machine delays nobody by a final a little late;
        and a cold model's slow first decode cannot make every final look late for long.)
        The decode time is estimated from recent final decodes: per decode while queued, per second of audio
        once its audio is known (a long buffer costs more)."""
        if job.spoken_until is None or self.latency_bound_s is None:
            return False
        if audio_seconds is not None and self._final_rate_ema is not None:
            cost = self._final_rate_ema * (audio_seconds + FIXED_COST_AUDIO_S)
        else:
            cost = self._final_cost_ema or 0.0
        done = now - job.spoken_until + cost + DELIVERY_MARGIN_S
        if done <= self.latency_bound_s:
            return False
        others = any(owner != job.owner for owner in (*self._outstanding, *self._speaking))
        return others or done > 2 * self.latency_bound_s

    def _shed_late(self, job: Job, now: float) -> None:
        """``job`` is out of the queue already."""
        self._behind_until = now + (self.latency_bound_s or 0.0)
        self.counters["late_jobs_shed" if job.kind is JobKind.FINAL else "translations_shed"] += 1
        self._settle(job.owner)
        if job.on_shed is not None:
            try:
                job.on_shed()
            except Exception:
                log.exception("shedding a late caption decode failed")

    def _shed_late_and_unwanted(self, now: float) -> None:
        for job in list(self._pending):
            if job.owner in self._busy:
                continue  # its own previous decode runs: it is judged when it could start
            ready_since = max(job.requested_at, self._free_since.get(job.owner, float("-inf")))
            if job.kind is JobKind.FINAL and now - ready_since > OVERLOAD_WAIT_S and self.latency_bound_s:
                # It could have run but every decoder was taken: speech arrives faster than decoding.
                self._behind_until = now + self.latency_bound_s
            if self._too_late(job, now):
                self._pending.remove(job)
                self._shed_late(job, now)
        if self.behind():
            for job in [j for j in self._pending if j.kind is JobKind.PARTIAL and self.sheds_partials(j.owner)]:
                self._drop(job, "partials_shed_overload")

    def _drop(self, job: Job, counter: str) -> None:
        self._pending.remove(job)
        self.counters[counter] += 1
        self._settle(job.owner)

    def _next_job(self) -> Job | None:
        self._shed_late_and_unwanted(self._clock())
        ready = [j for j in self._pending if j.owner not in self._busy]
        if not ready:
            return None
        job = min(ready, key=lambda j: (self._rank(j), not j.urgent, j.seq))
        self._pending.remove(job)
        return job

    def _sweep(self) -> None:
        """Every decoder busy, jobs waiting: shed the ones that became late now, so their markers go out now
        (a slow decode must not hold them) and stale work leaves the queue."""
        self._sweep_handle = None
        if not self._closed:
            self._shed_late_and_unwanted(self._clock())
            self._pump()

    def _pump(self) -> None:
        if self._closed:
            return
        self._pump_jobs()
        if (self.latency_bound_s is not None and self._pending and self._sweep_handle is None
                and self._loop is not None and not self._loop.is_closed()):
            self._sweep_handle = self._loop.call_later(SWEEP_EVERY_S, self._sweep)

    def _pump_jobs(self) -> None:
        while len(self._busy) < self.workers and (job := self._next_job()) is not None:
            try:
                prepared = job.prepare()
            except Exception:
                log.exception("preparing a caption decode failed")
                prepared = None
            if prepared is None:
                if job.kind is JobKind.PARTIAL:
                    self.counters["partials_shed"] += 1
                self._settle(job.owner)
                continue
            now = self._clock()
            if self._too_late(job, now, len(prepared.request.audio) / WHISPER_RATE):
                self._shed_late(job, now)  # its audio turned out longer than the estimate allowed for
                continue
            wait = self._clock() - job.requested_at
            self._float_stats["max_queue_wait_s"] = max(self._float_stats["max_queue_wait_s"], wait)
            self._busy.add(job.owner)
            trace = DecodeTrace(job.kind, job.owner, job.requested_at, time.perf_counter(),
                                audio_seconds=len(prepared.request.audio) / WHISPER_RATE)
            self._notify("decode_started", trace)
            future = self._executor.submit(self.engine.decode, prepared.request)
            future.add_done_callback(lambda f, j=job, p=prepared, t=trace: self._from_worker(j, p, t, f))

    def _notify(self, event: str, trace: DecodeTrace) -> None:
        for observer in self._observers:
            try:
                getattr(observer, event)(trace)
            except Exception:
                log.exception("decode observer failed")

    def _from_worker(self, job: Job, prepared: Prepared, trace: DecodeTrace, future: Future[Hypothesis]) -> None:
        loop = self._loop
        if loop is None or loop.is_closed():
            return
        try:
            loop.call_soon_threadsafe(self._finished, job, prepared, trace, future)
        except RuntimeError:  # loop shut down while a decode was running
            pass

    def _finished(self, job: Job, prepared: Prepared, trace: DecodeTrace, future: Future[Hypothesis]) -> None:
        self._busy.discard(job.owner)
        self._free_since[job.owner] = self._clock()
        error = future.exception()
        hyp = None if error is not None else future.result()
        trace.finished_at = time.perf_counter()
        trace.decode_seconds = None if hyp is None else hyp.decode_seconds
        self._notify("decode_finished", trace)
        if hyp is not None:
            self.counters["decodes_run"] += 1
            self.counters[f"{job.kind.name.lower()}_decodes"] += 1
            if hyp.window_retried:
                self.counters["window_retries"] += 1
            self._float_stats["decode_seconds_total"] += hyp.decode_seconds
            self._float_stats["audio_seconds_decoded"] += hyp.audio_seconds
            if job.kind is JobKind.PARTIAL:
                ema = self._partial_cost_ema
                cost = hyp.decode_seconds
                self._partial_cost_ema = cost if ema is None else 0.7 * ema + 0.3 * cost
            elif job.kind is JobKind.FINAL:
                ema, rate = self._final_cost_ema, self._final_rate_ema
                cost = hyp.decode_seconds
                per_second = cost / (hyp.audio_seconds + FIXED_COST_AUDIO_S)
                self._final_cost_ema = cost if ema is None else 0.7 * ema + 0.3 * cost
                self._final_rate_ema = per_second if rate is None else 0.7 * rate + 0.3 * per_second
        else:
            self.counters["decode_errors"] += 1
            log.error("caption decode failed", exc_info=error)
        try:
            prepared.on_done(hyp, error)
        except Exception:
            log.exception("applying a caption decode result failed")
        finally:
            self._notify("decode_applied", trace)
            self._settle(job.owner)
            self._pump()

    def _settle(self, owner: Hashable) -> None:
        self._outstanding[owner] -= 1
        if self._outstanding[owner] <= 0:
            del self._outstanding[owner]
            self._free_since.pop(owner, None)
            for fut in self._idle.pop(owner, []):
                if not fut.done():
                    fut.set_result(None)
