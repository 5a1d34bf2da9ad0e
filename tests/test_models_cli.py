"""`peerwell models` end to end: a local Argos-format index on 127.0.0.1, real packages, real installs.

The CLI runs in subprocesses because argostranslate.settings reads HOME/XDG/ARGOS_* once, at import:
each run gets its own temporary directories and never touches the real user's.
"""

from __future__ import annotations

import argparse
import functools
import hashlib
import http.server
import json
import os
import shutil
import socket
import subprocess
import sys
import threading
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from models.cli import add_models_subparsers, run_models_command
from tests.support.argos_package import cached_package, metadata_for, package_dirname
from translate.service import TranslationService

REPO = Path(__file__).resolve().parents[1]


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def mirror(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    """An Argos index mirror served over HTTP on 127.0.0.1: (base URL, directory)."""
    root = tmp_path_factory.mktemp("mirror")
    for src, tgt in (("xx", "en"), ("en", "yy")):
        shutil.copy(cached_package(src, tgt), root)
    handler = functools.partial(QuietHandler, directory=str(root))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    base = f"http://127.0.0.1:{server.server_address[1]}/"
    xx_en = root / f"{package_dirname('xx', 'en')}.argosmodel"
    en_yy = root / f"{package_dirname('en', 'yy')}.argosmodel"
    index = [
        # Relative link and a checksum, as an air-gapped mirror would publish.
        {**metadata_for("xx", "en"), "links": [xx_en.name], "sha256": sha256(xx_en)},
        # Absolute link, no checksum, like the public index.
        {**metadata_for("en", "yy"), "links": [base + en_yy.name]},
        # Wrong checksum: must never be installed.
        {**metadata_for("en", "zz"), "links": [base + en_yy.name], "sha256": "0" * 64},
        # Dead link.
        {**metadata_for("fr", "en"), "links": [base + "missing.argosmodel"]},
    ]
    (root / "index.json").write_text(json.dumps(index))
    yield base, root
    server.shutdown()
    server.server_close()


class QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("ARGOS_")}
    return {
        **clean,
        "HOME": str(tmp_path / "home"),
        "XDG_DATA_HOME": str(tmp_path / "data"),
        "XDG_CONFIG_HOME": str(tmp_path / "config"),
        "XDG_CACHE_HOME": str(tmp_path / "cache"),
        "ARGOS_PACKAGES_DIR": str(tmp_path / "packages"),
        "PYTHONPATH": str(REPO),
    }


def cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "models.cli", *args], cwd=REPO, env=env, capture_output=True, text=True, timeout=120
    )


def assert_clean_error(done: subprocess.CompletedProcess[str], *needles: str) -> None:
    assert done.returncode == 2, (done.stdout, done.stderr)
    assert "Traceback" not in done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("peerwell models: error: "), done.stderr
    for needle in needles:
        assert needle in lines[0]


def installed_dirs(env: dict[str, str]) -> list[str]:
    packages = Path(env["ARGOS_PACKAGES_DIR"])
    return sorted(p.name for p in packages.iterdir()) if packages.exists() else []


def test_install_list_remove_from_index(mirror: tuple[str, Path], env: dict[str, str]) -> None:
    base, _ = mirror
    done = cli(env, "install", "xx:en", "--index-url", base + "index.json")
    assert done.returncode == 0, done.stderr
    assert "installed xx:en" in done.stdout
    assert installed_dirs(env) == ["translate-xx_en-1_0"]
    model_bin = Path(env["ARGOS_PACKAGES_DIR"]) / "translate-xx_en-1_0" / "model" / "model.bin"

    listing = cli(env, "list")
    assert listing.returncode == 0, listing.stderr
    assert "xx:en" in listing.stdout and sha256(model_bin) in listing.stdout
    assert str(model_bin.parents[1]) in listing.stdout
    assert "Whisper models:" in listing.stdout

    again = cli(env, "install", "xx:en", "--index-url", base + "index.json")
    assert again.returncode == 0 and "already installed" in again.stdout

    removed = cli(env, "remove", "xx:en")
    assert removed.returncode == 0 and "removed xx:en" in removed.stdout
    assert installed_dirs(env) == []
    assert "xx:en" not in cli(env, "list").stdout
    assert_clean_error(cli(env, "remove", "xx:en"), "no installed package for xx:en")


def test_install_pivots_through_english_and_translates(mirror: tuple[str, Path], env: dict[str, str]) -> None:
    base, _ = mirror
    env["ARGOS_PACKAGE_INDEX"] = base  # Argos' variable: a base URL, index.json is appended
    offered = cli(env, "available")
    assert offered.returncode == 0, offered.stderr
    assert "xx:en" in offered.stdout and "en:yy" in offered.stdout

    done = cli(env, "install", "xx:yy")
    assert done.returncode == 0, done.stderr
    assert "pivots through English" in done.stdout
    assert installed_dirs(env) == ["translate-en_yy-1_0", "translate-xx_en-1_0"]
    service = TranslationService([Path(env["ARGOS_PACKAGES_DIR"])])
    try:
        assert service.translate_sync("Thank you all.", "xx", "yy").route == ("xx", "en", "yy")
    finally:
        service.close()


def test_mirror_directory_as_index(mirror: tuple[str, Path], env: dict[str, str]) -> None:
    """An air-gapped site can point the index at a copied directory (file:// links, relative links)."""
    _, root = mirror
    done = cli(env, "install", "xx:en", "--index-url", str(root))
    assert done.returncode == 0, done.stderr
    assert installed_dirs(env) == ["translate-xx_en-1_0"]


def test_offline_install_from_file(env: dict[str, str]) -> None:
    done = cli(env, "install", str(cached_package("en", "es")))
    assert done.returncode == 0, done.stderr
    assert installed_dirs(env) == ["translate-en_es-1_0"]


def _zip_dir(src: Path, target: Path) -> Path:
    with zipfile.ZipFile(target, "w") as archive:
        for path in sorted(src.rglob("*")):
            archive.write(path, path.relative_to(src.parent))
    return target


def test_bad_files_are_rejected(env: dict[str, str], tmp_path: Path) -> None:
    not_zip = tmp_path / "notes.argosmodel"
    not_zip.write_text("hello")
    assert_clean_error(cli(env, "install", str(not_zip)), "not a zip archive")

    # A package whose zip is fine but whose model is garbage: structure checks pass, loading fails.
    unpacked = tmp_path / "unpacked"
    with zipfile.ZipFile(cached_package("en", "es")) as archive:
        archive.extractall(unpacked)
    pkg = unpacked / package_dirname("en", "es")
    (pkg / "model" / "model.bin").write_bytes(b"\0" * 1000)
    assert_clean_error(
        cli(env, "install", str(_zip_dir(pkg, tmp_path / "broken.argosmodel"))), "the model does not load"
    )

    (pkg / "sentencepiece.model").unlink()
    assert_clean_error(
        cli(env, "install", str(_zip_dir(pkg, tmp_path / "no-sp.argosmodel"))), "missing sentencepiece.model"
    )
    assert_clean_error(cli(env, "install", str(tmp_path / "absent.argosmodel")), "no such file")
    assert installed_dirs(env) == []


def test_index_errors(mirror: tuple[str, Path], env: dict[str, str]) -> None:
    base, _ = mirror
    index = base + "index.json"
    assert_clean_error(cli(env, "install", "qq:zz", "--index-url", index), "no qq:zz package")
    assert_clean_error(cli(env, "install", "en:zz", "--index-url", index), "checksum mismatch")
    assert_clean_error(cli(env, "install", "fr:en", "--index-url", index), "cannot download fr:en", "404")
    assert_clean_error(cli(env, "install", "english-spanish", "--index-url", index), "not a language pair")
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        closed = sock.getsockname()[1]
    assert_clean_error(
        cli(env, "available", "--index-url", f"http://127.0.0.1:{closed}/index.json"),
        "cannot reach the package index",
        "refused",
    )
    assert installed_dirs(env) == []


def test_parser_plugs_into_the_main_cli() -> None:
    main = argparse.ArgumentParser(prog="peerwell")
    add_models_subparsers(main.add_subparsers(dest="command"))
    args = main.parse_args(["models", "install", "en:es", "--index-url", "http://127.0.0.1:1/"])
    assert (args.command, args.models_command, args.target) == ("models", "install", "en:es")
    bad = main.parse_args(["models", "remove", "en-es"])
    assert run_models_command(bad) == 2
