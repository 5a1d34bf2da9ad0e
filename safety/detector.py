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
import re
import tomllib
import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

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

BUILTIN_CATEGORIES = ("suicidal_ideation", "self_harm", "harm_to_others", "abuse_or_danger")

CLAUSE = "|"
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

_PAT_TOKEN_RE = re.compile(r"\s*(?:([()\[\]|$])|~(\d+)|([\w']+)(\*?)|(-)|(\S))")


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


@dataclass(slots=True)
class _Rule:
    category: str
    source: str
    regex: re.Pattern[str]
    negatable: bool


class _PhraseSet:
    def __init__(self, language: str, spec: _LanguageSpec) -> None:
        self.language = language
        self.negation = spec.negation or _Negation()
        self.rules: list[_Rule] = []
        bodies: list[str] = []
        for rule in spec.rules:
            for src in rule.patterns:
                body = _compile_checked(src, self.negation.words, rule.where)
                bodies.append(body)
                self.rules.append(_Rule(rule.category, src, re.compile("(?<= )" + body), rule.negatable))
        self.hard = [
            re.compile("(?<= )" + _compile_checked(src, self.negation.words, where))
            for src, where in spec.hard
        ]
        # One search decides whether any rule can match at all, so clean lines stay cheap.
        self.prefilter = re.compile("(?<= )(?:" + "|".join(bodies) + ")") if bodies else None

    def find(self, norm: _Normalised, original: str) -> Match | None:
        if self.prefilter is None or self.prefilter.search(norm.text) is None:
            return None
        hard_spans: list[tuple[int, int]] | None = None
        best: tuple[int, int, _Rule] | None = None
        for rule in self.rules:
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
        return Match(rule.category, original[o_start:o_end], (o_start, o_end), self.language, rule.source)

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

_TOP_KEYS = {"language", "description", "negation", "rule", "hard_negative"}
_NEGATION_KEYS = {"words", "scope", "window"}
_RULE_KEYS = {"category", "patterns", "language", "negatable"}
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
        lang = _language_of(rule["language"], where) if "language" in rule else default_lang
        target(lang).rules.append(_RuleSpec(category, patterns, negatable, where))

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
    """Checks one caption or chat line at a time. Immutable after construction; safe to share."""

    def __init__(self, sets: Sequence[_PhraseSet]) -> None:
        self._sets = {s.language: s for s in sets}

    @property
    def languages(self) -> tuple[str, ...]:
        return tuple(self._sets)

    @classmethod
    def from_config(
        cls,
        languages: Iterable[str] = ("en", "es"),
        extra_phrases_file: Path | str | None = None,
    ) -> CrisisDetector:
        """Load the built-in phrase sets for `languages`, plus a site's own file if given.

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
            if not spec.rules:
                raise SafetyConfigError(f"language {lang!r}: no rules loaded")
            sets.append(_PhraseSet(lang, spec))
        return cls(sets)

    def check(self, text: str, language: str | None = None) -> Match | None:
        """Return the first crisis phrase in `text`, or None.

        `language` (e.g. "en", "es-MX", or None) only sets the order: that phrase set is tried first
        and its match wins, then every other loaded set. A room's language says little about a
        chat line, people switch languages, and Whisper mislabels short segments; a missed
        alert costs more than the extra microseconds.
        """
        if not text or text.isspace():
            return None
        primary = language.lower().replace("_", "-").split("-", 1)[0] if language else None
        sets = list(self._sets.values())
        if primary in self._sets:
            sets.remove(self._sets[primary])
            sets.insert(0, self._sets[primary])
        norm = _normalise(text)
        for phrase_set in sets:
            match = phrase_set.find(norm, text)
            if match is not None:
                return match
        return None
