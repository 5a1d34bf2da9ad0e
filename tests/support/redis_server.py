"""A real redis-server (Debian's) on loopback for cluster tests: no persistence, a free port, stopped after."""

from __future__ import annotations

import asyncio
import shutil
import time
from pathlib import Path

from tests.support.serve import free_port


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
