"""Tests for the crisis-language detector (safety/).

Evaluation set: tests/data/safety_labelled.tsv (language, label, text; label 1 = alert the facilitator).

How honest are the figures? The first block was written before the phrase files, then the patterns
were revised three times. Each time a new held-out block was written *before* the revision and
scored with the patterns as they were, so those scores are for phrasings never seen while writing
patterns:

    block 1 vs initial patterns     en P 0.67 R 0.16    es P 0.89 R 0.57
    block 2 vs revision 1           en P 0.87 R 0.59    es P 1.00 R 0.33
    block 3 vs revision 2           en P 0.75 R 0.38    es P 1.00 R 0.57
    block 4 vs revision 3 (final)   en P 1.00 R 0.42    es P 1.00 R 0.40   <- never tuned on

The whole-set thresholds asserted below are therefore mostly in-sample: they guard against regressions
in covered phrasings. Block 4 is the honest estimate for new wording: explicit phrases are caught,
paraphrases often are not. The test prints it; keep block 4 untouched when editing patterns, and add
a fresh block (written before the change) to measure a change.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from safety import PHRASES_DIR, CrisisDetector, Match, SafetyConfigError, available_languages, normalize

DATA = Path(__file__).parent / "data" / "safety_labelled.tsv"
UNTUNED_BLOCK = "# --- Held-out block 4"

# Recall first: a missed crisis is worse than an alert the facilitator can dismiss in a second.
MIN_RECALL = 0.85
# Precision still matters: facilitators who get many false alerts learn to ignore them.
MIN_PRECISION = 0.85


def _load_rows() -> list[tuple[str, int, str, bool]]:
    """(language, label, text, in_untuned_block)"""
    rows = []
    untuned = False
    lines = DATA.read_text(encoding="utf-8").splitlines()
    assert lines[0] == "language\tlabel\ttext"
    for n, line in enumerate(lines[1:], 2):
        if line.startswith(UNTUNED_BLOCK):
            untuned = True
        if not line.strip() or line.startswith("#"):
            continue
        parts = line.split("\t")
        assert len(parts) == 3, f"{DATA}:{n}: expected 3 tab-separated columns"
        language, label, text = parts
        assert language in ("en", "es") and label in ("0", "1") and text.strip(), f"{DATA}:{n}: bad row"
        rows.append((language, int(label), text, untuned))
    return rows


ROWS = _load_rows()


@pytest.fixture(scope="module")
def detector() -> CrisisDetector:
    return CrisisDetector.from_config()


def _scores(det: CrisisDetector, rows: list[tuple[str, int, str, bool]]) -> tuple[float, float, str]:
    tp = fp = fn = tn = 0
    for language, label, text, _ in rows:
        hit = det.check(text, language) is not None
        tp += hit and label == 1
        fp += hit and label == 0
        fn += (not hit) and label == 1
        tn += (not hit) and label == 0
    precision = tp / (tp + fp) if tp + fp else 1.0
    recall = tp / (tp + fn) if tp + fn else 1.0
    return precision, recall, f"P={precision:.3f} R={recall:.3f} (tp={tp} fp={fp} fn={fn} tn={tn})"


def test_evaluation_set_is_big_and_balanced_enough() -> None:
    for language, minimum in (("en", 80), ("es", 50)):
        labels = [label for lang, label, _, _ in ROWS if lang == language]
        assert len(labels) >= minimum
        share = sum(labels) / len(labels)
        assert 0.35 <= share <= 0.65, f"{language}: {share:.0%} positives"
    texts = [text for _, _, text, _ in ROWS]
    assert len(texts) == len(set(texts)), "duplicate lines in the evaluation set"


@pytest.mark.parametrize("language", ["en", "es"])
def test_precision_and_recall(detector: CrisisDetector, language: str) -> None:
    rows = [r for r in ROWS if r[0] == language]
    precision, recall, summary = _scores(detector, rows)
    _, _, untuned = _scores(detector, [r for r in rows if r[3]])
    print(f"\n[{language}] whole set: {summary}\n[{language}] untuned block 4: {untuned}")
    assert recall >= MIN_RECALL, summary
    assert precision >= MIN_PRECISION, summary


# --- normalisation ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("I'm NOT ok!!", "i am not ok"),
        ("im fine. dont worry", "i am fine | do not worry"),
        ("I can’t, I won't, I cannot", "i can not i will not i can not"),
        ("I'd never", "i would never"),
        ("i wanna kms", "i want to kill myself"),
        ("I want to dieeee", "i want to die"),
        ("i hate my self", "i hate myself"),
        ("my self-harm", "my self harm"),
        ("i'll go; ill be fine; I feel ill", "i will go | i will be fine | i feel ill"),
        ("Me quiero MORIR, qué daño", "me quiero morir que dano"),
        ("¿Por qué? xq no kiero", "por que | porque no quiero"),
        ("thinking about sucide", "thinking about suicide"),
        ("", ""),
    ],
)
def test_normalize(text: str, expected: str) -> None:
    assert normalize(text) == expected


def test_match_reports_original_span_and_phrase(detector: CrisisDetector) -> None:
    text = "Honestly?? I'm gonna KILL MYSELF tonight"
    match = detector.check(text, "en")
    assert isinstance(match, Match)
    assert match.category == "suicidal_ideation"
    assert match.language == "en"
    assert match.phrase == text[match.span[0] : match.span[1]]
    assert "KILL MYSELF" in match.phrase

    text = "Hoy... me quiero morir de verdad"
    match = detector.check(text, "es")
    assert match is not None and match.phrase == "me quiero morir"


@pytest.mark.parametrize(
    ("text", "category"),
    [
        ("i want to kill myself", "suicidal_ideation"),
        ("I WANT TO DIE", "suicidal_ideation"),
        ("i dont wanna live anymore", "suicidal_ideation"),
        ("ive been cutting again", "self_harm"),
        ("I'm going to hurt him when he gets home", "harm_to_others"),
        ("my husband hits me", "abuse_or_danger"),
        ("me quiero morir", "suicidal_ideation"),
        ("volvi a hacerme dano", "self_harm"),
        ("mi pareja me pega", "abuse_or_danger"),
    ],
)
def test_categories(detector: CrisisDetector, text: str, category: str) -> None:
    match = detector.check(text, None)
    assert match is not None and match.category == category


# --- negation and hard negatives ------------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        "I'd never hurt myself",
        "i would never ever hurt myself",
        "I'm not going to kill myself",
        "I don't want to die",
        "I'm not suicidal",
        "I'd never do anything to hurt myself",
        "no quiero morir",
        "no me quiero morir",
        "nunca me haría daño",
        "no me voy a quitar la vida",
        "no pienso hacerme daño",
    ],
)
def test_negated_phrases_do_not_alert(detector: CrisisDetector, text: str) -> None:
    assert detector.check(text, None) is None


@pytest.mark.parametrize(
    "text",
    [
        # Negation must not leak across clauses or onto unrelated verbs.
        "I can't sleep and I want to die",
        "i cant stop thinking about killing myself",
        "no, I want to die",
        "I don't know, I want to die",
        # Phrases that carry their own negation.
        "I don't want to live anymore",
        "ya no quiero vivir",
        "no, no quiero vivir",
        # An idiom elsewhere in the line does not hide a real phrase.
        "this traffic is killing me and honestly i want to die",
        "i want to die my hair and also i want to die",
    ],
)
def test_negation_scope_is_narrow(detector: CrisisDetector, text: str) -> None:
    assert detector.check(text, None) is not None


@pytest.mark.parametrize(
    "text",
    [
        "this traffic is killing me",
        "I'm dying to see that film",
        "that joke killed me",
        "I would kill for a coffee",
        "drop dead gorgeous",
        "the deadline is killing me",
        "i killed myself laughing",
        "I want to die my hair blue",
        "I'd rather die than sing karaoke",
        "I'm going to end it with him",
        "let's end it there for today",
        "I'm taking my life back",
        "I cut myself shaving",
        "cutting back on sugar",
        "me muero de risa",
        "me muero de hambre",
        "me quiero morir de la vergüenza",
        "me corté el pelo",
        "me estoy matando a estudiar",
        "ya no quiero vivir en esta ciudad",
    ],
)
def test_idioms_do_not_alert(detector: CrisisDetector, text: str) -> None:
    assert detector.check(text, None) is None


def test_whisper_style_text_without_punctuation_or_case(detector: CrisisDetector) -> None:
    assert detector.check("um yeah so i i think im going to end it all you know", "en") is not None
    assert detector.check("y bueno la verdad es que me quiero morir", "es") is not None


# --- language selection ---------------------------------------------------------------------------


def test_language_is_a_hint_not_a_filter(detector: CrisisDetector) -> None:
    # A Spanish chat line in an English room still alerts; the hinted set is tried first.
    match = detector.check("me quiero morir", "en")
    assert match is not None and match.language == "es"
    assert detector.check("me quiero morir", "es-MX") is not None
    assert detector.check("I want to die", "pt") is not None
    assert detector.check("I want to die", None) is not None
    assert detector.check("", "en") is None
    assert detector.check("   ", None) is None


def test_single_language_detector() -> None:
    det = CrisisDetector.from_config(languages=("es",))
    assert det.languages == ("es",)
    assert det.check("I want to kill myself", "en") is None
    assert det.check("quiero matarme", None) is not None


def test_builtin_files_found_next_to_module() -> None:
    assert PHRASES_DIR == Path(__file__).resolve().parents[1] / "safety" / "phrases"
    assert {"en", "es"} <= set(available_languages())


# --- extra phrases file ---------------------------------------------------------------------------


def test_extra_phrases_file(tmp_path: Path) -> None:
    extra = tmp_path / "site.toml"
    extra.write_text(
        """
language = "en"

[[rule]]
category = "eating_disorder"
patterns = ["purg* again", "(stopped|stop) eating ~2 (days|weeks)"]

[[rule]]
category = "self_harm"
language = "es"
patterns = ["me quemo con ~1 plancha"]

[[hard_negative]]
patterns = ["purging (files|the cache|old data)"]

[[rule]]
# no language anywhere in the file for this one? it inherits the file's "en"
category = "suicidal_ideation"
patterns = ["unalive myself"]
""",
        encoding="utf-8",
    )
    det = CrisisDetector.from_config(extra_phrases_file=extra)
    match = det.check("I've been purging again", "en")
    assert match is not None and match.category == "eating_disorder"
    assert det.check("i stopped eating for two days", "en") is not None
    assert det.check("we are purging old data tonight", "en") is None
    assert det.check("a veces me quemo con la plancha", "es") is not None
    assert det.check("I want to kill myself", "en") is not None  # built-ins still loaded


def test_extra_file_can_add_a_language(tmp_path: Path) -> None:
    extra = tmp_path / "fr.toml"
    extra.write_text(
        """
language = "fr"
[negation]
words = ["ne", "pas", "jamais"]
scope = ["je", "vais", "me"]
[[rule]]
category = "suicidal_ideation"
patterns = ["(envie de|veux) mourir", "me (tuer|suicider)"]
""",
        encoding="utf-8",
    )
    det = CrisisDetector.from_config(languages=("en", "fr"), extra_phrases_file=extra)
    assert det.check("j'ai envie de mourir", "fr") is not None
    assert det.check("je ne vais jamais me tuer", "fr") is None


def test_rules_without_language_apply_to_every_set(tmp_path: Path) -> None:
    extra = tmp_path / "any.toml"
    extra.write_text('[[rule]]\ncategory = "custom"\npatterns = ["codeword bluebird"]\n', encoding="utf-8")
    det = CrisisDetector.from_config(extra_phrases_file=extra)
    assert det.check("Codeword Bluebird!", "en") is not None
    assert det.check("codeword bluebird", "es") is not None


# --- bad configuration ------------------------------------------------------------------------------


def _bad(tmp_path: Path, body: str, *fragments: str, languages: tuple[str, ...] = ("en", "es")) -> None:
    path = tmp_path / "bad.toml"
    path.write_text(body, encoding="utf-8")
    with pytest.raises(SafetyConfigError) as info:
        CrisisDetector.from_config(languages=languages, extra_phrases_file=path)
    message = str(info.value)
    assert str(path) in message
    for fragment in fragments:
        assert fragment in message, message


@pytest.mark.parametrize(
    ("body", "fragments"),
    [
        ("[[rule]\n", ("not valid TOML",)),
        ('colour = "blue"\n', ("unknown key(s) colour",)),
        ('[[rule]]\ncategory = "x"\npatterns = ["a"]\nweight = 2\n', ("rule #1", "unknown key(s) weight")),
        ('[[rule]]\ncategory = "Bad Category"\npatterns = ["a"]\n', ("rule #1", "category")),
        ('[[rule]]\ncategory = "x"\n', ("rule #1 (x)", "missing patterns")),
        ('[[rule]]\ncategory = "x"\npatterns = []\n', ("must not be empty",)),
        ('[[rule]]\ncategory = "x"\npatterns = "kill myself"\n', ("list of strings",)),
        (
            '[[rule]]\ncategory = "x"\npatterns = ["(kill myself"]\n',
            ("rule #1 (x)", "'(kill myself'", "missing"),
        ),
        ('[[rule]]\ncategory = "x"\npatterns = ["kill) myself"]\n', ("unbalanced",)),
        ('[[rule]]\ncategory = "x"\npatterns = ["want ~9 die"]\n', ("gap ~9",)),
        ('[[rule]]\ncategory = "x"\npatterns = ["[maybe]"]\n', ("match empty text",)),
        ('[[rule]]\ncategory = "x"\npatterns = ["kill & myself"]\n', ("unexpected character '&'",)),
        ('[[rule]]\ncategory = "x"\npatterns = ["a"]\nnegatable = "yes"\n', ("negatable",)),
        ('[[rule]]\ncategory = "x"\nlanguage = "English"\npatterns = ["a"]\n', ("language must be",)),
        ('[[rule]]\ncategory = "x"\nlanguage = "de"\npatterns = ["a"]\n', ("'de'", "not in languages")),
        ('language = "en"\n[negation]\nwindow = 99\n', ("[negation]", "window")),
        ('[negation]\nwords = ["not"]\n', ("[negation]", "top-level language")),
        ('[[hard_negative]]\npatterns = ["(a"]\n', ("hard_negative #1",)),
    ],
)
def test_bad_extra_file(tmp_path: Path, body: str, fragments: tuple[str, ...]) -> None:
    _bad(tmp_path, body, *fragments)


def test_missing_extra_file(tmp_path: Path) -> None:
    with pytest.raises(SafetyConfigError, match="not found"):
        CrisisDetector.from_config(extra_phrases_file=tmp_path / "nope.toml")


def test_bad_languages() -> None:
    with pytest.raises(SafetyConfigError, match="no phrase set for language 'de'"):
        CrisisDetector.from_config(languages=("en", "de"))
    with pytest.raises(SafetyConfigError, match="at least one language"):
        CrisisDetector.from_config(languages=())
    with pytest.raises(SafetyConfigError, match="ISO 639"):
        CrisisDetector.from_config(languages=("EN",))
    # A plain string is one language, not a sequence of letters.
    assert CrisisDetector.from_config(languages="es").languages == ("es",)
    assert issubclass(SafetyConfigError, ValueError)


# --- performance -------------------------------------------------------------------------------------


def test_check_is_well_under_a_millisecond() -> None:
    # The phrase layer's cost; the learned layer's per-final latency is measured by bench.safety.
    detector = CrisisDetector.from_config(learned=False)
    texts = [text for _, _, text, _ in ROWS]
    texts.append("so this week I went back to work and it was fine mostly, a bit tiring but ok " * 3)
    detector.check("warm up", None)
    start = time.perf_counter()
    rounds = 5
    for _ in range(rounds):
        for text in texts:
            detector.check(text, None)
    per_line = (time.perf_counter() - start) / (rounds * len(texts))
    print(f"\ncheck(): {per_line * 1e6:.0f} µs per line, all languages")
    # Typically ~0.1 ms; the bound leaves room for slow CI machines.
    assert per_line < 1e-3
