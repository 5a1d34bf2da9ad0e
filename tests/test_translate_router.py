"""SubtitleRouter: one translation per caption and target language, sent only to who asked for it."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from translate.errors import NoTranslationModel
from translate.router import SubtitleRouter
from translate.service import TranslationService
from translate.subtitle import Subtitle


@dataclass(frozen=True)
class Caption:
    """Same attributes as transcribe.events.Caption (the router only duck-types them)."""

    segment_id: str
    speaker_id: str
    speaker_name: str
    text: str
    final: bool
    start: float
    end: float
    language: str
    task: str = "transcribe"


def caption(n: int, text: str, language: str = "en", final: bool = True, task: str = "transcribe") -> Caption:
    return Caption(f"seg-{n}", "p1", "Sam", text, final, float(n), n + 0.9, language, task)


LINES = ["I want to share something that happened this week.", "My sister called me.", "I slept better on Tuesday."]



class Inbox:
    def __init__(self) -> None:
        self.got: list[tuple[str, Subtitle]] = []

    def __call__(self, listener_id: str, subtitle: Subtitle) -> None:
        self.got.append((listener_id, subtitle))

    def of(self, listener_id: str) -> list[Subtitle]:
        return [s for lid, s in self.got if lid == listener_id]


async def test_listener_gets_a_subtitle_per_final_and_others_get_none(service: TranslationService) -> None:
    inbox = Inbox()
    router = SubtitleRouter(service, inbox)
    assert router.set_choice("ana", "es").language == "es"
    router.set_choice("ben", None)  # chose nothing
    router.set_choice("cy", "en")  # reads the original
    for n, line in enumerate(LINES):
        await router.on_final_caption(caption(n, line))

    subs = inbox.of("ana")
    assert [s.segment_id for s in subs] == ["seg-0", "seg-1", "seg-2"]
    expected = [service.translate_sync(line, "en", "es").text for line in LINES]
    assert [s.text for s in subs] == expected
    assert all(s.language == "es" and s.source_language == "en" and s.final for s in subs)
    assert (subs[0].speaker_id, subs[0].speaker_name, subs[0].start, subs[0].end) == ("p1", "Sam", 0.0, 0.9)
    assert inbox.of("ben") == [] and inbox.of("cy") == []
    assert router.stats.subtitles_sent == 3


async def test_three_listeners_one_translation(service: TranslationService) -> None:
    inbox = Inbox()
    router = SubtitleRouter(service, inbox)
    for listener in ("a", "b", "c"):
        router.set_choice(listener, "es")
    await router.on_final_caption(caption(1, LINES[0]))
    assert router.stats.translations_run == 1 and service.stats.model_runs == 1
    assert router.stats.subtitles_sent == 3
    assert len({s.text for _, s in inbox.got}) == 1

    await router.on_final_caption(caption(2, LINES[0]))  # the same phrase again
    assert router.stats.cache_hits == 1 and service.stats.model_runs == 1
    assert router.stats.subtitles_sent == 6


async def test_targets_share_the_english_pivot(service: TranslationService) -> None:
    inbox = Inbox()
    router = SubtitleRouter(service, inbox)
    router.set_choice("a", "yy")
    router.set_choice("b", "es")
    router.set_choice("c", "en")
    router.set_choice("d", "xx")  # the speaker's language: nothing to do
    await router.on_final_caption(caption(1, LINES[1], language="xx"))
    # xx->en once (shared by the en, es and yy subtitles), then en->es and en->yy.
    assert service.stats.model_runs == 3
    assert {lid for lid, _ in inbox.got} == {"a", "b", "c"}
    assert router.stats.translations_run == 3


async def test_choice_without_model_is_refused_with_a_clear_message(service: TranslationService) -> None:
    router = SubtitleRouter(service, Inbox())
    with pytest.raises(NoTranslationModel, match="no model for \\*->fr"):
        router.set_choice("a", "fr")  # nobody spoke yet and no package produces French
    router.set_source_languages(["es"])
    with pytest.raises(NoTranslationModel, match="no model for es->yy"):
        router.set_choice("a", "yy")
    assert router.choices == {}

    router.set_source_languages(["en", "es"])
    choice = router.set_choice("a", "yy")  # en speakers are covered, es speakers are not
    assert choice.language == "yy"
    assert choice.warnings == ["no model for es->yy (install es:yy, or es:en to pivot through English)"]
    assert router.reachable_targets() == ["es", "yy"]


async def test_missing_model_at_caption_time_is_told_once(service: TranslationService) -> None:
    told: list[tuple[str, str]] = []
    inbox = Inbox()
    router = SubtitleRouter(service, inbox, on_missing_model=lambda lid, err: told.append((lid, str(err))))
    router.set_choice("a", "es")
    await router.on_final_caption(caption(1, "hola a todos", language="fr"))
    await router.on_final_caption(caption(2, "gracias", language="fr"))
    assert inbox.got == [] and router.stats.missing_model == 2
    assert len(told) == 1 and told[0][0] == "a" and "no model for fr->es" in told[0][1]


async def test_removed_listener_gets_nothing(service: TranslationService) -> None:
    inbox = Inbox()
    router = SubtitleRouter(service, inbox)
    router.set_choice("a", "es")
    router.set_choice("b", "es")
    router.remove_listener("a")
    await router.on_final_caption(caption(1, LINES[2]))
    assert [lid for lid, _ in inbox.got] == ["b"]


async def test_whisper_english_covers_pairs_argos_cannot(service: TranslationService) -> None:
    told: list[str] = []
    inbox = Inbox()
    router = SubtitleRouter(
        service, inbox, whisper_english=True, on_missing_model=lambda lid, err: told.append(str(err))
    )
    router.set_source_languages(["fr"])  # no Argos package reads French
    for listener, language in (("a", "en"), ("b", "es"), ("c", "fr")):
        router.set_choice(listener, language)
    assert router.reachable_targets() == ["en", "es", "yy"]

    await router.on_final_caption(caption(1, "Merci à tous d'être là.", language="fr"))
    assert inbox.got == [] and told == []  # waiting for Whisper's English
    english = "Thank you all for being here."
    await router.on_whisper_translation(caption(1, english, language="en", task="translate"))
    by_listener = {lid: sub for lid, sub in inbox.got}
    assert set(by_listener) == {"a", "b"}
    assert by_listener["a"].text == english and by_listener["a"].source_language == "fr"
    assert by_listener["b"].text == service.translate_sync(english, "en", "es").text
    assert by_listener["b"].source_language == "fr" and by_listener["b"].segment_id == "seg-1"


async def test_whisper_english_never_duplicates_an_argos_subtitle(service: TranslationService) -> None:
    inbox = Inbox()
    router = SubtitleRouter(service, inbox, whisper_english=True)
    router.set_choice("a", "en")
    await router.on_final_caption(caption(1, "Thank you all.", language="xx"))  # Argos has xx->en
    await router.on_whisper_translation(caption(1, "Thanks, everyone.", language="en", task="translate"))
    assert [(lid, s.text != "Thanks, everyone.") for lid, s in inbox.got] == [("a", True)]

    ignoring = SubtitleRouter(service, Inbox())  # whisper_english off: translation events are ignored
    ignoring.set_choice("a", "es")
    await ignoring.on_whisper_translation(caption(2, "Thanks, everyone.", language="en", task="translate"))
    assert ignoring.stats.subtitles_sent == 0 and ignoring.stats.translations_run == 0
