"""The interface text catalogs (web/static/locales/*.json): every text the client asks for exists in every
listed language, with the same {placeholders}, so adding a language is adding one JSON file and one line in
locales/index.json. (The Chromium test test_browser_experience.py shows the Spanish catalog in use.)"""

from __future__ import annotations

import json
import re
from pathlib import Path

STATIC = Path(__file__).resolve().parents[1] / "web" / "static"
LOCALES = STATIC / "locales"
PLACEHOLDER = re.compile(r"\{(\w+)\}")


def catalog(code: str) -> dict[str, str]:
    return json.loads((LOCALES / f"{code}.json").read_text(encoding="utf-8"))


def keys_used() -> set[str]:
    used: set[str] = set()
    for script in STATIC.glob("*.js"):
        used |= set(re.findall(r"\bt\(\s*\"([\w.\-]+)\"", script.read_text(encoding="utf-8")))
    html = (STATIC.parent / "index.html").read_text(encoding="utf-8")
    used |= set(re.findall(r'data-i18n="([\w.\-]+)"', html))
    for pairs in re.findall(r'data-i18n-attr="([^"]+)"', html):
        used |= {pair.split(":", 1)[1].strip() for pair in pairs.split(";")}
    # Keys built from a code: reactions, goodbye reasons, join errors.
    reactions = re.findall(r'"?([\w-]+)"?: "[^"]+"', re.search(r"REACTIONS = \{([^}]*)\}",
                                                              (STATIC / "tiles.js").read_text()).group(1))
    used |= {f"reaction.{name}" for name in reactions}
    used |= {f"bye.{reason}.{part}" for reason in ("denied", "removed", "ended", "other", "left", "leftLobby")
             for part in ("title", "text")}
    used |= {f"joinError.{code}" for code in ("room-locked", "room-full", "lobby-full", "removed", "bad-secret",
                                              "no-such-room", "agreement-required", "rate-limited", "connection",
                                              "unavailable")}
    return used


def test_every_listed_language_has_every_text_with_the_same_placeholders() -> None:
    listed = json.loads((LOCALES / "index.json").read_text(encoding="utf-8"))["languages"]
    assert {"en", "es"} <= set(listed)
    english = catalog("en")
    missing = sorted(keys_used() - set(english))
    assert not missing, f"texts used by the client but missing from en.json: {missing}"
    for code in listed:
        texts = catalog(code)
        assert set(texts) == set(english), f"{code}.json differs: {sorted(set(texts) ^ set(english))}"
        for key, text in texts.items():
            assert text.strip(), f"{code}.json: {key} is empty"
            assert set(PLACEHOLDER.findall(text)) == set(PLACEHOLDER.findall(english[key])), (code, key)


def test_no_english_left_in_the_spanish_catalog() -> None:
    english, spanish = catalog("en"), catalog("es")
    same = [k for k in english if english[k] == spanish[k] and len(english[k]) > 12 and "{" not in english[k]]
    assert not same, f"untranslated: {same}"
