"""Which Argos packages are installed, and which language pairs they make reachable.

Argos pivots pairs it has no package for through other languages (in practice English, since the public
index pairs almost every language with English). We do the same with a shortest-path search over the
installed packages, preferring English as the intermediate language.

Only ``argostranslate.package`` is imported here: it reads metadata and builds the package's tokenizer,
and imports neither Stanza, MiniSBD nor torch (``argostranslate.translate`` does; see translate/engine.py).
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from itertools import pairwise
from pathlib import Path
from typing import Any

from translate.errors import NoTranslationModel

log = logging.getLogger(__name__)

PIVOT = "en"
MAX_HOPS = 3  # every hop costs quality and latency; Argos' index never needs more than 2


@dataclass(frozen=True)
class InstalledPair:
    """One installed translate package (a single from->to direction)."""

    from_code: str
    to_code: str
    from_name: str
    to_name: str
    version: str
    path: Path
    # argostranslate.package.Package: metadata plus its tokenizer (SentencePiece or BPE).
    package: Any = field(compare=False, repr=False)

    @property
    def key(self) -> tuple[str, str]:
        return (self.from_code, self.to_code)


def default_package_dirs() -> list[Path]:
    """Argos' own package directories: ARGOS_PACKAGES_DIR or settings.json, else XDG data dir.

    argostranslate.settings reads the environment once, when first imported.
    """
    from argostranslate import settings

    return list(settings.package_dirs)


def load_installed_pairs(dirs: Sequence[Path] | None = None) -> list[InstalledPair]:
    """Read every installed translate package; broken directories are skipped with a warning."""
    from argostranslate.package import Package

    found: list[InstalledPair] = []
    for directory in dirs if dirs is not None else default_package_dirs():
        directory = Path(directory)
        if not directory.is_dir():
            continue
        for path in sorted(directory.iterdir()):
            if not path.is_dir() or path.name.startswith("."):
                continue
            try:
                pkg = Package(path)
            except Exception as exc:  # one bad directory must not hide the others
                log.warning("skipping Argos package at %s: %s", path, exc)
                continue
            if pkg.type != "translate" or not pkg.from_code or not pkg.to_code:
                continue
            if getattr(pkg, "tokenizer", None) is None:
                log.warning("skipping Argos package at %s: no sentencepiece.model or bpe.model", path)
                continue
            found.append(
                InstalledPair(
                    pkg.from_code,
                    pkg.to_code,
                    pkg.from_name or pkg.from_code,
                    pkg.to_name or pkg.to_code,
                    pkg.package_version or "",
                    path,
                    pkg,
                )
            )
    return found


class Catalog:
    """The installed pairs and the routes between languages they allow."""

    def __init__(self, pairs: Iterable[InstalledPair]) -> None:
        self.pairs: dict[tuple[str, str], InstalledPair] = {}
        for pair in pairs:
            # Several directories may hold the same pair; the first found wins, as in Argos.
            self.pairs.setdefault(pair.key, pair)
        self._out: dict[str, list[str]] = {}
        for src, dst in self.pairs:
            self._out.setdefault(src, []).append(dst)
        for targets in self._out.values():
            targets.sort(key=lambda code: (code != PIVOT, code))
        self._routes: dict[tuple[str, str], list[InstalledPair] | None] = {}  # the router asks often

    @classmethod
    def discover(cls, dirs: Sequence[Path] | None = None) -> Catalog:
        return cls(load_installed_pairs(dirs))

    @property
    def languages(self) -> dict[str, str]:
        names: dict[str, str] = {}
        for pair in self.pairs.values():
            names.setdefault(pair.from_code, pair.from_name)
            names.setdefault(pair.to_code, pair.to_name)
        return dict(sorted(names.items()))

    def route(self, source: str, target: str) -> list[InstalledPair]:
        """Packages to chain for source->target (empty when they are equal)."""
        key = (source, target)
        if key not in self._routes:
            self._routes[key] = self._search(source, target)
        found = self._routes[key]
        if found is None:
            raise NoTranslationModel(source, target, self._hint(source, target))
        return list(found)

    def _search(self, source: str, target: str) -> list[InstalledPair] | None:
        if source == target:
            return []
        previous: dict[str, str] = {source: source}
        queue: deque[tuple[str, int]] = deque([(source, 0)])
        while queue:
            code, depth = queue.popleft()
            if depth >= MAX_HOPS:
                continue
            for nxt in self._out.get(code, ()):
                if nxt in previous:
                    continue
                previous[nxt] = code
                if nxt == target:
                    chain = [target]
                    while chain[-1] != source:
                        chain.append(previous[chain[-1]])
                    chain.reverse()
                    return [self.pairs[(a, b)] for a, b in pairwise(chain)]
                queue.append((nxt, depth + 1))
        return None

    def can_translate(self, source: str, target: str) -> bool:
        try:
            self.route(source, target)
        except NoTranslationModel:
            return False
        return True

    def reachable_from(self, source: str) -> set[str]:
        """Every language ``source`` can be translated into (excluding itself)."""
        return {code for code in self.languages if code != source and self.can_translate(source, code)}

    def _hint(self, source: str, target: str) -> str:
        if not self.pairs:
            return "no translation packages are installed"
        direct = f"{source}:{target}"
        if PIVOT in (source, target):
            return f"install {direct}"
        missing = [f"{a}:{b}" for a, b in ((source, PIVOT), (PIVOT, target)) if (a, b) not in self.pairs]
        return f"install {direct}, or {' and '.join(missing)} to pivot through English"
