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

    add_models_subparsers(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "models":
        return run_models_command(args)
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
