"""When the process runs out of file descriptors, the log gets one line about it (not a traceback per
refused connection) and the server serves again as soon as descriptors are free."""

from __future__ import annotations

import asyncio
import resource
import sys
import time
from pathlib import Path

import aiohttp

from tests.support.serve import ROOT, free_port, open_rooms_settings, text

DESCRIPTORS = 160  # the whole process: Python, aiohttp and the listener use about 30 of them


def low_descriptor_limit() -> None:
    resource.setrlimit(resource.RLIMIT_NOFILE, (DESCRIPTORS, DESCRIPTORS))


async def test_running_out_of_descriptors_logs_once_and_recovers(tmp_path: Path) -> None:
    port, log = free_port(), tmp_path / "server.log"
    with log.open("wb") as out:
        server = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "peerwell.cli", "serve", "--config", str(open_rooms_settings(tmp_path)),
            "--port", str(port), "--no-captions", "--sockets-per-address", "1000", cwd=ROOT, stdout=out, stderr=out,
            preexec_fn=low_descriptor_limit)
    held: list[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = []
    try:
        deadline = time.monotonic() + 60
        while "peerwell is running" not in text(log):
            assert server.returncode is None and time.monotonic() < deadline, text(log)
            await asyncio.sleep(0.1)
        request = f"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\r\n".encode()
        for i in range(DESCRIPTORS + 40):  # keep-alive connections, each holding a descriptor
            reader, writer = await asyncio.open_connection("127.0.0.1", port, local_addr=(f"127.0.1.{i % 200 + 1}", 0))
            writer.write(request)
            held.append((reader, writer))
        await asyncio.sleep(2.5)  # the server retries accept() every second meanwhile
        for _, writer in held:
            writer.close()
        held.clear()
        await asyncio.sleep(1.5)
        async with aiohttp.ClientSession() as http, http.get(f"http://127.0.0.1:{port}/healthz") as health:
            assert health.status == 200
    finally:
        for _, writer in held:
            writer.close()
        server.terminate()
        await asyncio.wait_for(server.wait(), 15)
    output = text(log)
    assert "Traceback" not in output, output[-3000:]
    assert output.count("file descriptors") == 1, output[-3000:]
    assert len(output.splitlines()) < 20, output[-3000:]
