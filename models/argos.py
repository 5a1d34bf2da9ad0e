"""Installed Argos Translate packages: validate, install, list and remove them.

Packages live where Argos looks for them: ``ARGOS_PACKAGES_DIR`` (or the same key in Argos'
settings.json), else ``$XDG_DATA_HOME/argos-translate/packages``. argostranslate.settings reads those once,
when first imported, so a process sees the directory its environment had at start-up.

Installing does what ``argostranslate.package.install_from_path`` does (unzip into the packages
directory, under Argos' package lock) but validates first and swaps the directory in atomically. We do
not call install_from_path itself: it imports ``argostranslate.translate``, which imports Stanza and
torch (seconds), and with ``ARGOS_CHUNK_TYPE=SPACY`` downloads a spaCy model at import time; it also
unpacks over a previous version in place, so a failed upgrade leaves a mixed directory.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import shutil
import tempfile
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

_CODE = re.compile(r"^[A-Za-z]{2,3}(?:[-_][A-Za-z0-9]{2,8})?$")


class ModelError(Exception):
    """A user-facing, one-line problem (bad file, missing pair, no network). The CLI exits with 2."""


class InvalidPackage(ModelError):
    pass


@dataclass(frozen=True)
class PackageMetadata:
    from_code: str
    to_code: str
    from_name: str
    to_name: str
    version: str
    argos_version: str
    root: str  # the single top-level directory inside the .argosmodel zip

    @property
    def pair(self) -> str:
        return f"{self.from_code}:{self.to_code}"


@dataclass(frozen=True)
class InstalledArgosModel:
    name: str
    from_code: str
    to_code: str
    from_name: str
    to_name: str
    version: str
    path: Path
    size_bytes: int
    sha256: str  # of model/model.bin, the file that matters ("" when not computed)

    @property
    def pair(self) -> str:
        return f"{self.from_code}:{self.to_code}"


def parse_pair(text: str) -> tuple[str, str]:
    """``"en:es"`` -> ``("en", "es")``."""
    parts = text.split(":")
    if len(parts) != 2 or not all(_CODE.match(p) for p in parts) or parts[0] == parts[1]:
        raise ModelError(f"not a language pair: {text!r} (expected two language codes like en:es)")
    return parts[0], parts[1]


def packages_dir() -> Path:
    """Where new packages are installed (Argos' ``package_data_dir``)."""
    from argostranslate import settings

    return Path(settings.package_data_dir)


def package_dirs() -> list[Path]:
    """Every directory Argos reads packages from (the install dir, plus Snap bundles)."""
    from argostranslate import settings

    return [Path(p) for p in settings.package_dirs]


@contextlib.contextmanager
def _argos_lock() -> Iterator[None]:
    # Argos holds this lock while it installs or lists; share it when Argos runs in the same process.
    from argostranslate.package import package_lock

    with package_lock:
        yield


# -- validation -----------------------------------------------------------------------------------


def _metadata_from(data: Any, where: str) -> dict[str, Any]:
    if not isinstance(data, dict):
        raise InvalidPackage(f"{where}: metadata.json is not a JSON object")
    for key in ("from_code", "to_code"):
        value = data.get(key)
        if not isinstance(value, str) or not _CODE.match(value):
            raise InvalidPackage(f"{where}: metadata.json has no valid {key!r}")
    if data.get("type", "translate") != "translate":
        raise InvalidPackage(f"{where}: not a translation package (type {data.get('type')!r})")
    return data


def validate_archive(path: Path) -> PackageMetadata:
    """Check that ``path`` is an Argos translate package, without extracting it."""
    path = Path(path)
    where = path.name
    if not path.is_file():
        raise InvalidPackage(f"{path}: no such file")
    if not zipfile.is_zipfile(path):
        raise InvalidPackage(f"{where}: not an Argos package (not a zip archive)")
    try:
        with zipfile.ZipFile(path) as archive:
            names = [info.filename for info in archive.infolist()]
            roots = set()
            for name in names:
                parts = PurePosixPath(name).parts
                if not parts or name.startswith("/") or ".." in parts or "\\" in name:
                    raise InvalidPackage(f"{where}: unsafe path in archive: {name!r}")
                roots.add(parts[0])
            if len(roots) != 1:
                raise InvalidPackage(f"{where}: expected one top-level directory, found {len(roots)}")
            root = roots.pop()
            members = set(names)
            if f"{root}/metadata.json" not in members:
                raise InvalidPackage(f"{where}: missing metadata.json")
            if f"{root}/model/model.bin" not in members:
                raise InvalidPackage(f"{where}: missing model/model.bin (the CTranslate2 model)")
            if not {f"{root}/sentencepiece.model", f"{root}/bpe.model"} & members:
                raise InvalidPackage(f"{where}: missing sentencepiece.model")
            bad = archive.testzip()
            if bad is not None:
                raise InvalidPackage(f"{where}: corrupt archive member {bad}")
            try:
                meta = json.loads(archive.read(f"{root}/metadata.json"))
            except (ValueError, UnicodeDecodeError) as exc:
                raise InvalidPackage(f"{where}: metadata.json is not valid JSON ({exc})") from None
    except (zipfile.BadZipFile, OSError, EOFError) as exc:
        raise InvalidPackage(f"{where}: unreadable archive ({exc})") from None
    data = _metadata_from(meta, where)
    return PackageMetadata(
        from_code=data["from_code"],
        to_code=data["to_code"],
        from_name=str(data.get("from_name") or data["from_code"]),
        to_name=str(data.get("to_name") or data["to_code"]),
        version=str(data.get("package_version", "")),
        argos_version=str(data.get("argos_version", "")),
        root=root,
    )


def check_loads(package_dir: Path) -> None:
    """Load the tokenizer and the CTranslate2 model once: catches truncated or foreign files."""
    import ctranslate2
    import sentencepiece

    sp_model = package_dir / "sentencepiece.model"
    if sp_model.exists():
        try:
            sentencepiece.SentencePieceProcessor(model_file=str(sp_model))
        except Exception as exc:
            raise InvalidPackage(f"{package_dir.name}: sentencepiece.model does not load ({exc})") from None
    try:
        ctranslate2.Translator(str(package_dir / "model"), device="cpu", compute_type="auto", intra_threads=1)
    except Exception as exc:
        message = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise InvalidPackage(f"{package_dir.name}: the model does not load ({message})") from None


# -- install / list / remove ----------------------------------------------------------------------


def _staging_parent(dest: Path) -> Path:
    # Same filesystem as dest (atomic rename) but outside it, so readers never see half a package.
    parent = dest.parent
    return parent if os.access(parent, os.W_OK) else dest


def install_package_file(path: Path, dest: Path | None = None) -> InstalledArgosModel:
    """Validate ``path`` (.argosmodel) and install it, replacing any installed package of the same pair."""
    meta = validate_archive(path)
    dest = dest or packages_dir()
    dest.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".argos-staging-", dir=_staging_parent(dest)))
    try:
        with zipfile.ZipFile(path) as archive:
            archive.extractall(staging)
        new_dir = staging / meta.root
        check_loads(new_dir)
        target = dest / meta.root
        with _argos_lock():
            old = [
                m.path for m in installed_packages([dest]) if (m.from_code, m.to_code) == (meta.from_code, meta.to_code)
            ]
            if target.exists() and target not in old:
                old.append(target)
            for i, previous in enumerate(old):
                previous.rename(staging / f"old-{i}")  # moved aside, deleted with staging
            new_dir.rename(target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return describe(target)


def describe(package_dir: Path, *, checksum: bool = True) -> InstalledArgosModel:
    meta = json.loads((package_dir / "metadata.json").read_text())
    size = sum(p.stat().st_size for p in package_dir.rglob("*") if p.is_file())
    return InstalledArgosModel(
        name=package_dir.name,
        from_code=meta.get("from_code", "?"),
        to_code=meta.get("to_code", "?"),
        from_name=meta.get("from_name", ""),
        to_name=meta.get("to_name", ""),
        version=str(meta.get("package_version", "")),
        path=package_dir,
        size_bytes=size,
        sha256=sha256_file(package_dir / "model" / "model.bin") if checksum else "",
    )


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def installed_packages(dirs: list[Path] | None = None, *, checksums: bool = False) -> list[InstalledArgosModel]:
    """Installed translate packages (directories that are not packages are ignored).

    ``checksums`` hashes every model.bin (~0.3 s per 100 MB), for ``peerwell models list``.
    """
    found: list[InstalledArgosModel] = []
    for directory in dirs if dirs is not None else package_dirs():
        if not directory.is_dir():
            continue
        for path in sorted(directory.iterdir()):
            if path.name.startswith(".") or not (path / "metadata.json").is_file():
                continue
            if not (path / "model" / "model.bin").is_file():
                continue
            try:
                model = describe(path, checksum=checksums)
            except (OSError, ValueError):
                continue
            found.append(model)
    return found


def remove_package(pair: str, dest: Path | None = None) -> list[Path]:
    """Remove every installed package for ``pair`` (``"xx:yy"``) from the install directory."""
    src, tgt = parse_pair(pair)
    dest = dest or packages_dir()
    with _argos_lock():
        doomed = [m.path for m in installed_packages([dest]) if (m.from_code, m.to_code) == (src, tgt)]
        if not doomed:
            raise ModelError(f"no installed package for {src}:{tgt} in {dest}")
        for path in doomed:
            shutil.rmtree(path)
    return doomed
