"""Compose the running server: the SFU app plus the services that watch its rooms."""

from __future__ import annotations

import argparse
import logging

from aiohttp import web

from sfu.app import create_app
from sfu.config import ServerConfig, parse_ice_server

logger = logging.getLogger("peerwell")


class ServeError(Exception):
    pass


def config_from_args(args: argparse.Namespace) -> ServerConfig:
    try:
        ice_servers = [parse_ice_server(url) for url in args.stun]
        if args.turn and not (args.turn_username and args.turn_credential):
            raise ValueError("--turn needs --turn-username and --turn-credential")
        ice_servers += [parse_ice_server(url, args.turn_username, args.turn_credential) for url in args.turn]
    except ValueError as exc:
        raise ServeError(str(exc)) from None
    if not 0 < args.port < 65536:
        raise ServeError(f"--port must be 1-65535, not {args.port}")
    return ServerConfig(host=args.host, port=args.port, ice_hosts=tuple(args.ice_host),
                        ice_servers=tuple(ice_servers))


def build_app(config: ServerConfig, args: argparse.Namespace) -> web.Application:
    return create_app(config)


def serve(args: argparse.Namespace) -> None:
    config = config_from_args(args)
    app = build_app(config, args)

    async def announce(app: web.Application) -> None:
        print(f"peerwell is running at http://{config.host}:{config.port}", flush=True)

    app.on_startup.append(announce)
    try:
        web.run_app(app, host=config.host, port=config.port, print=None)
    except OSError as exc:
        raise ServeError(f"cannot listen on {config.host}:{config.port}: {exc.strerror or exc}") from None
