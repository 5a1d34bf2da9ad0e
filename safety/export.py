"""The phrase layer as data, for the facilitators' browsers in end-to-end encrypted rooms.

An E2EE room's server never reads captions or chat, so the crisis detector's phrase layer runs where the text
is: in each facilitator's browser (web/static/e2ee/phrases.js). This writes what that matcher needs, taken from
the same compiled phrase sets `CrisisDetector` uses (so the two cannot drift): per language the rules' regular
expressions over the normalised text, hard negatives, cues and negation, plus the normalisation tables. The
learned layer is not exported; it stays on the server and is off in E2EE rooms.

    python -m safety.export OUT.json
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from safety import detector as d


def phrase_rules(languages: tuple[str, ...] = ("en", "es")) -> dict[str, Any]:
    crisis = d.CrisisDetector.from_config(languages, learned=False)
    sets = []
    for phrase_set in crisis._sets.values():
        sets.append({
            "language": phrase_set.language,
            "rules": [{"category": r.category, "source": r.source, "regex": r.regex.pattern,
                       "negatable": r.negatable, "needs_context": r.needs_context} for r in phrase_set.rules],
            "hard": [h.pattern for h in phrase_set.hard],
            "cues": {kind: [c.pattern for c in cues] for kind, cues in phrase_set.cues.items()},
            "prefilter": phrase_set.prefilter.pattern if phrase_set.prefilter is not None else None,
            "negation": {"words": sorted(phrase_set.negation.words), "scope": sorted(phrase_set.negation.scope),
                         "window": phrase_set.negation.window},
        })
    return {
        "version": 1,
        "confidence": d.PHRASE_CONFIDENCE,
        "sets": sets,
        "normalise": {
            "apostrophes": {chr(k): v for k, v in d._APOSTROPHES.items()},
            "apos_special": d._APOS_SPECIAL,
            "is_before_s": sorted(d._IS_BEFORE_S),
            "suffixes": d._SUFFIXES,
            "word_map": d._WORD_MAP,
            "ill_verbs": sorted(d._ILL_VERBS),
            "self_compounds": sorted(d._SELF_COMPOUNDS),
            "bigrams": [[a, b, list(v)] for (a, b), v in d._BIGRAMS.items()],
            "fillers": sorted(d._FILLERS),
            "filler_bigrams": sorted([a, b] for a, b in d._FILLER_BIGRAMS),
            "filler_single": sorted(d._FILLER_SINGLE),
            "like_keep": sorted(d._LIKE_KEEP),
            "este_filler_next": sorted(d._ESTE_FILLER_NEXT),
            "units": d._UNITS,
            "tens": d._TENS,
            "ambiguous_numbers": sorted(d._AMBIGUOUS_NUMBERS),
        },
        "cued_categories": sorted(d._CUED_CATEGORIES),
        "first_person": sorted(d._FIRST_PERSON),
        "speaker_words": sorted(d._SPEAKER_WORDS),
    }


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print("usage: python -m safety.export OUT.json", file=sys.stderr)
        return 2
    Path(argv[0]).write_text(json.dumps(phrase_rules(), ensure_ascii=False, separators=(",", ":")))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
