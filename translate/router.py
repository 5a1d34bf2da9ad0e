"""Fan translated captions out to the listeners who asked for a subtitle language.

Each final caption is translated once per target language some listener chose, never once per listener,
and each result goes only to the listeners of that language. Listeners who chose the caption's own
language, or nothing, get nothing (they read the original). Finals for a target are sent in caption
order. Only finals are translated: a subtitle that rewrites itself is harder to read than one that comes
a moment later.

Whisper can follow a non-English final with its own English translation (same segment_id), which
arrives on its own path, ``on_whisper_translation``. With ``whisper_english=True`` the router uses it
for the pairs Argos cannot do: English listeners get it as is, other languages get it translated from
English. A segment is never subtitled twice in one language. The router alone owns each listener's
subtitle language.
"""

from __future__ import annotations

import asyncio
import logging
from collections import OrderedDict
from collections.abc import Callable, Coroutine, Hashable, Iterable
from dataclasses import dataclass, field
from typing import Any

from translate.errors import NoTranslationModel, TranslationBusy
from translate.service import TranslationService
from translate.subtitle import CaptionLike, Subtitle

log = logging.getLogger(__name__)

SendFn = Callable[[str, Subtitle], None]
MissingFn = Callable[[str, NoTranslationModel], None]

_RECENT_SEGMENTS = 512  # segments remembered (Whisper translations, duplicates)
ENGLISH = "en"


@dataclass
class RouterStats:
    translations_run: int = 0  # final caption x target translations that ran a model
    cache_hits: int = 0  # final caption x target translations served from the cache
    subtitles_sent: int = 0
    dropped_busy: int = 0  # translation queue full: subtitle skipped rather than delayed
    missing_model: int = 0
    errors: int = 0


@dataclass(frozen=True)
class SubtitleChoice:
    """Outcome of ``set_choice``: the language now chosen and speaker languages it cannot cover."""

    language: str | None
    missing: tuple[NoTranslationModel, ...] = field(default=())

    @property
    def warnings(self) -> list[str]:
        return [str(err) for err in self.missing]


class SubtitleRouter:
    def __init__(
        self,
        service: TranslationService,
        send: SendFn,
        *,
        whisper_english: bool = False,
        on_missing_model: MissingFn | None = None,
    ) -> None:
        """``whisper_english``: the transcriber sends Whisper's English translation after non-English finals
        (CaptionService ``also_translate_to_english``), so English, and whatever Argos reaches from
        English, can be offered for every speaker language.

        ``on_missing_model(listener_id, error)`` is called once per listener and language pair when a
        caption arrives in a language that cannot be translated into the listener's choice.
        """
        self.service = service
        self.send = send
        self.whisper_english = whisper_english
        self.on_missing_model = on_missing_model
        self.stats = RouterStats()
        self.source_languages: set[str] = set()
        self._choices: dict[str, str] = {}
        self._target_locks: dict[str, asyncio.Lock] = {}
        self._finalized: OrderedDict[Hashable, str] = OrderedDict()  # segment -> its language
        self._delivered: OrderedDict[tuple[Hashable, str], None] = OrderedDict()
        self._told_missing: set[tuple[str, str, str]] = set()
        self._background: set[asyncio.Task[None]] = set()

    # -- listeners --------------------------------------------------------------------------------

    @property
    def choices(self) -> dict[str, str]:
        return dict(self._choices)

    def choice_of(self, listener_id: str) -> str | None:
        return self._choices.get(listener_id)

    def listeners_for(self, language: str) -> list[str]:
        return [lid for lid, lang in self._choices.items() if lang == language]

    def set_source_languages(self, languages: Iterable[str]) -> None:
        """Declare the speakers' languages (the router also learns them from final captions)."""
        self.source_languages = {code for code in languages if code}

    def set_choice(self, listener_id: str, language: str | None) -> SubtitleChoice:
        """Choose a subtitle language for a listener (None: no subtitles).

        Raises ``NoTranslationModel`` ("no model for X->Y") when no known speaker language can be
        translated into ``language`` (or, before anyone spoke, when no installed package produces it);
        the previous choice is then kept. Otherwise the choice is recorded and the result lists the
        speaker languages that still cannot be covered, to tell the listener.
        """
        if not language:
            self._choices.pop(listener_id, None)
            return SubtitleChoice(None)
        others = sorted(code for code in self.source_languages if code != language)
        missing = tuple(self._missing(src, language) for src in others if not self._reachable(src, language))
        if others and len(missing) == len(others):
            raise missing[0]
        known = language in self.service.languages() or (self.whisper_english and language == ENGLISH)
        if not others and not known and not self.source_languages:
            raise NoTranslationModel(None, language, f"no installed package translates into {language}")
        self._choices[listener_id] = language
        for src in others:
            if self.service.can_translate(src, language):
                self._spawn(self._preload(src, language))
            elif self._reachable(src, language) and language != ENGLISH:
                self._spawn(self._preload(ENGLISH, language))
        return SubtitleChoice(language, missing)

    def remove_listener(self, listener_id: str) -> None:
        self._choices.pop(listener_id, None)
        self._told_missing = {entry for entry in self._told_missing if entry[0] != listener_id}

    def reachable_targets(self, source_languages: Iterable[str] | None = None) -> list[str]:
        """Subtitle languages to offer in the UI for these (default: the known) speaker languages."""
        sources = set(self.source_languages if source_languages is None else source_languages)
        targets = set(self.service.reachable_targets(sources))
        if self.whisper_english and sources - {ENGLISH}:
            targets |= {ENGLISH} | self.service.catalog.reachable_from(ENGLISH)
        return sorted(targets)

    # -- captions ---------------------------------------------------------------------------------

    async def on_final_caption(self, caption: CaptionLike) -> None:
        """A final caption in its speaker's language: translated once per language some listener chose."""
        source = caption.language
        self._mark_final(caption.segment_id, source or "")
        if not source or not caption.text.strip():
            return
        self.source_languages.add(source)
        targets = sorted({lang for lang in self._choices.values() if lang != source})
        if self.whisper_english and source != ENGLISH:
            # Pairs Argos cannot do wait for Whisper's English translation of this segment.
            targets = [t for t in targets if self.service.can_translate(source, t) or not self._reachable(source, t)]
        await asyncio.gather(*(self._final_for_target(caption, source, caption.text, t) for t in targets))

    async def on_whisper_translation(self, caption: CaptionLike) -> None:
        """Whisper's English for a segment: used for the languages Argos could not reach directly."""
        text = caption.text
        source = self._finalized.get(caption.segment_id) or ENGLISH
        if not self.whisper_english or not text.strip() or source == ENGLISH:
            return
        targets = sorted(
            {
                lang
                for lang in self._choices.values()
                if lang != source
                and (caption.segment_id, lang) not in self._delivered
                and not self.service.can_translate(source, lang)
                and (lang == ENGLISH or self.service.can_translate(ENGLISH, lang))
            }
        )
        jobs = []
        for target in targets:
            if target == ENGLISH:
                self._deliver(caption, source, target, text)
            else:
                jobs.append(self._final_for_target(caption, source, text, target, via=ENGLISH))
        await asyncio.gather(*jobs)

    # -- internals --------------------------------------------------------------------------------

    async def _final_for_target(
        self, caption: CaptionLike, source: str, text: str, target: str, *, via: str | None = None
    ) -> None:
        lock = self._target_locks.setdefault(target, asyncio.Lock())
        async with lock:  # keep each language's subtitles in caption order
            translated = await self._translate(text, via or source, target)
            if translated is not None:
                self._deliver(caption, source, target, translated)

    async def _translate(self, text: str, source: str, target: str) -> str | None:
        try:
            result = await self.service.translate_result(text, source, target)
        except NoTranslationModel as err:
            self.stats.missing_model += 1
            self._tell_missing(source, target, err)
            return None
        except TranslationBusy:
            self.stats.dropped_busy += 1
            log.warning("translation queue full: dropped %s->%s subtitle", source, target)
            return None
        except Exception:
            self.stats.errors += 1
            log.exception("translating a caption %s->%s failed", source, target)
            return None
        if result.cached:
            self.stats.cache_hits += 1
        else:
            self.stats.translations_run += 1
        return result.text

    def _deliver(self, caption: CaptionLike, source: str, target: str, text: str) -> None:
        subtitle = Subtitle(
            segment_id=caption.segment_id,
            language=target,
            text=text,
            source_language=source,
            speaker_id=caption.speaker_id,
            speaker_name=caption.speaker_name,
            start=caption.start,
            end=caption.end,
            final=True,
        )
        self._delivered[(caption.segment_id, target)] = None
        while len(self._delivered) > _RECENT_SEGMENTS * 4:
            self._delivered.popitem(last=False)
        # Read the choices now, not when translation started: listeners may have left or switched.
        for listener_id in self.listeners_for(target):
            try:
                self.send(listener_id, subtitle)
            except Exception:
                self.stats.errors += 1
                log.exception("sending a subtitle to %s failed", listener_id)
                continue
            self.stats.subtitles_sent += 1

    def _reachable(self, source: str, target: str) -> bool:
        if self.service.can_translate(source, target):
            return True
        return (
            self.whisper_english
            and source != ENGLISH
            and (target == ENGLISH or self.service.can_translate(ENGLISH, target))
        )

    def _mark_final(self, segment_id: Hashable, language: str) -> None:
        self._finalized[segment_id] = language
        self._finalized.move_to_end(segment_id)
        while len(self._finalized) > _RECENT_SEGMENTS:
            self._finalized.popitem(last=False)

    def _missing(self, source: str, target: str) -> NoTranslationModel:
        try:
            self.service.route(source, target)
        except NoTranslationModel as err:
            return err
        return NoTranslationModel(source, target)  # pragma: no cover - only called when unroutable

    def _tell_missing(self, source: str, target: str, err: NoTranslationModel) -> None:
        if self.on_missing_model is None:
            return
        for listener_id in self.listeners_for(target):
            entry = (listener_id, source, target)
            if entry in self._told_missing:
                continue
            self._told_missing.add(entry)
            try:
                self.on_missing_model(listener_id, err)
            except Exception:
                log.exception("on_missing_model callback failed")

    async def _preload(self, source: str, target: str) -> None:
        try:
            await self.service.preload(source, target)
        except Exception:
            log.exception("preloading %s->%s failed", source, target)

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        try:
            task = asyncio.get_running_loop().create_task(coro)
        except RuntimeError:  # no running loop (sync caller): the first caption loads the model
            coro.close()
            return
        self._background.add(task)
        task.add_done_callback(self._background.discard)
