"""The aiohttp application: the browser client from web/, signaling at /ws, health and readiness.

peerwell/server.py adds /metrics and the services that watch rooms (sfu/ knows nothing of Prometheus)."""

from __future__ import annotations

import asyncio
import errno
import logging
import re
import resource
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import msgspec
from aiohttp import web

from sfu import aiortc_adapter, messages
from sfu.config import ServerConfig
from sfu.lifecycle.placement import PlacementUnavailable
from sfu.lifecycle.shutdown import SHUTDOWN_KEY, GracefulShutdown
from sfu.room.groups import Group
from sfu.room.room import RoomObserver
from sfu.signaling.websocket import BROWSER_KEY_COOKIE, ROOMS_KEY, Rooms, group_info, websocket_handler

if TYPE_CHECKING:
    from safety.detector import CrisisDetector

logger = logging.getLogger(__name__)

WEB_ROOT = Path(__file__).resolve().parent.parent / "web"

SECURITY_HEADERS = {
    # No inline scripts or styles anywhere in web/, so the policy can forbid them outright.
    "Content-Security-Policy": (
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; "
        "media-src 'self' blob:; connect-src 'self'; object-src 'none'; base-uri 'none'; "
        "form-action 'self'; frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
    "Permissions-Policy": "camera=(self), microphone=(self), geolocation=()",
    "Cross-Origin-Opener-Policy": "same-origin",
}


# The one script that compiles WebAssembly: the speech worker of end-to-end encrypted rooms (onnxruntime-web runs
# Moonshine in the browser). A dedicated worker gets the policy of its own response, so the page keeps
# script-src 'self' and only this worker may instantiate WebAssembly.
WASM_WORKER = "/static/e2ee/asr_worker.js"
WASM_WORKER_CSP = SECURITY_HEADERS["Content-Security-Policy"].replace(
    "script-src 'self';", "script-src 'self' 'wasm-unsafe-eval';")


@web.middleware
async def security_headers(request: web.Request, handler):  # type: ignore[no-untyped-def]
    try:
        response = await handler(request)
    except web.HTTPException as exc:
        response = exc
    if request.path == WASM_WORKER:
        response.headers.setdefault("Content-Security-Policy", WASM_WORKER_CSP)
    for name, value in SECURITY_HEADERS.items():
        response.headers.setdefault(name, value)
    if isinstance(response, web.HTTPException) and response.status >= 400:
        raise response
    return response


OUT_OF_DESCRIPTORS = (errno.EMFILE, errno.ENFILE)
DESCRIPTOR_REPORT_SECONDS = 60.0


class DescriptorAlarm:
    """Out of file descriptors: one log line a minute, not a traceback per refused connection.

    asyncio's accept loop (CPython 3.11) logs a traceback for each of up to 100 accept attempts per second
    while descriptors are out; a probe filled 280 MB of log in six minutes. Connections wait in the kernel's
    backlog meanwhile and are accepted once descriptors are free; requests that fail for want of one get 503.
    """

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._last: float | None = None
        self._since = 0

    def report(self) -> None:
        now = self._clock()
        self._since += 1
        if self._last is not None and now - self._last < DESCRIPTOR_REPORT_SECONDS:
            return
        limit = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
        logger.error("out of file descriptors (limit %d): new connections wait until some close "
                     "(%d refusal(s) since the last report)", limit, self._since)
        self._last, self._since = now, 0

    def install(self, loop: asyncio.AbstractEventLoop) -> None:
        previous = loop.get_exception_handler()

        def handle(loop: asyncio.AbstractEventLoop, context: dict[str, object]) -> None:
            exc = context.get("exception")
            if isinstance(exc, OSError) and exc.errno in OUT_OF_DESCRIPTORS:
                self.report()
            elif previous is not None:
                previous(loop, context)
            else:
                loop.default_exception_handler(context)

        loop.set_exception_handler(handle)


DESCRIPTORS_KEY: web.AppKey[DescriptorAlarm] = web.AppKey("descriptors", DescriptorAlarm)


@web.middleware
async def shed_without_descriptors(request: web.Request, handler):  # type: ignore[no-untyped-def]
    try:
        return await handler(request)
    except OSError as exc:
        if exc.errno not in OUT_OF_DESCRIPTORS:
            raise
        request.app[DESCRIPTORS_KEY].report()
        return web.json_response({"error": "unavailable"}, status=503, headers={"Retry-After": "5"})


async def watch_descriptors(app: web.Application) -> None:
    app[DESCRIPTORS_KEY].install(asyncio.get_running_loop())


SERVER_NAME = "peerwell"  # aiohttp's default names its version and Python's: a map of what to attack


async def server_header(_request: web.Request, response: web.StreamResponse) -> None:
    """Every response the app prepares, WebSocket upgrades and files included (a middleware sees neither)."""
    response.headers["Server"] = SERVER_NAME


PRIVACY_NOTICE = (
    "What happens to what you share here: your video, voice and messages go only through this server to "
    "the other people in this room. Speech is turned into captions, and captions into other languages, "
    "by software running on this server; nothing is sent to any outside service. Nothing is recorded: "
    "captions and chat exist only in memory and are gone when the session ends. You choose the name "
    "others see; no account or email is needed. You can download your own copy of the captions; nobody "
    "else keeps one. If something you say or write suggests you may be at risk, the facilitator may be "
    "alerted privately so they can offer support."
)


async def index(request: web.Request) -> web.FileResponse:
    response = web.FileResponse(request.app[WEB_ROOT_KEY] / "index.html")
    keys = request.app[ROOMS_KEY].browser_keys
    if keys.issued_at(request.cookies.get(BROWSER_KEY_COOKIE)) is None:
        # Identifies this browser for the session only, so a removal can stick; never tied to a person.
        response.set_cookie(BROWSER_KEY_COOKIE, keys.issue(), httponly=True, samesite="Strict")
    return response


def _directory_entry(group: Group) -> dict[str, object]:
    return msgspec.to_builtins(group_info(group))


async def list_groups(request: web.Request) -> web.Response:
    groups = request.app[ROOMS_KEY].config.groups
    adhoc = None
    if groups.server.allow_adhoc_rooms:  # what a room opened by name gets (its slug and name are that name)
        template = {**_directory_entry(groups.adhoc_group("room")), "slug": "", "name": ""}
        adhoc = {k: v for k, v in template.items() if k not in ("topic", "description", "schedule")}
    return web.json_response({
        "groups": [_directory_entry(g) for g in groups.groups],
        "allow_adhoc_rooms": groups.server.allow_adhoc_rooms,
        "adhoc": adhoc,
        "room_name": {"pattern": messages.ROOM_NAME_PATTERN, "max_length": messages.ROOM_NAME_MAX,
                      "rule": messages.ROOM_NAME_RULE},
        "privacy_notice": PRIVACY_NOTICE,
    })


async def get_group(request: web.Request) -> web.Response:
    rooms = request.app[ROOMS_KEY]
    slug = request.match_info["slug"]
    live = rooms.rooms.get(slug)
    # A configured group, or an ad-hoc room someone is in; a made-up name is 404 even with ad-hoc rooms
    # on (joining it opens it; the directory's `adhoc` says what such a room gets).
    group = rooms.config.groups.get(slug) or (live.group if live is not None else None)
    if (group is None and rooms.placement is not None and rooms.config.groups.server.allow_adhoc_rooms
            and re.fullmatch(messages.ROOM_NAME_PATTERN, slug)):
        try:  # an ad-hoc room open on another node
            if await rooms.placement.exists(slug):
                group = rooms.config.groups.adhoc_group(slug)
        except PlacementUnavailable:
            return web.json_response({"error": "unavailable"}, status=503)
    if group is None:
        return web.json_response({"error": "no-such-room"}, status=404)
    return web.json_response({**_directory_entry(group), "privacy_notice": PRIVACY_NOTICE})


async def health(request: web.Request) -> web.Response:
    rooms = request.app[ROOMS_KEY]
    return web.json_response({"status": "ok", "rooms": len(rooms.rooms),
                              "captions": rooms.captions_status.enabled})


async def ready(request: web.Request) -> web.Response:
    """For load balancers and orchestrators: 200 while joins are taken (models are loaded before the server
    listens), 503 once shutdown began."""
    rooms = request.app[ROOMS_KEY]
    if not rooms.accepting_joins:
        return web.json_response({"status": "shutting-down"}, status=503)
    return web.json_response({"status": "ready", "captions": rooms.captions_status.enabled})


WEB_ROOT_KEY: web.AppKey[Path] = web.AppKey("web_root", Path)


def create_app(config: ServerConfig | None = None, observers: list[RoomObserver] | None = None,
               detector: CrisisDetector | None = None,
               group_detectors: dict[str, CrisisDetector] | None = None) -> web.Application:
    """`group_detectors`: by slug, for groups with their own crisis phrases (else `detector`)."""
    config = config or ServerConfig()
    aiortc_adapter.check_compatibility()
    aiortc_adapter.install_patches()
    aiortc_adapter.set_ice_host_addresses(config.ice_hosts or None)
    aiortc_adapter.set_host_candidate_policy(config.ice_port_range, config.announced_address,
                                             config.ice_hosts[0] if config.ice_hosts else None)
    app = web.Application(middlewares=[security_headers, shed_without_descriptors])
    app.on_response_prepare.append(server_header)
    app[DESCRIPTORS_KEY] = DescriptorAlarm()
    app.on_startup.append(watch_descriptors)
    rooms = Rooms(config, list(observers or []), detector=detector, group_detectors=dict(group_detectors or {}),
                  public_url=f"http://{config.host}:{config.port}")
    app[ROOMS_KEY] = rooms
    web_root = Path(config.web_root) if config.web_root else WEB_ROOT
    app[WEB_ROOT_KEY] = web_root
    app.router.add_get("/", index)
    app.router.add_get("/ws", websocket_handler)
    app.router.add_get("/healthz", health)
    app.router.add_get("/readyz", ready)
    app.router.add_get("/api/groups", list_groups)
    app.router.add_get("/api/groups/{slug}", get_group)
    app.router.add_static("/static/", web_root / "static", show_index=False)

    shutdown = GracefulShutdown(rooms)
    app[SHUTDOWN_KEY] = shutdown
    app.on_shutdown.append(shutdown)
    return app
