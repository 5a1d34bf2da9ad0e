"""Decode scheduling on the event loop: priorities, coalescing, load shedding, worker hand-off.

Only the Whisper call runs in the worker threads. Everything else (choosing what to decode, snapshotting
audio, applying results) happens on the event loop, so stream state needs no locks. A job's audio is
snapshotted when a worker becomes free, not when it is requested, so a job that waited decodes the
newest audio instead of stale audio.

Bounds: at most one pending partial per stream (a newer request replaces the queued one: "shed"), finals
before translations before partials (urgent ones first: those that may settle a final), at most
``max_pending`` jobs in all, and partial updates spaced by the measured decode cost, so latency stays
bounded when decoding falls behind real time.
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


class DecodeScheduler:
    def __init__(self, engine: WhisperEngine, workers: int = 1, max_pending: int = 64) -> None:
        if workers < 1:
            raise ValueError("workers must be >= 1")
        self.engine = engine
        self.workers = workers
        self.max_pending = max_pending
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
        for job in self._pending:  # whoever still waits for these gets told they are gone
            self._settle(job.owner)
        self._pending.clear()
        await asyncio.to_thread(self._executor.shutdown, wait=True)

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
                "translations_shed",
                "finals_dropped",
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

    def _next_job(self) -> Job | None:
        ready = [j for j in self._pending if j.owner not in self._busy]
        if not ready:
            return None
        job = min(ready, key=lambda j: (j.kind, not j.urgent, j.seq))
        self._pending.remove(job)
        return job

    def _pump(self) -> None:
        if self._closed:
            return
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
            wait = time.perf_counter() - job.requested_at
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
            for fut in self._idle.pop(owner, []):
                if not fut.done():
                    fut.set_result(None)
