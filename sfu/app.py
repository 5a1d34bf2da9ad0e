"""The aiohttp application: the browser client from web/, signaling at /ws, and a health check."""

from __future__ import annotations

import logging
from pathlib import Path

from aiohttp import web

from sfu import aiortc_adapter
from sfu.config import ServerConfig
from sfu.room import RoomObserver
from sfu.signaling import ROOMS_KEY, Rooms, websocket_handler

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


@web.middleware
async def security_headers(request: web.Request, handler):  # type: ignore[no-untyped-def]
    try:
        response = await handler(request)
    except web.HTTPException as exc:
        response = exc
    for name, value in SECURITY_HEADERS.items():
        response.headers.setdefault(name, value)
    if isinstance(response, web.HTTPException) and response.status >= 400:
        raise response
    return response


async def index(request: web.Request) -> web.FileResponse:
    return web.FileResponse(request.app[WEB_ROOT_KEY] / "index.html")


async def health(request: web.Request) -> web.Response:
    rooms = request.app[ROOMS_KEY]
    return web.json_response({"status": "ok", "rooms": len(rooms.rooms),
                              "captions": rooms.captions_status.enabled})


WEB_ROOT_KEY: web.AppKey[Path] = web.AppKey("web_root", Path)


def create_app(config: ServerConfig | None = None, observers: list[RoomObserver] | None = None) -> web.Application:
    config = config or ServerConfig()
    aiortc_adapter.check_compatibility()
    aiortc_adapter.set_ice_host_addresses(config.ice_hosts or None)
    app = web.Application(middlewares=[security_headers])
    rooms = Rooms(config, list(observers or []))
    app[ROOMS_KEY] = rooms
    web_root = Path(config.web_root) if config.web_root else WEB_ROOT
    app[WEB_ROOT_KEY] = web_root
    app.router.add_get("/", index)
    app.router.add_get("/ws", websocket_handler)
    app.router.add_get("/healthz", health)
    app.router.add_static("/static/", web_root / "static", show_index=False)

    async def close_rooms(app: web.Application) -> None:
        await rooms.close()

    app.on_shutdown.append(close_rooms)
    return app
