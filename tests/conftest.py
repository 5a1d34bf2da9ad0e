"""Shared fixtures: a real peerwell server on 127.0.0.1 with a random port."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass

import pytest
from aiohttp import web

from sfu.app import create_app
from sfu.config import ServerConfig
from sfu.signaling import ROOMS_KEY, Rooms


@dataclass
class RunningServer:
    app: web.Application
    port: int

    @property
    def http_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/ws"

    @property
    def rooms(self) -> Rooms:
        return self.app[ROOMS_KEY]


async def start_server(config: ServerConfig | None = None, observers: list | None = None,
                       app: web.Application | None = None) -> tuple[web.AppRunner, RunningServer]:
    config = config or ServerConfig(ice_hosts=("127.0.0.1",), reconnect_grace=0)
    app = app or create_app(config, observers)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    return runner, RunningServer(app, port)


@pytest.fixture
async def server() -> AsyncIterator[RunningServer]:
    runner, running = await start_server()
    yield running
    await runner.cleanup()
