"""Build small but *valid* Argos Translate packages (``.argosmodel``) for tests and benchmarks.

No Argos package can be downloaded here, so we make our own: a CTranslate2 Transformer filled with
random weights, a SentencePiece model trained on a few lines, and Argos' ``metadata.json``, zipped the
way the Argos index ships them (one top-level directory). The output is gibberish, but loading,
tokenisation and decoding go through exactly the same code as a real package. With real Argos
dimensions (see :data:`REAL_SIZE`) the model file is ~100 MB and gives honest speed figures.
"""

from __future__ import annotations

import json
import shutil
import tempfile
import zipfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

LANGUAGE_NAMES = {
    "en": "English",
    "es": "Spanish",
    "fr": "French",
    "de": "German",
    "it": "Italian",
    "pt": "Portuguese",
    "hi": "Hindi",
    "zh": "Chinese",
    "ja": "Japanese",
    "pl": "Polish",
    "xx": "Testish",
    "yy": "Mockese",
    "zz": "Fakish",
}

# Short support-group style lines: enough for SentencePiece to learn whole common words.
TRAINING_LINES = (
    "Thank you all for being here tonight.",
    "I want to share something that happened this week.",
    "It has been a hard few days, but I am still here.",
    "Does anyone else feel tired after talking about it?",
    "We listen without judging and we keep what is said in this room.",
    "My sister called me and we talked for an hour.",
    "I slept better on Tuesday and Wednesday.",
    "Sometimes I just need someone to hear me.",
    "Let us take a breath together before we start.",
    "I noticed that walking in the morning helps me.",
    "Can you say more about how that felt?",
    "That sounds really difficult, thank you for telling us.",
    "Next week we will meet at the same time.",
    "I was worried about coming back, but I am glad I did.",
    "The doctor changed my medication and I feel calmer.",
    "Please remember to mute when you are not speaking.",
    "Who would like to go next?",
    "I feel lonely in the evenings when the house is quiet.",
    "Writing things down has helped me more than I expected.",
    "We are going to end a few minutes early today.",
)


@dataclass(frozen=True)
class ModelDims:
    """Transformer shape. Argos' OpenNMT models are pre-norm base Transformers."""

    encoder_layers: int = 2
    decoder_layers: int = 2
    d_model: int = 64
    heads: int = 4
    ffn: int = 128
    # Total CTranslate2 vocabulary; padded with filler pieces beyond what SentencePiece learnt.
    vocab_size: int | None = None
    sp_vocab_size: int = 200
    # BPE over TRAINING_LINES: 350 pieces give ~1.3 tokens per word, like real Argos vocabularies.
    sp_model_type: str = "bpe"
    quantization: str | None = "int8"


TINY = ModelDims()
# A real Argos package: 6+6 layers, d_model 512, FFN 2048, ~32k vocabulary, int8 -> model.bin ~100 MB.
REAL_SIZE = ModelDims(
    encoder_layers=6, decoder_layers=6, d_model=512, heads=8, ffn=2048, vocab_size=32000, sp_vocab_size=350
)


def train_sentencepiece(out_prefix: Path, lines: Iterable[str], vocab_size: int, model_type: str = "bpe") -> Path:
    import sentencepiece as spm

    corpus = out_prefix.with_suffix(".txt")
    corpus.write_text("\n".join(lines) + "\n", encoding="utf-8")
    spm.SentencePieceTrainer.train(
        input=str(corpus),
        model_prefix=str(out_prefix),
        vocab_size=vocab_size,
        model_type=model_type,
        character_coverage=1.0,
        hard_vocab_limit=False,
        num_threads=1,
        minloglevel=2,
    )
    corpus.unlink()
    return out_prefix.with_suffix(".model")


def _sp_pieces(sp_model: Path) -> list[str]:
    import sentencepiece as spm

    processor = spm.SentencePieceProcessor(model_file=str(sp_model))
    return [processor.id_to_piece(i) for i in range(processor.get_piece_size())]


def _weight_shape(name: str, dims: ModelDims, src_vocab: int, tgt_vocab: int) -> tuple[int, ...]:
    d = dims.d_model
    attr = name.rsplit("/", 1)[-1]
    scope = name.rsplit("/", 2)[-2] if name.count("/") >= 1 else ""
    if "layer_norm" in name or attr in ("gamma", "beta"):
        return (d,)
    if "embeddings" in name:
        return (src_vocab if name.startswith("encoder") else tgt_vocab, d)
    if "projection" in name:
        return (tgt_vocab, d) if attr == "weight" else (tgt_vocab,)
    if "/ffn/" in name:
        if scope == "linear_0":
            return (dims.ffn, d) if attr == "weight" else (dims.ffn,)
        return (d, dims.ffn) if attr == "weight" else (d,)
    if "self_attention" in name:
        if scope == "linear_0":  # fused query/key/value
            return (3 * d, d) if attr == "weight" else (3 * d,)
        return (d, d) if attr == "weight" else (d,)
    if "/attention/" in name:
        if scope == "linear_1":  # fused key/value over the encoder output
            return (2 * d, d) if attr == "weight" else (2 * d,)
        return (d, d) if attr == "weight" else (d,)
    raise ValueError(f"unexpected variable in Transformer spec: {name}")


def build_ct2_model(out_dir: Path, vocabulary: Sequence[str], dims: ModelDims, seed: int = 0) -> Path:
    """Save a random-weight CTranslate2 Transformer with the given (shared) vocabulary."""
    from ctranslate2.specs import model_spec, transformer_spec

    spec = transformer_spec.TransformerSpec.from_config(
        (dims.encoder_layers, dims.decoder_layers), dims.heads, pre_norm=True
    )
    rng = np.random.default_rng(seed)
    n_vocab = len(vocabulary)
    scale = 1.0 / np.sqrt(dims.d_model)

    def fill(layer: object, name: str, value: object) -> None:
        if value is not None:
            return  # flags, OPTIONAL placeholders, already-set values
        shape = _weight_shape(name, dims, n_vocab, n_vocab)
        attr = name.rsplit("/", 1)[-1]
        if attr == "gamma":
            array = np.ones(shape, dtype=np.float32)
        elif attr == "beta":
            array = np.zeros(shape, dtype=np.float32)
        else:
            array = (rng.standard_normal(shape, dtype=np.float32) * scale).astype(np.float32)
        setattr(layer, attr, array)

    model_spec.visit_spec(spec, fill)

    # OpenNMT models carry biases on every linear layer; set them for an honest compute profile.
    def fill_bias(layer: Any, name: str, value: object) -> None:
        if name.endswith("/bias") and value == model_spec.OPTIONAL:
            layer.bias = np.zeros(_weight_shape(name, dims, n_vocab, n_vocab), np.float32)

    model_spec.visit_spec(spec, fill_bias)
    spec.register_source_vocabulary(list(vocabulary))
    spec.register_target_vocabulary(list(vocabulary))
    spec.validate()
    spec.optimize(quantization=dims.quantization)
    out_dir.mkdir(parents=True, exist_ok=True)
    spec.save(str(out_dir))
    return out_dir


def metadata_for(from_code: str, to_code: str, version: str = "1.0") -> dict[str, object]:
    return {
        "package_version": version,
        "argos_version": "1.0",
        "from_code": from_code,
        "from_name": LANGUAGE_NAMES.get(from_code, from_code),
        "to_code": to_code,
        "to_name": LANGUAGE_NAMES.get(to_code, to_code),
        "type": "translate",
    }


def package_dirname(from_code: str, to_code: str, version: str = "1.0") -> str:
    return f"translate-{from_code}_{to_code}-{version.replace('.', '_')}"


def build_argos_package(
    out_dir: Path,
    from_code: str = "xx",
    to_code: str = "en",
    dims: ModelDims = TINY,
    *,
    version: str = "1.0",
    seed: int = 0,
    lines: Sequence[str] = TRAINING_LINES,
) -> Path:
    """Build ``translate-<from>_<to>-<version>.argosmodel`` in ``out_dir`` and return its path."""
    out_dir.mkdir(parents=True, exist_ok=True)
    name = package_dirname(from_code, to_code, version)
    with tempfile.TemporaryDirectory(prefix="argos-build-") as tmp:
        root = Path(tmp) / name
        root.mkdir()
        sp_model = train_sentencepiece(Path(tmp) / "sp", lines, dims.sp_vocab_size, dims.sp_model_type)
        shutil.move(sp_model, root / "sentencepiece.model")
        vocabulary = _sp_pieces(root / "sentencepiece.model")
        if dims.vocab_size and dims.vocab_size > len(vocabulary):
            # Filler pieces bring the embedding/projection matrices up to a real vocabulary size.
            vocabulary += [f"▁w{i}" for i in range(dims.vocab_size - len(vocabulary))]
        build_ct2_model(root / "model", vocabulary, dims, seed=seed)
        (root / "metadata.json").write_text(json.dumps(metadata_for(from_code, to_code, version), indent=2))
        readme = f"Random-weight test package {from_code}->{to_code}: gibberish output.\n"
        (root / "README.md").write_text(readme)
        target = out_dir / f"{name}.argosmodel"
        with zipfile.ZipFile(target, "w", compression=zipfile.ZIP_STORED) as archive:
            for path in sorted(root.rglob("*")):
                archive.write(path, path.relative_to(tmp))
    return target


def build_many(out_dir: Path, pairs: Iterable[tuple[str, str]], dims: ModelDims = TINY) -> dict[str, Path]:
    """One package per ``(from, to)`` pair, keyed ``"from:to"``."""
    return {f"{a}:{b}": build_argos_package(out_dir, a, b, dims, seed=i) for i, (a, b) in enumerate(pairs)}


_SESSION_DIR: tempfile.TemporaryDirectory[str] | None = None
_BUILT: dict[tuple[str, str, ModelDims], Path] = {}


def cached_package(from_code: str, to_code: str, dims: ModelDims = TINY) -> Path:
    """Build each package once per test process (several test modules share them)."""
    global _SESSION_DIR
    key = (from_code, to_code, dims)
    if key not in _BUILT:
        if _SESSION_DIR is None:
            _SESSION_DIR = tempfile.TemporaryDirectory(prefix="peerwell-argos-test-")
        seed = len(_BUILT)
        _BUILT[key] = build_argos_package(Path(_SESSION_DIR.name) / str(seed), from_code, to_code, dims, seed=seed)
    return _BUILT[key]
