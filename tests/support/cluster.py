"""Several nodes for tests: a real redis-server (Debian's) on loopback with no persistence, and `peerwell serve`
nodes that place rooms through it, each with its own port and ICE port range."""

from __future__ import annotations

import asyncio
import re
import shutil
import time
from pathlib import Path

from tests.support.serve import free_port, open_rooms_settings, start_serve, text


def have_redis() -> bool:
    return shutil.which("redis-server") is not None


class RedisServer:
    def __init__(self, log: Path) -> None:
        self.log = log
        self.port = free_port()
        self.process: asyncio.subprocess.Process | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    async def start(self) -> None:
        with self.log.open("ab") as out:
            self.process = await asyncio.create_subprocess_exec(
                "redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
                "--daemonize", "no", stdout=out, stderr=out)
        deadline = time.monotonic() + 10
        while True:
            try:
                _, writer = await asyncio.open_connection("127.0.0.1", self.port)
                writer.close()
                return
            except OSError:
                assert self.process.returncode is None and time.monotonic() < deadline, self.log.read_text()
                await asyncio.sleep(0.05)

    async def stop(self) -> None:
        if self.process is not None and self.process.returncode is None:
            self.process.kill()
            await self.process.wait()


class Node:
    """One `peerwell serve --workers 1 --redis URL` process (no captions)."""

    def __init__(self, name: str, tmp_path: Path, redis: RedisServer, ice_ports: tuple[int, int],
                 settings: Path | None = None) -> None:
        self.port = free_port()
        self.log = tmp_path / f"{name}.log"
        self.redis = redis
        self.ice_ports = ice_ports
        self.settings = settings or open_rooms_settings(tmp_path)
        self.process: asyncio.subprocess.Process | None = None

    @property
    def ws(self) -> str:
        return f"ws://127.0.0.1:{self.port}/ws"

    @property
    def http(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def holds(self, sdp: str) -> bool:
        """Whether every host candidate in `sdp` (the server's answer or offer) is in this node's ICE range."""
        ports = candidate_ports(sdp)
        return bool(ports) and all(self.ice_ports[0] <= p <= self.ice_ports[1] for p in ports)

    async def start(self) -> None:
        self.process = await start_serve(
            ["--port", str(self.port), "--workers", "1", "--redis", self.redis.url, "--no-captions",
             "--ice-host", "127.0.0.1", "--ice-port-range", f"{self.ice_ports[0]}-{self.ice_ports[1]}",
             "--config", str(self.settings)], self.log)
        while "is ready at" not in text(self.log):
            await asyncio.sleep(0.05)

    async def stop(self) -> None:
        if self.process is not None and self.process.returncode is None:
            self.process.kill()
            await self.process.wait()


def candidate_ports(sdp: str) -> set[int]:
    return {int(m.group(1)) for m in re.finditer(r"a=candidate:\S+ \d+ udp \d+ \S+ (\d+) typ host", sdp)}
