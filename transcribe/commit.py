"""LocalAgreement-2 commit policy (Machacek et al. 2023), pure: no audio, no model.

Whisper re-decodes a growing buffer; each decode gives a hypothesis (timed words). A word is committed
once two consecutive hypotheses agree on it, as part of their longest common prefix after what is already
committed. Committed words never change; the rest of the newest hypothesis is the tentative tail.
"""

from __future__ import annotations

import unicodedata
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Word:
    start: float  # seconds, on whatever clock the caller uses consistently
    end: float
    text: str  # as Whisper wrote it, leading space included (so joining keeps spacing, also for CJK)
    probability: float = 1.0  # Whisper's own confidence in the word


def normalize_word(text: str) -> str:
    """Comparison key: case, surrounding punctuation and spacing do not count as disagreement."""
    folded = unicodedata.normalize("NFKC", text).casefold().strip()
    return "".join(ch for ch in folded if not unicodedata.category(ch).startswith(("P", "Z")))


def join_words(words: Sequence[Word]) -> str:
    return "".join(w.text for w in words).strip()


class LocalAgreement:
    """Commit the longest common prefix of two consecutive hypotheses.

    ``time_tolerance``: words starting this much before the last committed word's end still count as
    new (Whisper's word times jitter between decodes). ``max_ngram``: a fresh hypothesis that restarts
    with the last few committed words (re-decoded audio just before the commit point) is de-duplicated,
    but only where those words lie in the same audio as the committed ones: the same line said again
    after it (a repeat, or a second voice echoing the first) is new speech.
    """

    def __init__(self, time_tolerance: float = 0.1, max_ngram: int = 5) -> None:
        self.time_tolerance = time_tolerance
        self.max_ngram = max_ngram
        self.committed: list[Word] = []  # committed and not yet released to a final caption
        self.last_committed_end = float("-inf")
        self._tail: list[Word] = []  # uncommitted part of the newest hypothesis
        self._recent: deque[Word] = deque(maxlen=max_ngram)  # survives release, for de-duplication

    @property
    def tail(self) -> list[Word]:
        return list(self._tail)

    def _fresh(self, hypothesis: Sequence[Word]) -> list[Word]:
        """The part of a hypothesis that lies after what is already committed."""
        fresh = [w for w in hypothesis if w.start > self.last_committed_end - self.time_tolerance]
        if fresh and self._recent and abs(fresh[0].start - self.last_committed_end) < 1.0:
            recent = [normalize_word(w.text) for w in self._recent]
            head = [normalize_word(w.text) for w in fresh]
            for n in range(min(len(recent), len(head), self.max_ngram), 0, -1):
                # A re-decode of the committed words starts where they were said (its first word overlaps
                # its committed twin, give or take the jitter); a repeat starts after the twin ended.
                said_again = fresh[0].start > self._recent[-n].end + self.time_tolerance
                if recent[-n:] == head[:n] and not said_again:
                    return fresh[n:]
        return fresh

    def _commit(self, words: Sequence[Word]) -> list[Word]:
        for w in words:
            self.committed.append(w)
            self._recent.append(w)
            self.last_committed_end = max(self.last_committed_end, w.end)
        return list(words)

    def update(self, hypothesis: Sequence[Word]) -> list[Word]:
        """Insert the newest hypothesis; return the words it commits (possibly none)."""
        fresh = self._fresh(hypothesis)
        agreed = 0
        for new, old in zip(fresh, self._tail, strict=False):
            if normalize_word(new.text) != normalize_word(old.text):
                break
            agreed += 1
        self._tail = fresh[agreed:]
        return self._commit(fresh[:agreed])  # the newer hypothesis's spelling and timing win

    def finish(self, hypothesis: Sequence[Word] | None = None) -> list[Word]:
        """End of speech: the last hypothesis has nothing left to agree with, so commit all of it."""
        words = self._fresh(hypothesis) if hypothesis is not None else self._tail
        self._tail = []
        return self._commit(words)

    def release_until(self, time: float) -> list[Word]:
        """Hand over committed words that start before ``time`` (they become a final caption), forget them.

        By start, not end: a segment boundary can fall inside the last word's trailing edge.
        """
        keep = next((i for i, w in enumerate(self.committed) if w.start >= time), len(self.committed))
        released, self.committed = self.committed[:keep], self.committed[keep:]
        return released


def completed_boundary(segment_ends: Sequence[float], committed_end: float) -> float | None:
    """Where the audio buffer may be cut: the latest end of a hypothesis segment, other than the last one
    (it may still grow), that lies within committed text. None if there is no such boundary yet."""
    candidates = [e for e in segment_ends[:-1] if e <= committed_end]
    return max(candidates) if candidates else None
