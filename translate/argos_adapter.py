"""Every contact point with argostranslate's internals lives here, and only here (argostranslate 1.11.0).

translate/engine.py does not call ``argostranslate.translate`` (it downloads a sentence-splitting model at
translate time and imports Stanza and torch; see its docstring). It drives the package's CTranslate2 model itself,
as Argos' own ``apply_packaged_translation`` does, which needs what Argos keeps on an installed
``argostranslate.package.Package`` and how Argos decodes:

1. ``Package.tokenizer``: the package's SentencePiece or BPE tokenizer (``encode`` a sentence to tokens,
   ``decode`` tokens to text); set by ``Package.__init__`` only when the package has one.
2. ``Package.target_prefix``: a token some multilingual models need before the translation; Argos passes it as
   CTranslate2's ``target_prefix`` and strips it from the decoded text.
3. The package layout: the CTranslate2 model is the ``model`` directory of the package.
4. Argos' decoding options: ``replace_unknowns=True`` and ``length_penalty=0.2`` (ours uses a smaller beam and
   an output length cap; see translate/engine.py).

``check_compatibility()`` (run before an engine loads its model, and in tests/test_argos_adapter.py) fails loudly,
naming every problem, if the installed argostranslate is another version or these internals moved. It reads
Argos' translate module as source: importing it would import Stanza and torch.
"""

from __future__ import annotations

import ast
import importlib.util
from importlib.metadata import version
from pathlib import Path
from typing import Any

TESTED_ARGOSTRANSLATE = "1.11.0"
ARGOS_DECODING = {"replace_unknowns": True, "length_penalty": 0.2}  # what Argos passes to translate_batch
_MODEL_DIR = "model"


class IncompatibleArgos(RuntimeError):
    """The installed argostranslate no longer has the internals this adapter relies on."""


# --- 1. the tokenizer -----------------------------------------------------------------------------------------------

def has_tokenizer(package: Any) -> bool:
    """Whether Argos found a SentencePiece or BPE tokenizer in this package (it sets none otherwise)."""
    return getattr(package, "tokenizer", None) is not None


def load_tokenizer(package: Any) -> None:
    """Load the package's tokenizer model now (Argos loads it lazily, at the first encode)."""
    package.tokenizer.encode("warm up")


def encode(package: Any, sentence: str) -> list[str]:
    """`sentence` as the package's model tokens."""
    tokens: list[str] = package.tokenizer.encode(sentence)
    return tokens


def decode(package: Any, tokens: list[str]) -> str:
    """The model's output tokens as text, the target prefix (if any) still at its start."""
    text: str = package.tokenizer.decode(tokens)
    return text


# --- 2. the target prefix -------------------------------------------------------------------------------------------

def target_prefix(package: Any) -> str:
    """The token the model needs before its translation ("" for most packages)."""
    return package.target_prefix or ""


# --- 3. the package layout ------------------------------------------------------------------------------------------

def model_dir(package_path: Path) -> Path:
    """The CTranslate2 model inside an installed package."""
    return package_path / _MODEL_DIR


# --- check ----------------------------------------------------------------------------------------------------------

def problems() -> list[str]:
    """What this adapter relies on that the installed argostranslate changed (empty if nothing)."""
    found: list[str] = []
    installed = version("argostranslate")
    if installed != TESTED_ARGOSTRANSLATE:
        found.append(f"argostranslate {installed} installed, translate/argos_adapter.py written for "
                     f"{TESTED_ARGOSTRANSLATE}")
    from argostranslate import package, tokenizer

    init_names = package.Package.__init__.__code__.co_names
    if "tokenizer" not in init_names or "package_path" not in init_names:
        found.append("argostranslate Package.__init__ no longer sets .tokenizer and .package_path")
    if "target_prefix" not in package.IPackage.load_metadata_from_json.__code__.co_names:
        found.append("argostranslate Package no longer reads target_prefix from its metadata")
    for name in ("SentencePieceTokenizer", "BPETokenizer"):
        cls = getattr(tokenizer, name, None)
        if cls is None or name not in init_names:
            found.append(f"argostranslate Package no longer builds its tokenizer as tokenizer.{name}")
        elif not all(callable(getattr(cls, method, None)) for method in ("encode", "decode")):
            found.append(f"argostranslate tokenizer.{name} no longer has encode() and decode()")
    return found + _translate_problems()


def _translate_problems() -> list[str]:
    """Argos' own translation still loads `<package>/model` and decodes as we copy it (read as source)."""
    spec = importlib.util.find_spec("argostranslate.translate")
    if spec is None or spec.origin is None:
        return ["argostranslate.translate is gone"]
    tree = ast.parse(Path(spec.origin).read_text(encoding="utf-8"))
    found: list[str] = []
    calls = [node for node in ast.walk(tree) if isinstance(node, ast.Call)
             and isinstance(node.func, ast.Attribute) and node.func.attr == "translate_batch"]
    keywords = {k.arg: k.value for call in calls for k in call.keywords}
    for name, value in ARGOS_DECODING.items():
        given = keywords.get(name)
        if not isinstance(given, ast.Constant) or given.value != value:
            found.append(f"argostranslate no longer calls translate_batch with {name}={value}")
    if "target_prefix" not in keywords:
        found.append("argostranslate no longer passes target_prefix to translate_batch")
    model_paths = [node for node in ast.walk(tree) if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Div)
                   and isinstance(node.right, ast.Constant) and node.right.value == _MODEL_DIR
                   and isinstance(node.left, ast.Attribute) and node.left.attr == "package_path"]
    if not model_paths:
        found.append(f"argostranslate no longer loads its CTranslate2 model from package_path / {_MODEL_DIR!r}")
    attributes = {node.attr for node in ast.walk(tree) if isinstance(node, ast.Attribute)}
    if not {"tokenizer", "encode", "decode", "target_prefix"} <= attributes:
        found.append("argostranslate no longer translates with pkg.tokenizer.encode/decode and pkg.target_prefix")
    return found


def check_compatibility() -> None:
    found = problems()
    if found:
        raise IncompatibleArgos("; ".join(found))
