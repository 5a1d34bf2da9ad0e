"""Caption translation service over the installed Argos packages.

Translations run on a small dedicated thread pool, never on the event loop, and the number of queued
requests is bounded: when speech outpaces the CPU, new requests fail fast with ``TranslationBusy`` instead
of subtitles drifting minutes behind. Translations are cached per sentence and per hop of a route (a pivot
``es->en->fr`` has two): repeated phrases are free, a caption translated into several targets through
English is translated into English once, and a sentence seen in an earlier caption is not translated
again. Model execution is in translate/engine.py, which explains
why we bypass ``argostranslate.translate`` (it downloads at translate time).
"""

from __future__ import annotations

import asyncio
import functools
import logging
import threading
from collections.abc import Iterable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from translate.cache import LRUCache
from translate.catalog import Catalog, InstalledPair
from translate.engine import DecodeOptions, PackageEngine, join_sentences, split_sentences
from translate.errors import NoTranslationModel, TranslationBusy

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TranslationResult:
    text: str
    source: str
    target: str
    cached: bool  # True when no model ran: every hop came from the cache or an identical in-flight request
    route: tuple[str, ...]  # languages visited, e.g. ("es", "en", "fr") for a pivot


@dataclass
class TranslationStats:
    requests: int = 0
    cache_hits: int = 0  # requests answered without running a model
    model_runs: int = 0  # package invocations; a pivoted request counts one per hop
    busy_rejections: int = 0


def normalize(text: str) -> str:
    return " ".join(text.split())


class TranslationService:
    """Translate caption text between any two languages the installed packages connect."""

    def __init__(
        self,
        package_dirs: Sequence[Path] | None = None,
        *,
        cache_size: int = 4096,
        workers: int = 1,
        max_pending: int = 32,
        threads: int = 1,
        device: str = "cpu",
        compute_type: str = "auto",
        decode: DecodeOptions | None = None,
    ) -> None:
        """``package_dirs`` defaults to Argos' own (ARGOS_PACKAGES_DIR / settings.json / XDG data dir).

        ``threads`` is CTranslate2's intra-op threads per worker. On the 2-core reference machine (AMD,
        so CTranslate2 uses oneDNN, not MKL) a decoding step costs in proportion to the weights it reads,
        and a second thread did not make it faster; the default (1 worker x 1 thread) leaves the other
        core to Whisper. More workers help only when several target languages are translated at once.
        """
        self._package_dirs = list(package_dirs) if package_dirs is not None else None
        self._workers = max(1, workers)
        self._threads = threads or 1
        self._device = device
        self._compute_type = compute_type
        self.decode = decode or DecodeOptions()
        self.max_pending = max_pending
        self.stats = TranslationStats()
        self._cache: LRUCache[tuple[str, str, str], str] = LRUCache(cache_size)
        self._inflight: dict[tuple[str, str, str], Future[str]] = {}
        self._lock = threading.Lock()
        self._engines: dict[tuple[str, str], PackageEngine] = {}
        self._executor = ThreadPoolExecutor(max_workers=self._workers, thread_name_prefix="translate")
        self._pending = 0
        self.catalog = Catalog.discover(self._package_dirs)

    # -- what can be translated -------------------------------------------------------------------

    def reload(self) -> None:
        """Rediscover packages (after ``peerwell models install/remove``); drops cached translations."""
        catalog = Catalog.discover(self._package_dirs)
        with self._lock:
            self.catalog = catalog
            self._engines = {
                key: engine for key, engine in self._engines.items() if catalog.pairs.get(key) == engine.pair
            }
        self._cache.clear()

    def languages(self) -> dict[str, str]:
        """Codes and names of every language some installed package reads or writes."""
        return self.catalog.languages

    def route(self, source: str, target: str) -> tuple[str, ...]:
        """Languages a translation passes through; raises ``NoTranslationModel``."""
        hops = self.catalog.route(source, target)
        return (source, *(pair.to_code for pair in hops))

    def can_translate(self, source: str, target: str) -> bool:
        return self.catalog.can_translate(source, target)

    def coverage(self, source_languages: Iterable[str]) -> dict[str, frozenset[str]]:
        """For each possible subtitle language, which of the given speaker languages reach it."""
        sources = set(source_languages)
        covered: dict[str, set[str]] = {}
        for source in sources:
            for target in self.catalog.reachable_from(source):
                covered.setdefault(target, set()).add(source)
        return {target: frozenset(srcs) for target, srcs in sorted(covered.items())}

    def reachable_targets(self, source_languages: Iterable[str]) -> list[str]:
        """Subtitle languages worth offering: reachable from at least one speaker language.

        A language every speaker already speaks is not listed (those listeners read the original).
        """
        return list(self.coverage(source_languages))

    # -- translating ------------------------------------------------------------------------------

    async def translate(self, text: str, source: str, target: str) -> str:
        return (await self.translate_result(text, source, target)).text

    async def translate_result(
        self, text: str, source: str, target: str, *, use_cache: bool = True
    ) -> TranslationResult:
        """Translate off the event loop. Raises ``NoTranslationModel`` or ``TranslationBusy``.

        ``use_cache=False`` neither reads nor writes the cache (benchmarks).
        """
        hops = self.catalog.route(source, target)  # fail fast, before queueing
        text = normalize(text)
        if use_cache:
            hit = self._from_cache(hops, text, source, target)
            if hit is not None:
                return hit
        if self._pending >= self.max_pending:
            with self._lock:
                self.stats.busy_rejections += 1
            raise TranslationBusy(f"{self._pending} translations already queued")
        self._pending += 1
        try:
            loop = asyncio.get_running_loop()
            return await loop.run_in_executor(
                self._executor,
                functools.partial(self.translate_sync, text, source, target, use_cache=use_cache),
            )
        finally:
            self._pending -= 1

    async def preload(self, source: str, target: str) -> None:
        """Load the models for source->target in the worker, so the first caption is not slow."""
        hops = self.catalog.route(source, target)
        loop = asyncio.get_running_loop()
        for pair in hops:
            await loop.run_in_executor(self._executor, self._engine(pair).load)

    def translate_sync(
        self, text: str, source: str, target: str, *, use_cache: bool = True
    ) -> TranslationResult:
        """Blocking translation (worker threads, benchmarks, scripts)."""
        hops = self.catalog.route(source, target)
        text = normalize(text)
        cached = True
        for pair in hops:
            text, hop_cached = self._run_hop(pair, text, use_cache=use_cache)
            cached = cached and hop_cached
        with self._lock:
            self.stats.requests += 1
            self.stats.cache_hits += int(cached)
        return TranslationResult(text, source, target, cached, (source, *(p.to_code for p in hops)))

    def close(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)

    # -- internals --------------------------------------------------------------------------------

    def _from_cache(self, hops: list[InstalledPair], text: str, source: str, target: str) -> TranslationResult | None:
        value = text
        for pair in hops:
            found = self._cached_hop(pair, value)
            if found is None:
                return None
            value = found
        with self._lock:
            self.stats.requests += 1
            self.stats.cache_hits += 1
        return TranslationResult(value, source, target, True, (source, *(p.to_code for p in hops)))

    def _cached_hop(self, pair: InstalledPair, text: str) -> str | None:
        out = []
        for sentence in split_sentences(text):
            hit = self._cache.get((pair.from_code, pair.to_code, sentence))
            if hit is None:
                return None
            out.append(hit)
        return join_sentences(out, pair.to_code)

    def _engine(self, pair: InstalledPair) -> PackageEngine:
        with self._lock:
            engine = self._engines.get(pair.key)
            if engine is None or engine.pair != pair:
                engine = PackageEngine(
                    pair,
                    device=self._device,
                    compute_type=self._compute_type,
                    intra_threads=self._threads,
                    options=self.decode,
                )
                self._engines[pair.key] = engine
            return engine

    def _run_hop(self, pair: InstalledPair, text: str, *, use_cache: bool) -> tuple[str, bool]:
        """Translate one hop; returns (text, True if no model ran)."""
        sentences = split_sentences(text)
        if not sentences:
            return "", True
        if not use_cache:
            return join_sentences(self._run_model(pair, sentences), pair.to_code), False
        key = (pair.from_code, pair.to_code, text)
        with self._lock:
            waiting = self._inflight.get(key)
            if waiting is None:
                mine: Future[str] = Future()
                self._inflight[key] = mine
        if waiting is not None:  # the same text and pair is being translated by another worker
            return waiting.result(), True
        try:
            result, ran = self._translate_missing(pair, sentences)
        except BaseException as exc:
            mine.set_exception(exc)
            raise
        else:
            mine.set_result(result)
            return result, not ran
        finally:
            with self._lock:
                self._inflight.pop(key, None)

    def _translate_missing(self, pair: InstalledPair, sentences: list[str]) -> tuple[str, bool]:
        out: list[str | None] = [self._cache.get((pair.from_code, pair.to_code, s)) for s in sentences]
        missing = [i for i, value in enumerate(out) if value is None]
        if missing:
            translated = self._run_model(pair, [sentences[i] for i in missing])
            for i, value in zip(missing, translated, strict=True):
                out[i] = value
                self._cache.put((pair.from_code, pair.to_code, sentences[i]), value)
        return join_sentences([v or "" for v in out], pair.to_code), bool(missing)

    def _run_model(self, pair: InstalledPair, sentences: list[str]) -> list[str]:
        result = self._engine(pair).translate_sentences(sentences)
        with self._lock:
            self.stats.model_runs += 1
        return result


__all__ = [
    "NoTranslationModel",
    "TranslationBusy",
    "TranslationResult",
    "TranslationService",
    "TranslationStats",
]
