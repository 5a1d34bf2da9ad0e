"""Compose the running server: the SFU app plus the services that watch its rooms."""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import logging
import ssl
import sys
from typing import TYPE_CHECKING

from aiohttp import web

from peerwell import nodes
from peerwell.captioning import CaptionsObserver
from peerwell.cluster import Cluster, ClusterError
from peerwell.config import CaptionOptions, ConfigError, Settings, flags_from_args, load_settings
from peerwell.facilitator_secrets import SecretsStoreError, keep_generated_secrets
from peerwell.logs import configure_logging
from peerwell.metrics import serve_metrics
from peerwell.paths import state_dir
from safety.detector import CrisisDetector
from sfu import messages
from sfu.app import create_app
from sfu.config import ServerConfig
from sfu.lifecycle.heap import HeapTrimmer, freeze_startup_heap
from sfu.lifecycle.shutdown import SHUTDOWN_KEY, DrainingRunner, serve_until_signalled
from sfu.signaling.websocket import ROOMS_KEY

if TYPE_CHECKING:
    from transcribe.worker import WorkerOptions

logger = logging.getLogger("peerwell")
CAPTIONS_KEY: web.AppKey[CaptionsObserver] = web.AppKey("captions", CaptionsObserver)


class ServeError(Exception):
    pass


def settings_from_args(args: argparse.Namespace) -> Settings:
    try:
        settings = load_settings(args.config, flags_from_args(args))
        groups = keep_generated_secrets(settings.server.groups, state_dir())  # bookmarked links keep working
    except ConfigError as exc:
        raise ServeError("invalid settings:\n  " + "\n  ".join(exc.problems)) from None
    except SecretsStoreError as exc:
        raise ServeError(str(exc)) from None
    return dataclasses.replace(settings, server=dataclasses.replace(settings.server, groups=groups))


def worker_options(options: CaptionOptions, log_format: str = "text") -> WorkerOptions:
    """What the transcription worker is started with: the settings, decoders laid out over this node's cores."""
    from transcribe.decoders import decoder_layout, usable_cores
    from transcribe.worker import WorkerOptions

    layout = decoder_layout(usable_cores(), workers=options.workers, nodes=options.nodes)
    return WorkerOptions(model=options.model, workers=layout.workers, cpu_threads=layout.cpu_threads,
                         full_window=options.full_window, log_format=log_format)


async def start_captions(options: CaptionOptions, observer: CaptionsObserver) -> messages.CaptionsStatus:
    """Start the transcription worker; if its model does not load, say exactly why and run without captions."""
    if not options.enabled:
        return messages.CaptionsStatus(enabled=False, reason="captions were turned off by the server operator")
    from peerwell.logs import JsonFormatter
    from transcribe.process import TranscriberProcess, TranscriptionUnavailable

    json_logs = any(isinstance(h.formatter, JsonFormatter) for h in logging.getLogger().handlers)
    worker = worker_options(options, "json" if json_logs else "text")
    process = TranscriberProcess(worker, module="peerwell.transcription_worker")
    try:
        await process.start()
    except TranscriptionUnavailable as exc:
        logger.error("captions are off: %s", exc)
        return messages.CaptionsStatus(enabled=False, reason=str(exc))
    observer.transcriber = process
    logger.info("captions: Whisper %s, %d decoder(s) x %d CPU thread(s)", options.model, worker.workers,
                worker.cpu_threads)
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
    by_file = {g.safety_phrases: CrisisDetector.from_config(extra_phrases_file=g.safety_phrases)
               for g in config.groups.groups if g.safety_phrases}
    app = create_app(config, [observer], detector=detector,
                     group_detectors={g.slug: by_file[g.safety_phrases]
                                      for g in config.groups.groups if g.safety_phrases})
    live_metrics = serve_metrics(app, app[ROOMS_KEY])

    async def start_services(app: web.Application) -> None:
        # The crisis detector's model loads now, not on a room's first final.
        await asyncio.to_thread(detector.warm_up)
        # Before the first join: `joined` tells everyone whether captions are on, and why not.
        app[ROOMS_KEY].captions_status = await start_captions(captions, observer)
        if observer.transcriber is not None:
            live_metrics.caption_stats = observer.transcriber.latest_stats

    async def stop_services(app: web.Application) -> None:
        await observer.close()

    app.on_startup.append(start_services)
    # On SIGTERM, open caption segments are finalised and delivered while media is still up.
    app[SHUTDOWN_KEY].finish.append(observer.close)
    app.on_cleanup.append(stop_services)
    app[CAPTIONS_KEY] = observer
    return app


def tls_context(certificate: str, key: str) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    try:
        context.load_cert_chain(certificate, key)
    except (ssl.SSLError, OSError) as exc:
        raise ServeError(f"cannot use TLS certificate {certificate} with key {key}: {exc}") from None
    return context


def public_url(settings: Settings) -> str:
    if settings.public_url:
        return settings.public_url
    scheme = "https" if settings.tls else "http"
    return f"{scheme}://{settings.server.host}:{settings.server.port}"


def announce(settings: Settings) -> None:
    """The one thing an operator must see at start: where it runs and the generated facilitator links."""
    url = public_url(settings)
    print(f"peerwell is running at {url}", flush=True)
    for group in settings.server.groups.groups:
        if group.secret_generated:
            print(f"  facilitator link for {group.name!r}: {url}/#room={group.slug}&secret={group.facilitator_secret}",
                  flush=True)


def serve(args: argparse.Namespace, argv: list[str] | None = None) -> None:
    settings = settings_from_args(args)
    configure_logging(settings.log_level, settings.log_format)
    node = nodes.this_node()
    if node is None and settings.workers > 1:
        if nodes.supervise(settings.workers, argv if argv is not None else sys.argv[1:]):
            raise ServeError("a worker could not start (see above)")
        return
    if node is not None:
        nodes.stop_with_parent()
    index, count = node or (0, 1)
    config = settings.server
    if settings.redis:
        try:
            config = dataclasses.replace(config, ice_port_range=nodes.port_slice(config.ice_port_range, index, count))
        except ValueError as exc:
            raise ServeError(str(exc)) from None
    ssl_context = tls_context(*settings.tls) if settings.tls else None
    app = build_app(config, settings.captions)
    app[ROOMS_KEY].public_url = public_url(settings)
    app[SHUTDOWN_KEY].grace = settings.shutdown_grace
    sockets = None
    if settings.redis:
        try:
            sockets, node_port = nodes.listen(config.host, config.port, index, count)
        except OSError as exc:
            raise ServeError(f"cannot listen on {config.host}:{config.port} (node {index + 1} of {count}): "
                             f"{exc.strerror or exc}") from None
        scheme = "wss" if ssl_context else "ws"
        cluster = Cluster(settings.redis, f"{scheme}://{settings.node_address}:{node_port}/ws", app[ROOMS_KEY])
        app.on_startup.insert(0, lambda app: cluster.start())  # before captions load: a bad Redis fails fast
        app.on_shutdown.insert(0, cluster.leave)  # placement moves on while this node says goodbye
        app.on_cleanup.append(cluster.close)

    trimmer = HeapTrimmer()  # gives the C heap's free pages back after connections are collected

    async def stop_trimming(_app: web.Application) -> None:
        trimmer.stop()

    app.on_cleanup.append(stop_trimming)

    def listening() -> None:
        """Once every site listens (on_startup runs before the port is bound, so an announcement from there
        could send a waiting operator or test to a port that refuses them)."""
        freeze_startup_heap()
        trimmer.start()
        if index == 0:
            announce(settings)
        if settings.redis:
            print(f"peerwell node {index + 1} of {count} ({cluster.node_id}) is ready at {cluster.node_url}",
                  flush=True)

    async def run() -> None:
        # shutdown_timeout: sockets still open after GracefulShutdown closed them all are cut after 1 s.
        runner = DrainingRunner(app, access_log=None, shutdown_timeout=1.0)
        await runner.setup()
        try:
            sites: list[web.BaseSite] = ([web.SockSite(runner, sock, ssl_context=ssl_context) for sock in sockets]
                                         if sockets is not None else
                                         [web.TCPSite(runner, config.host, config.port, ssl_context=ssl_context)])
            for site in sites:
                await site.start()
        except BaseException:
            await runner.cleanup()
            raise
        listening()
        await serve_until_signalled(runner)  # SIGTERM: drain while /readyz still answers 503, then exit

    try:
        asyncio.run(run())
    except OSError as exc:
        raise ServeError(f"cannot listen on {config.host}:{config.port}: {exc.strerror or exc}") from None
    except ClusterError as exc:
        raise ServeError(str(exc)) from None
