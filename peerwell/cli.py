"""The `peerwell` command: `peerwell serve` runs the server, `peerwell models ...` manages models."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence

from models.cli import add_models_subparsers, run_models_command


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="peerwell", description="Self-hosted video rooms for support groups.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    serve = sub.add_parser("serve", help="run the server", description="Run the peerwell server.")
    serve.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    serve.add_argument("--port", type=int, default=8080, help="port to listen on (default 8080)")
    serve.add_argument("--ice-host", action="append", default=[], metavar="ADDR",
                       help="address offered as an ICE host candidate (repeatable; default: all of this "
                            "machine's addresses except loopback). Use your public address in production.")
    serve.add_argument("--stun", action="append", default=[], metavar="URL",
                       help="STUN server URL handed to browsers (repeatable), e.g. stun:stun.example.org:3478")
    serve.add_argument("--turn", action="append", default=[], metavar="URL",
                       help="TURN server URL handed to browsers (repeatable); needs --turn-username/--turn-credential")
    serve.add_argument("--turn-username", default=None)
    serve.add_argument("--turn-credential", default=None)
    serve.add_argument("--config", default=None, metavar="FILE", help="groups TOML file (see README)")
    serve.add_argument("--whisper-model", default="base", metavar="NAME_OR_PATH",
                       help="Whisper model for captions: a name (tiny.en, base, small, ...) or a directory "
                            "(default: base)")
    serve.add_argument("--no-captions", action="store_true", help="run without captions")
    serve.add_argument("--caption-workers", type=int, default=1, help="threads decoding speech (default 1)")
    serve.add_argument("--whisper-full-window", action="store_true",
                       help="give Whisper its usual 30 s window per decode (slower; default: speech + 5 s)")
    serve.add_argument("--log-level", default="INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR"])

    link = sub.add_parser("facilitator-link", help="print a group's facilitator link",
                          description="Print the facilitator link of a group (generated secrets are kept in the "
                                      "state directory, $PEERWELL_STATE_DIR, so the link survives restarts).")
    link.add_argument("group", metavar="GROUP", help="the group's slug")
    link.add_argument("--config", default=None, metavar="FILE", help="groups TOML file the server uses")
    link.add_argument("--url", default="http://127.0.0.1:8080", help="the server's address as people reach it")

    add_models_subparsers(sub)
    return parser


def print_facilitator_link(args: argparse.Namespace) -> int:
    from peerwell.facilitator_secrets import SecretsStoreError, facilitator_link, keep_generated_secrets
    from peerwell.groups import GroupsConfig, GroupsConfigError, load_groups
    from peerwell.paths import state_dir

    try:
        groups = load_groups(args.config) if args.config else GroupsConfig.default()
        groups = keep_generated_secrets(groups, state_dir())
    except (GroupsConfigError, SecretsStoreError) as exc:
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
    logging.basicConfig(level=args.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    from peerwell.server import ServeError, serve  # heavy imports only when serving

    try:
        serve(args)
    except ServeError as exc:
        print(f"peerwell: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
