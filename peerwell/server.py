"""Compose the running server: the SFU app plus the services that watch its rooms."""

from __future__ import annotations

import argparse
import logging
from dataclasses import dataclass, replace

from aiohttp import web

from peerwell.captioning import CaptionsObserver
from peerwell.groups import GroupsConfig, GroupsConfigError, load_groups
from safety.detector import CrisisDetector
from sfu import messages
from sfu.app import create_app
from sfu.config import ServerConfig, parse_ice_server
from sfu.signaling import ROOMS_KEY

logger = logging.getLogger("peerwell")


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
    except (ValueError, GroupsConfigError) as exc:
        raise ServeError(str(exc)) from None
    if not 0 < args.port < 65536:
        raise ServeError(f"--port must be 1-65535, not {args.port}")
    return ServerConfig(host=args.host, port=args.port, ice_hosts=tuple(args.ice_host),
                        ice_servers=tuple(ice_servers), groups=groups)


def caption_options_from_args(args: argparse.Namespace) -> CaptionOptions:
    return CaptionOptions(enabled=not args.no_captions, model=args.whisper_model, workers=args.caption_workers,
                          full_window=args.whisper_full_window)


def load_captions(options: CaptionOptions, observer: CaptionsObserver) -> messages.CaptionsStatus:
    """Load Whisper once; if that fails, say exactly why and keep rooms running without captions."""
    if not options.enabled:
        return messages.CaptionsStatus(enabled=False, reason="captions were turned off by the server operator")
    from models.whisper import ModelChecksumError, ModelUnavailable
    from transcribe.service import CaptionService

    try:
        observer.captions = CaptionService.from_model_name(
            observer.on_caption, options.model, workers=options.workers, full_window=options.full_window)
    except ModelChecksumError as exc:
        logger.error("captions are off: %s", exc)
        return messages.CaptionsStatus(enabled=False, reason=f"the speech model {exc.name!r} is corrupt (its "
                                       "sha256 does not match the published one); reinstall its package")
    except ModelUnavailable as exc:
        logger.error("captions are off: %s", exc)
        return messages.CaptionsStatus(enabled=False, reason=f"no speech model could be loaded ({exc.name})")
    except Exception as exc:  # a corrupt model directory surfaces as many error types
        logger.exception("captions are off: the Whisper model failed to load")
        return messages.CaptionsStatus(enabled=False, reason=f"the speech model failed to load: {exc}")
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
    status = load_captions(captions, observer)
    detector = CrisisDetector.from_config()
    app = create_app(config, [observer], detector=detector)
    app[ROOMS_KEY].captions_status = status

    async def stop_services(app: web.Application) -> None:
        await observer.close()

    app.on_cleanup.append(stop_services)
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
