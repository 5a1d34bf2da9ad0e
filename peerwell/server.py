"""Compose the running server: the SFU app plus the services that watch its rooms."""

from __future__ import annotations

import argparse
import logging
from dataclasses import dataclass, replace

from aiohttp import web

from peerwell.captioning import CaptionsObserver
from peerwell.facilitator_secrets import SecretsStoreError, keep_generated_secrets
from peerwell.groups import GroupsConfig, GroupsConfigError, load_groups
from peerwell.paths import state_dir
from safety.detector import CrisisDetector
from sfu import messages
from sfu.app import create_app
from sfu.config import ServerConfig, parse_ice_server
from sfu.signaling import ROOMS_KEY

logger = logging.getLogger("peerwell")
CAPTIONS_KEY: web.AppKey[CaptionsObserver] = web.AppKey("captions", CaptionsObserver)


class ServeError(Exception):
    pass


@dataclass
class CaptionOptions:
    enabled: bool = True
    model: str = "base"
    workers: int = 1
    full_window: bool = False  # plain faster-whisper: 30 s encoder window per decode (see whisper_adapter)


def config_from_args(args: argparse.Namespace) -> ServerConfig:
    try:
        ice_servers = [parse_ice_server(url) for url in args.stun]
        if args.turn and not (args.turn_username and args.turn_credential):
            raise ValueError("--turn needs --turn-username and --turn-credential")
        ice_servers += [parse_ice_server(url, args.turn_username, args.turn_credential) for url in args.turn]
        groups = load_groups(args.config) if args.config else GroupsConfig.default()
        groups = keep_generated_secrets(groups, state_dir())  # a bookmarked facilitator link keeps working
    except (ValueError, GroupsConfigError, SecretsStoreError) as exc:
        raise ServeError(str(exc)) from None
    if not 0 < args.port < 65536:
        raise ServeError(f"--port must be 1-65535, not {args.port}")
    return ServerConfig(host=args.host, port=args.port, ice_hosts=tuple(args.ice_host),
                        ice_servers=tuple(ice_servers), groups=groups)


def caption_options_from_args(args: argparse.Namespace) -> CaptionOptions:
    return CaptionOptions(enabled=not args.no_captions, model=args.whisper_model, workers=args.caption_workers,
                          full_window=args.whisper_full_window)


async def start_captions(options: CaptionOptions, observer: CaptionsObserver) -> messages.CaptionsStatus:
    """Start the transcription worker; if its model does not load, say exactly why and run without captions."""
    if not options.enabled:
        return messages.CaptionsStatus(enabled=False, reason="captions were turned off by the server operator")
    from transcribe.process import TranscriberProcess, TranscriptionUnavailable
    from transcribe.worker import WorkerOptions

    process = TranscriberProcess(WorkerOptions(model=options.model, workers=options.workers,
                                               full_window=options.full_window))
    try:
        await process.start()
    except TranscriptionUnavailable as exc:
        logger.error("captions are off: %s", exc)
        return messages.CaptionsStatus(enabled=False, reason=str(exc))
    observer.transcriber = process
    return messages.CaptionsStatus(enabled=True, model=options.model)


def load_translation() -> object | None:
    from translate.service import TranslationService

    try:
        service = TranslationService()
    except Exception:
        logger.exception("subtitles are off: installed Argos packages could not be read")
        return None
    languages = service.languages()
    logger.info("translation languages installed: %s", ", ".join(sorted(languages)) or "none")
    return service


def build_app(config: ServerConfig, captions: CaptionOptions, *, translation: bool = True) -> web.Application:
    service = load_translation() if translation else None
    observer = CaptionsObserver(None, service)  # type: ignore[arg-type]
    detector = CrisisDetector.from_config()
    app = create_app(config, [observer], detector=detector)

    async def start_services(app: web.Application) -> None:
        # Before the first join: `joined` tells everyone whether captions are on, and why not.
        app[ROOMS_KEY].captions_status = await start_captions(captions, observer)

    async def stop_services(app: web.Application) -> None:
        await observer.close()

    app.on_startup.append(start_services)
    app.on_cleanup.append(stop_services)
    app[CAPTIONS_KEY] = observer
    return app


def announce(config: ServerConfig) -> None:
    url = f"http://{config.host}:{config.port}"
    print(f"peerwell is running at {url}", flush=True)
    for group in config.groups.groups:
        if group.secret_generated:
            print(f"  facilitator link for {group.name!r}: {url}/#room={group.slug}&secret={group.facilitator_secret}",
                  flush=True)


def serve(args: argparse.Namespace) -> None:
    config = config_from_args(args)
    app = build_app(replace(config), caption_options_from_args(args))

    async def on_startup(app: web.Application) -> None:
        announce(config)

    app.on_startup.append(on_startup)
    try:
        web.run_app(app, host=config.host, port=config.port, print=None)
    except OSError as exc:
        raise ServeError(f"cannot listen on {config.host}:{config.port}: {exc.strerror or exc}") from None
