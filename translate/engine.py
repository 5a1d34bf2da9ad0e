"""Run one installed Argos package on caption text, without Argos' sentence splitting.

Why we do not call ``argostranslate.translate``:

* Argos 1.11 splits text into sentences with MiniSBD, which **downloads a model at translate time**. On an
  air-gapped server that fails mid-meeting, and anywhere else it is a network request nobody asked for.
* Importing ``argostranslate.translate`` imports ``argostranslate.sbd``, hence Stanza and torch (seconds of
  start-up, hundreds of MB), and with ``ARGOS_CHUNK_TYPE=SPACY`` it downloads a spaCy model *at import*.
  Setting environment variables cannot make that path safe, so we avoid it entirely.
* Captions are one to three short sentences. A punctuation split is all they need, and the sentences of a
  caption go to the model as one batch.

So we take what Argos loads for us (``argostranslate.package.Package``: metadata and its SentencePiece or
BPE tokenizer) and drive the package's CTranslate2 model ourselves, with Argos' decoding options
(``replace_unknowns``, ``target_prefix``, ``length_penalty``), a smaller beam for latency, and an output
length cap proportional to the input, as real translations are (this also stops a degenerate model from
looping to the maximum length). Nothing here opens a socket. Every use of Argos' internals (the package's
tokenizer and target prefix, its layout, its decoding options) goes through translate/argos_adapter.py,
which checks them before a model loads.
"""

from __future__ import annotations

import math
import re
import threading
from dataclasses import dataclass
from typing import Any

from translate import argos_adapter
from translate.catalog import InstalledPair

_BOUNDARY = re.compile(r"(?<=[.!?…])\s+|(?<=[。！？])\s*")
_ABBREVIATION = re.compile(r"(?:^|\s)(?:Mr|Mrs|Ms|Dr|Prof|St|Sr|Sra|Jr|vs|etc|e\.g|i\.e|No)\.$", re.IGNORECASE)
_NO_SPACE_BETWEEN_SENTENCES = {"zh", "zt", "ja"}


def split_sentences(text: str) -> list[str]:
    """Split caption text into sentences; good enough for one to three short spoken sentences.

    A boundary is sentence-final punctuation plus space, unless the next word is lower-case or the
    previous word is a common abbreviation ("Dr. Lee", "e.g. this").
    """
    out: list[str] = []
    for part in (p.strip() for p in _BOUNDARY.split(text)):
        if not part:
            continue
        if out and (part[0].islower() or _ABBREVIATION.search(out[-1])):
            out[-1] += " " + part
        else:
            out.append(part)
    return out


@dataclass(frozen=True)
class DecodeOptions:
    # Argos uses 4. Greedy decoding costs roughly a BLEU point and is markedly faster on small CPUs, where
    # each decoding step is bound by reading the weights (bench/translate.py).
    beam_size: int = 1
    length_ratio: float = 1.5  # output tokens allowed per input token (languages expand differently)
    length_margin: int = 8
    max_length: int = 256

    def max_decoding_length(self, input_tokens: int) -> int:
        return min(self.max_length, math.ceil(input_tokens * self.length_ratio) + self.length_margin)


class PackageEngine:
    """One package's tokenizer and CTranslate2 translator, loaded on first use (thread-safe)."""

    def __init__(
        self,
        pair: InstalledPair,
        *,
        device: str = "cpu",
        compute_type: str = "auto",
        intra_threads: int = 0,
        options: DecodeOptions | None = None,
    ) -> None:
        self.pair = pair
        self.device = device
        self.compute_type = compute_type
        self.intra_threads = intra_threads
        self.options = options or DecodeOptions()
        self._translator: Any = None
        self._lock = threading.Lock()

    @property
    def loaded(self) -> bool:
        return self._translator is not None

    def load(self) -> None:
        if self._translator is not None:
            return
        with self._lock:
            if self._translator is None:
                import ctranslate2

                argos_adapter.check_compatibility()
                argos_adapter.load_tokenizer(self.pair.package)
                self._translator = ctranslate2.Translator(
                    str(argos_adapter.model_dir(self.pair.path)),
                    device=self.device,
                    compute_type=self.compute_type,
                    inter_threads=1,
                    intra_threads=self.intra_threads,
                )

    def translate(self, text: str) -> str:
        return join_sentences(self.translate_sentences(split_sentences(text)), self.pair.to_code)

    def translate_sentences(self, sentences: list[str]) -> list[str]:
        """Translate sentences as one batch: on CPU a decoding step costs about the same for one
        sequence or several (reading the weights dominates), so a caption costs its longest sentence."""
        if not sentences:
            return []
        self.load()
        pkg = self.pair.package
        batch = [argos_adapter.encode(pkg, sentence) for sentence in sentences]
        prefix = argos_adapter.target_prefix(pkg)
        results = self._translator.translate_batch(
            batch,
            target_prefix=[[prefix]] * len(batch) if prefix else None,
            beam_size=self.options.beam_size,
            max_decoding_length=self.options.max_decoding_length(max(len(t) for t in batch)),
            **argos_adapter.ARGOS_DECODING,
        )
        out: list[str] = []
        for result in results:
            value = argos_adapter.decode(pkg, result.hypotheses[0])
            if prefix and value.startswith(prefix):
                value = value[len(prefix) :]
            out.append(value.strip())
        return out


def join_sentences(sentences: list[str], language: str) -> str:
    joiner = "" if language in _NO_SPACE_BETWEEN_SENTENCES else " "
    return joiner.join(s for s in sentences if s)
