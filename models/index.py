"""The Argos package index (argospm-index format): fetch it, pick packages, download them.

The index is a JSON list of package metadata objects with ``links`` (download URLs). Its location is
``--index-url``, else ``ARGOS_PACKAGE_INDEX`` (environment or Argos' settings.json; Argos treats it as a
base URL and appends ``index.json``), else the public index. An air-gapped site can mirror the index and
the ``.argosmodel`` files on any HTTP server or directory: links may be absolute, or relative to the
index URL, and ``file://`` URLs work. An entry may carry ``"sha256"`` (or ``"checksum": "sha256:..."``),
which is then verified; the public index has none, so downloads are also checked as valid packages.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import socket
import sys
import urllib.error
import urllib.request
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any
from urllib.parse import urljoin, urlparse

from models.argos import ModelError

DEFAULT_INDEX_URL = "https://raw.githubusercontent.com/argosopentech/argospm-index/main/index.json"
PIVOT = "en"
USER_AGENT = "peerwell-models/1 (ArgosTranslate compatible)"
CHUNK = 1 << 16


@dataclass(frozen=True)
class IndexEntry:
    from_code: str
    to_code: str
    from_name: str
    to_name: str
    version: str
    links: tuple[str, ...]
    sha256: str | None = None
    size: int | None = None

    @property
    def pair(self) -> str:
        return f"{self.from_code}:{self.to_code}"


def resolve_index_url(override: str | None = None) -> str:
    """The index.json URL: flag, then ARGOS_PACKAGE_INDEX (env or Argos settings.json), then public."""
    configured = override or os.environ.get("ARGOS_PACKAGE_INDEX")
    if not configured:
        try:
            from argostranslate import settings

            configured = settings.get_setting("ARGOS_PACKAGE_INDEX")
        except Exception:  # Argos' settings are optional here
            configured = None
    if not configured:
        return DEFAULT_INDEX_URL
    if "://" not in configured:  # a path: a mirrored index (file or directory) on disk
        configured = Path(configured).expanduser().resolve().as_uri()
    if configured.endswith(".json"):
        return configured
    return configured.rstrip("/") + "/index.json"


def _open(url: str, timeout: float) -> IO[bytes]:
    request = urllib.request.Request(url, headers={"User-Agent": USER_AGENT})
    return urllib.request.urlopen(request, timeout=timeout)


def _reason(exc: BaseException) -> str:
    if isinstance(exc, urllib.error.HTTPError):
        return f"HTTP {exc.code} {exc.reason}"
    if isinstance(exc, urllib.error.URLError):
        reason = exc.reason
        return str(reason.strerror if isinstance(reason, OSError) and reason.strerror else reason)
    if isinstance(exc, TimeoutError | socket.timeout):
        return "timed out"
    return str(exc) or type(exc).__name__


def _parse_sha256(raw: dict[str, Any]) -> str | None:
    value = raw.get("sha256") or raw.get("checksum")
    if not isinstance(value, str):
        return None
    value = value.strip().lower()
    if value.startswith("sha256:"):
        value = value[len("sha256:") :]
    elif ":" in value:
        return None  # another algorithm: nothing we can verify
    return value if len(value) == 64 and all(c in "0123456789abcdef" for c in value) else None


def parse_index(data: Any, base_url: str) -> list[IndexEntry]:
    if not isinstance(data, list):
        raise ModelError(f"{base_url} is not an Argos package index (expected a JSON list)")
    entries = []
    for raw in data:
        if not isinstance(raw, dict) or raw.get("type", "translate") != "translate":
            continue
        src, tgt = raw.get("from_code"), raw.get("to_code")
        links = raw.get("links") or []
        if not isinstance(src, str) or not isinstance(tgt, str) or not isinstance(links, list):
            continue
        size = raw.get("size")
        entries.append(
            IndexEntry(
                from_code=src,
                to_code=tgt,
                from_name=str(raw.get("from_name") or src),
                to_name=str(raw.get("to_name") or tgt),
                version=str(raw.get("package_version", "")),
                links=tuple(urljoin(base_url, str(link)) for link in links if link),
                sha256=_parse_sha256(raw),
                size=size if isinstance(size, int) else None,
            )
        )
    return entries


def fetch_index(url: str, timeout: float = 30.0) -> list[IndexEntry]:
    try:
        with _open(url, timeout) as response:
            body = response.read()
    except (urllib.error.URLError, OSError, ValueError) as exc:
        raise ModelError(f"cannot reach the package index {url}: {_reason(exc)}") from None
    try:
        data = json.loads(body)
    except ValueError:
        raise ModelError(f"{url} is not an Argos package index (not JSON)") from None
    return parse_index(data, url)


def _version_key(entry: IndexEntry) -> tuple[int, ...]:
    return tuple(int(p) if p.isdigit() else 0 for p in entry.version.split("."))


def find(entries: Iterable[IndexEntry], src: str, tgt: str) -> IndexEntry | None:
    """The newest downloadable entry for src->tgt."""
    matches = [e for e in entries if (e.from_code, e.to_code) == (src, tgt) and e.links]
    return max(matches, key=_version_key) if matches else None


def plan(entries: list[IndexEntry], src: str, tgt: str) -> list[IndexEntry]:
    """Packages to install for src->tgt: the direct one, or src->en and en->tgt (Argos pivots)."""
    direct = find(entries, src, tgt)
    if direct is not None:
        return [direct]
    if PIVOT not in (src, tgt):
        first, second = find(entries, src, PIVOT), find(entries, PIVOT, tgt)
        if first is not None and second is not None:
            return [first, second]
        missing = [p for p, e in ((f"{src}:{PIVOT}", first), (f"{PIVOT}:{tgt}", second)) if e is None]
        raise ModelError(
            f"the index offers no {src}:{tgt} package, nor {' and '.join(missing)} to pivot through English"
        )
    raise ModelError(f"the index offers no {src}:{tgt} package")


def download(entry: IndexEntry, dest_dir: Path, *, timeout: float = 60.0, progress: bool | None = None) -> Path:
    """Download ``entry`` into ``dest_dir`` (tries each link), verifying its sha256 when known."""
    name = f"translate-{entry.from_code}_{entry.to_code}-{entry.version.replace('.', '_') or '0'}.argosmodel"
    target = dest_dir / name
    errors = []
    for url in entry.links:
        if urlparse(url).scheme not in ("http", "https", "file"):
            errors.append(f"{url}: unsupported URL")
            continue
        try:
            digest = _fetch_to(url, target, timeout, progress, entry)
        except (urllib.error.URLError, OSError, ValueError) as exc:
            errors.append(f"{url}: {_reason(exc)}")
            continue
        if entry.sha256 and digest != entry.sha256:
            target.unlink(missing_ok=True)
            raise ModelError(
                f"checksum mismatch for {entry.pair} from {url}: expected sha256 {entry.sha256}, got {digest}"
            )
        return target
    raise ModelError(f"cannot download {entry.pair}: " + "; ".join(errors or ["the index gives no link"]))


def _fetch_to(url: str, target: Path, timeout: float, progress: bool | None, entry: IndexEntry) -> str:
    digest = hashlib.sha256()
    partial = target.with_suffix(".part")
    with _open(url, timeout) as response, partial.open("wb") as out:
        total = int(response.headers.get("Content-Length") or 0) or entry.size or None
        bar = _progress_bar(total, f"{entry.pair} v{entry.version}", progress)
        try:
            while chunk := response.read(CHUNK):
                out.write(chunk)
                digest.update(chunk)
                bar.update(len(chunk))
        finally:
            bar.close()
        if total and out.tell() != total and response.headers.get("Content-Length"):
            raise ValueError(f"download truncated ({out.tell()} of {total} bytes)")
    shutil.move(partial, target)
    return digest.hexdigest()


class _NoBar:
    def update(self, n: int) -> None:
        pass

    def close(self) -> None:
        pass


def _progress_bar(total: int | None, label: str, enabled: bool | None) -> Any:
    """tqdm on a terminal (or when forced); silent otherwise, e.g. in logs and tests."""
    if enabled is False:
        return _NoBar()
    try:
        from tqdm import tqdm
    except ImportError:
        return _NoBar()
    return tqdm(
        total=total,
        desc=label,
        unit="B",
        unit_scale=True,
        unit_divisor=1024,
        file=sys.stderr,
        disable=None if enabled is None else False,
        leave=False,
    )
