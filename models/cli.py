"""``peerwell models ...``: list, browse, install and remove the models peerwell runs locally.

peerwell/cli.py calls :func:`add_models_subparsers` and dispatches to :func:`run_models_command`;
``python -m models.cli ...`` runs the same commands standalone. Problems the user can fix (bad file,
missing pair, no network) print one line and exit with status 2, without a traceback.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from models.argos import (
    ModelError,
    install_package_file,
    installed_packages,
    packages_dir,
    parse_pair,
    remove_package,
)

EXIT_USER_ERROR = 2


def add_models_subparsers(target: Any) -> argparse.ArgumentParser:
    """Add the ``models`` commands.

    ``target`` is either the subparsers object of the main CLI (a ``models`` command is added to it) or
    an ArgumentParser that becomes the ``models`` command itself. Returns the ``models`` parser.
    """
    if isinstance(target, argparse.ArgumentParser):
        parser = target
    else:
        parser = target.add_parser(
            "models",
            help="list, install and remove local models",
            description="Manage Whisper and Argos Translate models.",
        )
    sub = parser.add_subparsers(dest="models_command", metavar="COMMAND", required=True)

    sub.add_parser("list", help="installed Whisper and Argos models (size, sha256, location)")

    available = sub.add_parser("available", help="translation packages offered by the Argos index")
    _index_args(available)

    install = sub.add_parser(
        "install",
        help="install a translation pair (en:es) from the index, or an .argosmodel file",
        description="Install FROM:TO from the Argos index (pivoting through English when the index "
        "has no direct package), or install a local .argosmodel file offline.",
    )
    install.add_argument("target", metavar="PAIR_OR_FILE", help="e.g. en:es, or path/to/file.argosmodel")
    install.add_argument("--force", action="store_true", help="reinstall pairs that are already installed")
    install.add_argument("--no-progress", dest="progress", action="store_false", default=None, help="no progress bar")
    _index_args(install)

    remove = sub.add_parser("remove", help="remove an installed translation pair")
    remove.add_argument("pair", metavar="PAIR", help="e.g. en:es")
    return parser


def _index_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--index-url",
        default=None,
        help="Argos index (index.json URL, base URL, or path of a mirror); "
        "default: $ARGOS_PACKAGE_INDEX, else the public Argos index",
    )
    parser.add_argument("--timeout", type=float, default=30.0, help="network timeout in seconds")


def run_models_command(args: argparse.Namespace) -> int:
    """Run a parsed ``models`` command; returns the process exit status."""
    commands = {"list": _cmd_list, "available": _cmd_available, "install": _cmd_install, "remove": _cmd_remove}
    try:
        return commands[args.models_command](args)
    except ModelError as exc:
        print(f"peerwell models: error: {exc}", file=sys.stderr)
        return EXIT_USER_ERROR
    except KeyboardInterrupt:
        print("peerwell models: interrupted", file=sys.stderr)
        return 130


# -- commands -------------------------------------------------------------------------------------


def _human(size: int) -> str:
    value = float(size)
    for unit in ("B", "KB", "MB", "GB"):
        if value < 1000 or unit == "GB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1000
    return f"{size} B"


def _whisper_rows() -> tuple[list[list[str]], str | None]:
    try:
        from models.whisper import installed_whisper_models
    except ImportError:
        return [], "Whisper model listing is not available in this build"
    try:
        models = list(installed_whisper_models())
    except Exception as exc:  # the other engineer's module must not break `list`
        return [], f"cannot list Whisper models: {exc}"
    rows = [
        [
            str(getattr(m, "name", "?")),
            _human(int(getattr(m, "size_bytes", 0) or 0)),
            str(getattr(m, "sha256", "") or "-"),
            str(getattr(m, "source", "") or "-"),
            str(getattr(m, "path", "")),
        ]
        for m in models
    ]
    return rows, None


def _table(rows: list[list[str]], header: list[str]) -> None:
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    for row in [header, *rows]:
        print("  " + "  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip())


def _cmd_list(args: argparse.Namespace) -> int:
    rows, note = _whisper_rows()
    print("Whisper models:")
    if rows:
        _table(rows, ["NAME", "SIZE", "SHA256 (model.bin)", "SOURCE", "PATH"])
    else:
        print(f"  ({note or 'none installed'})")
    print()
    print(f"Argos translation packages (installing into {packages_dir()}):")
    argos = installed_packages(checksums=True)
    if argos:
        _table(
            [
                [m.pair, f"{m.from_name} -> {m.to_name}", m.version or "-", _human(m.size_bytes), m.sha256, str(m.path)]
                for m in argos
            ],
            ["PAIR", "LANGUAGES", "VERSION", "SIZE", "SHA256 (model/model.bin)", "PATH"],
        )
    else:
        print("  (none installed; try: peerwell models install en:es)")
    return 0


def _cmd_available(args: argparse.Namespace) -> int:
    from models.index import fetch_index, resolve_index_url

    url = resolve_index_url(args.index_url)
    entries = fetch_index(url, timeout=args.timeout)
    installed = {m.pair for m in installed_packages()}
    print(f"Argos packages offered by {url}:")
    rows = [
        [e.pair, f"{e.from_name} -> {e.to_name}", e.version or "-", "installed" if e.pair in installed else ""]
        for e in sorted(entries, key=lambda e: e.pair)
    ]
    if rows:
        _table(rows, ["PAIR", "LANGUAGES", "VERSION", ""])
    else:
        print("  (none)")
    return 0


def _looks_like_file(target: str) -> bool:
    return Path(target).suffix in (".argosmodel", ".zip") or Path(target).exists() or "/" in target


def _cmd_install(args: argparse.Namespace) -> int:
    if _looks_like_file(args.target):
        model = install_package_file(Path(args.target).expanduser())
        print(f"installed {model.pair} ({model.from_name} -> {model.to_name}) v{model.version} into {model.path}")
        return 0

    from models.index import download, fetch_index, plan, resolve_index_url

    src, tgt = parse_pair(args.target)
    url = resolve_index_url(args.index_url)
    steps = plan(fetch_index(url, timeout=args.timeout), src, tgt)
    if len(steps) > 1:
        print(
            f"no direct {src}:{tgt} package; installing {' and '.join(s.pair for s in steps)} "
            "(translation pivots through English)"
        )
    installed = {m.pair for m in installed_packages()}
    with tempfile.TemporaryDirectory(prefix="peerwell-download-") as tmp:
        for entry in steps:
            if entry.pair in installed and not args.force:
                print(f"{entry.pair} is already installed (use --force to reinstall)")
                continue
            print(f"downloading {entry.pair} v{entry.version} from {entry.links[0]}", flush=True)
            archive = download(entry, Path(tmp), timeout=args.timeout, progress=args.progress)
            model = install_package_file(archive)
            archive.unlink(missing_ok=True)
            print(f"installed {model.pair} ({model.from_name} -> {model.to_name}) v{model.version} into {model.path}")
    return 0


def _cmd_remove(args: argparse.Namespace) -> int:
    for path in remove_package(args.pair):
        print(f"removed {args.pair} ({path})")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="peerwell models", description="Manage local models.")
    add_models_subparsers(parser)
    return run_models_command(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
