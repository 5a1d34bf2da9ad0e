"""The `peerwell` command: `serve` runs the server, `check-config` validates a settings file, `models` manages
models. Settings come from flags > PEERWELL_* environment > the TOML file > defaults (peerwell/config.py)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from models.cli import add_models_subparsers, run_models_command
from peerwell.config import add_setting_flags, check_config


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="peerwell", description="Self-hosted video rooms for support groups.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    serve = sub.add_parser(
        "serve", help="run the server",
        description="Run the peerwell server. Each setting can also come from the environment or the TOML "
                    "file; a flag wins over the environment, which wins over the file.")
    add_setting_flags(serve)

    check = sub.add_parser("check-config", help="validate a settings/groups TOML file, reporting every error",
                           description="Read FILE (and PEERWELL_* environment variables) as `serve` would and "
                                       "report every problem at once. Exit status 0 when valid, 1 otherwise.")
    check.add_argument("file", metavar="FILE")

    link = sub.add_parser("facilitator-link", help="print a group's facilitator link",
                          description="Print the facilitator link of a group (generated secrets are kept in the "
                                      "state directory, $PEERWELL_STATE_DIR, so the link survives restarts).")
    link.add_argument("group", metavar="GROUP", help="the group's slug")
    link.add_argument("--config", default=None, metavar="FILE", help="groups TOML file the server uses")
    link.add_argument("--url", default="http://127.0.0.1:8080", help="the server's address as people reach it")

    add_models_subparsers(sub)
    return parser


def print_facilitator_link(args: argparse.Namespace) -> int:
    from peerwell.config import ConfigError, load_settings
    from peerwell.facilitator_secrets import SecretsStoreError, facilitator_link, keep_generated_secrets
    from peerwell.paths import state_dir

    try:  # the same file (and PEERWELL_* variables) `serve` reads
        groups = keep_generated_secrets(load_settings(args.config).server.groups, state_dir())
    except ConfigError as exc:
        print("peerwell: invalid settings:\n  " + "\n  ".join(exc.problems), file=sys.stderr)
        return 2
    except SecretsStoreError as exc:
        print(f"peerwell: {exc}", file=sys.stderr)
        return 2
    group = groups.get(args.group)
    if group is None:
        known = ", ".join(g.slug for g in groups.groups) or "none"
        print(f"peerwell: no group {args.group!r} (groups: {known})", file=sys.stderr)
        return 2
    print(facilitator_link(args.url, group))
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "models":
        return run_models_command(args)
    if args.command == "facilitator-link":
        return print_facilitator_link(args)
    if args.command == "check-config":
        ok, lines = check_config(args.file)
        print("\n".join(lines), file=sys.stdout if ok else sys.stderr)
        return 0 if ok else 1
    from peerwell.server import ServeError, serve  # heavy imports only when serving

    try:
        serve(args, list(argv) if argv is not None else None)
    except ServeError as exc:
        print(f"peerwell: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
