"""TranslationService on real (random-weight) Argos packages: loading, caching, pivoting, no network."""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from models.argos import install_package_file
from tests.support.argos_package import cached_package
from translate.engine import PackageEngine, split_sentences
from translate.errors import NoTranslationModel, TranslationBusy
from translate.service import TranslationService

REPO = Path(__file__).resolve().parents[1]
CAPTION = "Thank you all for being here tonight."



@pytest.fixture
def no_network(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Record (and refuse) every attempt to resolve a name or open a connection."""
    attempts: list[str] = []

    def refuse(name: str):
        def guard(*args, **kwargs):
            attempts.append(f"{name}{args[1:] if name.startswith('socket.') else args}")
            raise OSError(f"network access attempted during a translation test: {name}")

        return guard

    monkeypatch.setattr(socket.socket, "connect", refuse("socket.connect"))
    monkeypatch.setattr(socket.socket, "connect_ex", refuse("socket.connect_ex"))
    monkeypatch.setattr(socket, "create_connection", refuse("create_connection"))
    monkeypatch.setattr(socket, "getaddrinfo", refuse("getaddrinfo"))
    return attempts


async def test_translates_and_caches_repeated_phrases(service: TranslationService) -> None:
    assert service.languages() == {"en": "English", "es": "Spanish", "xx": "Testish", "yy": "Mockese"}
    first = await service.translate_result(CAPTION, "en", "es")
    assert isinstance(first.text, str) and not first.cached and first.route == ("en", "es")
    again = await service.translate_result("  Thank you all for   being here tonight. ", "en", "es")
    assert again.cached and again.text == first.text  # same phrase after whitespace normalisation
    assert service.stats.model_runs == 1 and service.stats.cache_hits == 1 and service.stats.requests == 2
    assert await service.translate("", "en", "es") == ""
    assert await service.translate(CAPTION, "en", "en") == CAPTION


async def test_missing_pair_is_a_clear_error(service: TranslationService) -> None:
    with pytest.raises(NoTranslationModel, match=r"no model for es->xx") as info:
        await service.translate("hola", "es", "xx")
    assert (info.value.source, info.value.target) == ("es", "xx")
    assert "es:en and en:xx" in str(info.value)
    with pytest.raises(NoTranslationModel, match="no model for fr->es"):
        service.route("fr", "es")


async def test_pivots_through_english_and_reuses_the_english_hop(service: TranslationService) -> None:
    assert service.route("xx", "yy") == ("xx", "en", "yy")
    result = await service.translate_result(CAPTION, "xx", "yy")
    assert result.route == ("xx", "en", "yy") and not result.cached
    assert service.stats.model_runs == 2
    to_es = await service.translate_result(CAPTION, "xx", "es")
    assert to_es.route == ("xx", "en", "es")
    assert service.stats.model_runs == 3  # xx->en came from the cache


def test_reachable_targets(service: TranslationService) -> None:
    assert service.reachable_targets(["xx"]) == ["en", "es", "yy"]
    assert service.reachable_targets(["en"]) == ["es", "yy"]
    assert service.reachable_targets(["es"]) == []
    coverage = service.coverage(["xx", "en"])
    assert coverage["es"] == {"xx", "en"} and coverage["en"] == {"xx"}


async def test_no_network_access_while_translating(argos_dir: Path, no_network: list[str]) -> None:
    svc = TranslationService([argos_dir])  # discover, load and translate all inside the guard
    try:
        await svc.translate("I slept better on Tuesday. Who would like to go next?", "xx", "yy")
        await svc.translate("Sometimes I just need someone to hear me.", "en", "es")
    finally:
        svc.close()
    assert no_network == []
    with pytest.raises(OSError):  # the guard itself works
        socket.create_connection(("127.0.0.1", 9))
    assert len(no_network) == 1


async def test_translation_runs_off_the_event_loop(
    service: TranslationService, monkeypatch: pytest.MonkeyPatch
) -> None:
    threads: list[str] = []
    original = PackageEngine.translate_sentences

    def spy(self: PackageEngine, sentences: list[str]) -> list[str]:
        threads.append(threading.current_thread().name)
        return original(self, sentences)

    monkeypatch.setattr(PackageEngine, "translate_sentences", spy)
    await service.translate("Writing things down has helped me.", "en", "yy")
    assert threads and all(name.startswith("translate") for name in threads)
    assert threading.current_thread() is threading.main_thread()


async def test_sentences_are_cached_one_by_one(
    service: TranslationService, monkeypatch: pytest.MonkeyPatch
) -> None:
    sent_to_model: list[list[str]] = []
    original = PackageEngine.translate_sentences

    def spy(self: PackageEngine, sentences: list[str]) -> list[str]:
        sent_to_model.append(list(sentences))
        return original(self, sentences)

    monkeypatch.setattr(PackageEngine, "translate_sentences", spy)
    await service.translate_result("I slept better on Tuesday.", "en", "es")
    final = await service.translate_result("I slept better on Tuesday. And then my sister called.", "en", "es")
    assert sent_to_model == [["I slept better on Tuesday."], ["And then my sister called."]]
    assert not final.cached
    again = await service.translate_result("And then my sister called. Thank you.", "en", "es")
    assert sent_to_model[-1] == ["Thank you."] and not again.cached
    assert (await service.translate_result("Thank you.", "en", "es")).cached


async def test_queue_is_bounded(argos_dir: Path) -> None:
    svc = TranslationService([argos_dir], max_pending=1)
    try:
        results = await asyncio.gather(
            *(svc.translate(f"Who would like to go next {i}?", "en", "es") for i in range(3)), return_exceptions=True
        )
    finally:
        svc.close()
    assert isinstance(results[0], str)
    assert all(isinstance(r, TranslationBusy) for r in results[1:])
    assert svc.stats.busy_rejections == 2


def test_reload_sees_newly_installed_packages(tmp_path: Path) -> None:
    svc = TranslationService([tmp_path])
    try:
        assert svc.languages() == {} and not svc.can_translate("en", "es")
        install_package_file(cached_package("en", "es"), dest=tmp_path)
        svc.reload()
        assert svc.can_translate("en", "es")
        assert svc.translate_sync(CAPTION, "en", "es").route == ("en", "es")
    finally:
        svc.close()


def test_sentence_split_for_captions() -> None:
    assert split_sentences("Yes. I agree!  Do you?") == ["Yes.", "I agree!", "Do you?"]
    assert split_sentences("  ") == []
    assert split_sentences("e.g. this stays one") == ["e.g. this stays one"]


def test_translating_never_imports_argos_sentence_splitting(argos_dir: Path, tmp_path: Path) -> None:
    """argostranslate.translate pulls MiniSBD/Stanza (downloads) and torch: the service must not."""
    script = (
        "import sys\n"
        "from translate.service import TranslationService\n"
        f"svc = TranslationService([{str(argos_dir)!r}])\n"
        f"print(svc.translate_sync({CAPTION!r}, 'xx', 'yy').text != None)\n"
        "heavy = ('argostranslate.translate', 'argostranslate.sbd', 'stanza', 'minisbd', 'torch', 'spacy')\n"
        "print(sorted(m for m in heavy if m in sys.modules))\n"
    )
    env = {
        **os.environ,
        "HOME": str(tmp_path),
        "XDG_DATA_HOME": str(tmp_path / "data"),
        "XDG_CONFIG_HOME": str(tmp_path / "config"),
        "XDG_CACHE_HOME": str(tmp_path / "cache"),
        "PYTHONPATH": str(REPO),
    }
    done = subprocess.run(
        [sys.executable, "-c", script], cwd=REPO, env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split("\n")[:2] == ["True", "[]"]
