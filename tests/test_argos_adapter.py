"""translate/argos_adapter.py: every Argos internal translate/engine.py relies on, pinned to argostranslate 1.11.0.

Each check is shown failing by changing the library the way an upgrade might (an attribute renamed, a decoding
option changed), so an upgrade that moves what the engine drives fails here rather than mid-meeting.
"""

from __future__ import annotations

import importlib.metadata
from pathlib import Path
from types import SimpleNamespace

import pytest
from argostranslate import package as argos_package
from argostranslate import tokenizer as argos_tokenizer

from translate import argos_adapter


def problems() -> str:
    with pytest.raises(argos_adapter.IncompatibleArgos) as info:
        argos_adapter.check_compatibility()
    return str(info.value)


def test_installed_argos_is_the_one_the_adapter_was_written_for() -> None:
    assert importlib.metadata.version("argostranslate") == argos_adapter.TESTED_ARGOSTRANSLATE
    assert argos_adapter.problems() == []
    argos_adapter.check_compatibility()


def test_another_argos_version_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    real = importlib.metadata.version
    monkeypatch.setattr(argos_adapter, "version", lambda name: "9.9.9" if name == "argostranslate" else real(name))
    assert "argostranslate 9.9.9 installed" in problems()


def test_a_package_that_no_longer_keeps_its_tokenizer_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    def init(self, package_path):  # type: ignore[no-untyped-def]
        self.package_path = package_path
        self.sp = argos_tokenizer.SentencePieceTokenizer(package_path / "sentencepiece.model")  # renamed

    monkeypatch.setattr(argos_package.Package, "__init__", init)
    message = problems()
    assert "Package.__init__ no longer sets .tokenizer" in message and "BPETokenizer" in message


def test_metadata_without_target_prefix_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    def load_metadata_from_json(self, metadata):  # type: ignore[no-untyped-def]
        self.from_code, self.to_code = metadata.get("from_code"), metadata.get("to_code")

    monkeypatch.setattr(argos_package.IPackage, "load_metadata_from_json", load_metadata_from_json)
    assert "target_prefix" in problems()


def test_a_tokenizer_without_decode_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delattr(argos_tokenizer.SentencePieceTokenizer, "decode")
    monkeypatch.delattr(argos_tokenizer.Tokenizer, "decode")
    assert "SentencePieceTokenizer no longer has encode() and decode()" in problems()


def test_argos_decoding_options_are_read_from_its_own_source(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A future Argos that decodes differently (another length penalty, no target prefix, another model path)."""
    changed = tmp_path / "translate.py"
    changed.write_text(
        "def apply(pkg, translator, tokenized):\n"
        "    translator = ctranslate2.Translator(str(pkg.package_path / 'ct2'))\n"
        "    return translator.translate_batch(tokenized, replace_unknowns=True, length_penalty=0.5)\n")
    real_find_spec = argos_adapter.importlib.util.find_spec

    def find_spec(name: str):  # type: ignore[no-untyped-def]
        if name == "argostranslate.translate":
            return SimpleNamespace(origin=str(changed))
        return real_find_spec(name)

    monkeypatch.setattr(argos_adapter.importlib.util, "find_spec", find_spec)
    message = problems()
    assert "length_penalty=0.2" in message and "replace_unknowns" not in message
    assert "target_prefix to translate_batch" in message
    assert "package_path / 'model'" in message
    assert "pkg.tokenizer.encode/decode" in message


def test_the_check_does_not_import_argos_translate_module() -> None:
    """Argos' translate module imports Stanza and torch (seconds, hundreds of MB): the check reads it as text."""
    import subprocess
    import sys

    probe = ("import sys\nfrom translate import argos_adapter\nargos_adapter.check_compatibility()\n"
             "assert 'argostranslate.translate' not in sys.modules and 'torch' not in sys.modules\n")
    subprocess.run([sys.executable, "-c", probe], check=True, timeout=60)


def test_the_adapter_reads_a_package_as_argos_keeps_it() -> None:
    class Tokenizer:
        def encode(self, sentence: str) -> list[str]:
            return sentence.split()

        def decode(self, tokens: list[str]) -> str:
            return " ".join(tokens)

    package = SimpleNamespace(tokenizer=Tokenizer(), target_prefix=None)
    assert argos_adapter.has_tokenizer(package) and not argos_adapter.has_tokenizer(SimpleNamespace())
    assert argos_adapter.encode(package, "hola a todos") == ["hola", "a", "todos"]
    assert argos_adapter.decode(package, ["hello", "everyone"]) == "hello everyone"
    assert argos_adapter.target_prefix(package) == ""
    assert argos_adapter.target_prefix(SimpleNamespace(target_prefix="__es__")) == "__es__"
    assert argos_adapter.model_dir(Path("/p/en_es")) == Path("/p/en_es/model")
