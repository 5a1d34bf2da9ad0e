"""CaptionService: one shared Whisper model serving every speaker in a room (or a server)."""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from models.whisper import DEFAULT_MODEL
from transcribe.engine import WhisperEngine
from transcribe.events import Caption
from transcribe.scheduler import DecodeObserver, DecodeScheduler
from transcribe.stream import SpeakerStream, StreamConfig

if TYPE_CHECKING:
    from faster_whisper import WhisperModel

log = logging.getLogger(__name__)

_STREAM_COUNTERS = (
    "utterances",
    "utterances_too_short",
    "partials_emitted",
    "finals_emitted",
    "translations_emitted",
    "partials_coarsened",
    "segments_rejected",
    "segments_split",
    "segments_split_at_pause",
    "partials_for_cuts",
    "trailing_guesses_dropped",
    "looped_partials_skipped",
    "buffer_overflows",
    "gap_ends",
    "gap_fill_ms",
    "context_retries",
    "finals_speculated",
    "speculations_dropped",
    "finals_skipped",
    "finals_greedy",
    "overload_cuts",
    "pushes",
)


class CaptionService:
    """Streams captions for many speakers with one model.

    Captions go to the stream's own ``on_caption`` (``open_stream``), else to the service-wide one; always
    called on the event loop thread. ``workers`` decode threads share the model;
    give the model at least as many CTranslate2 workers (``load_whisper_model(..., num_workers=workers)``)
    or the threads take turns. ``also_translate_to_english`` is the default for new streams: finals in
    another language are followed by Whisper's English translation (same segment_id, task "translate").
    ``latency_bound_s``: shed finals that cannot arrive within it (transcribe/scheduler.py); the worker process
    sets it, None (tests, benchmarks in this process) decodes everything however late.
    """

    def __init__(
        self,
        model: WhisperModel,
        on_caption: Callable[[Caption], None] | None = None,
        *,
        workers: int = 1,
        config: StreamConfig | None = None,
        also_translate_to_english: bool = False,
        max_pending_jobs: int = 64,
        latency_bound_s: float | None = None,
    ) -> None:
        self._on_caption = on_caption
        self._config = config or StreamConfig()
        self._translate_default = also_translate_to_english
        self._scheduler = DecodeScheduler(WhisperEngine(model), workers=workers, max_pending=max_pending_jobs,
                                          latency_bound_s=latency_bound_s)
        self._counters: Counter[str] = Counter()
        self._streams: set[SpeakerStream] = set()
        self._closed = False

    @classmethod
    def from_model_name(
        cls,
        on_caption: Callable[[Caption], None],
        name_or_path: str = DEFAULT_MODEL,
        *,
        cache_dir: Path | None = None,
        cpu_threads: int = 0,
        workers: int = 1,
        full_window: bool = False,
        **kwargs: object,
    ) -> CaptionService:
        """Resolve (offline first) and load a model, then build the service. Blocking: ~1 s for base."""
        from models.whisper import resolve_whisper_model
        from transcribe.whisper_adapter import WINDOW_PAD_S, load_whisper_model

        resolved = resolve_whisper_model(name_or_path, cache_dir)
        log.info("captions use Whisper %s (%s)", resolved.name, resolved.detail)
        pad = None if full_window else WINDOW_PAD_S
        model = load_whisper_model(resolved, cpu_threads=cpu_threads, num_workers=workers, window_pad_s=pad)
        return cls(model, on_caption, workers=workers, **kwargs)  # type: ignore[arg-type]

    @property
    def multilingual(self) -> bool:
        return self._scheduler.engine.multilingual

    def open_stream(
        self,
        speaker_id: str,
        speaker_name: str,
        language: str | None = None,
        *,
        also_translate_to_english: bool | None = None,
        on_caption: Callable[[Caption], None] | None = None,
    ) -> SpeakerStream:
        """A caption stream for one participant; ``language`` None means detect it per utterance."""
        if self._closed:
            raise RuntimeError("CaptionService is closed")
        translate = self._translate_default if also_translate_to_english is None else also_translate_to_english
        stream = SpeakerStream(
            speaker_id=speaker_id,
            speaker_name=speaker_name,
            language=language,
            also_translate_to_english=translate,
            scheduler=self._scheduler,
            emit=self._emit if on_caption is None else self._guarded(on_caption),
            counters=self._counters,
            config=self._config,
            on_closed=self._streams.discard,
        )
        self._streams.add(stream)
        return stream

    def observe_decodes(self, observer: DecodeObserver) -> None:
        """Be told when each decode starts, finishes and is applied (benchmarks; read-only)."""
        self._scheduler.add_observer(observer)

    def stats(self) -> dict[str, int | float]:
        out: dict[str, int | float] = dict(self._scheduler.stats())
        out.update({k: self._counters[k] for k in _STREAM_COUNTERS})
        pushes = self._counters["pushes"]
        out["push_us_mean"] = round(self._counters["push_us_total"] / pushes, 1) if pushes else 0.0
        out["push_us_max"] = self._counters["push_us_max"]
        out["audio_seconds_skipped"] = round(self._counters["audio_ms_skipped"] / 1000, 1)
        out["streams_open"] = len(self._streams)
        out["partial_interval_s"] = round(self._scheduler.partial_interval(self._config.update_interval_s), 3)
        return out

    def abandon(self) -> int:
        """No time left (shutdown): drop the decodes not started; returns how many."""
        return self._scheduler.abandon()

    async def close(self) -> None:
        """Finalise every open stream, then stop the decode threads."""
        if self._closed:
            return
        self._closed = True
        await asyncio.gather(*(s.close() for s in list(self._streams)))
        await self._scheduler.close()

    def _emit(self, caption: Caption) -> None:
        if self._on_caption is not None:
            self._guarded(self._on_caption)(caption)

    @staticmethod
    def _guarded(on_caption: Callable[[Caption], None]) -> Callable[[Caption], None]:
        def emit(caption: Caption) -> None:
            try:
                on_caption(caption)
            except Exception as exc:  # a consumer's bug must not stop the stream; never log the text
                log.error("on_caption callback failed: %s", type(exc).__name__)
        return emit
