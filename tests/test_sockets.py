"""Sockets cannot pile up: one that sends no `join` is closed, one address holds a bounded number (the next
gets HTTP 429 while other addresses still join), a frame trickled in byte by byte closes its socket, and no
response names the server's software version."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import time
from collections.abc import AsyncIterator

import aiohttp
import pytest

from sfu.config import ServerConfig
from tests.conftest import RunningServer, start_server, wait_for

JOIN = {"type": "join", "name": "Ada", "accept_agreement": True}


@pytest.fixture
async def strict() -> AsyncIterator[RunningServer]:
    """Limits lowered so each test takes about a second."""
    runner, running = await start_server(ServerConfig(ice_hosts=("127.0.0.1",), reconnect_grace=0, join_timeout=1.0,
                                                      sockets_per_address=3, frame_timeout=1.0))
    yield running
    await runner.cleanup()


def session_from(address: str) -> aiohttp.ClientSession:
    return aiohttp.ClientSession(connector=aiohttp.TCPConnector(local_addr=(address, 0)))


async def test_a_socket_that_does_not_join_is_closed(strict: RunningServer) -> None:
    async with session_from("127.0.0.1") as http, http.ws_connect(strict.ws_url) as idle:
        started = time.monotonic()
        message = await idle.receive(timeout=5)
        assert message.type == aiohttp.WSMsgType.CLOSE and idle.close_code == 1008, message
        assert 0.9 < time.monotonic() - started < 3
        await wait_for(lambda: not strict.rooms.sessions and not strict.rooms.sockets.held("127.0.0.1"), 2)


async def test_a_refused_join_gives_another_timeout_and_a_seat_stops_the_clock(strict: RunningServer) -> None:
    async with session_from("127.0.0.1") as http:
        async with http.ws_connect(strict.ws_url) as refused, http.ws_connect(strict.ws_url) as seated:
            await asyncio.sleep(0.6)
            await refused.send_json({**JOIN, "room": "no-agreement", "accept_agreement": False})
            assert (await refused.receive_json(timeout=5))["code"] == "agreement-required"
            await seated.send_json({**JOIN, "room": "kept"})
            assert (await seated.receive_json(timeout=5))["type"] == "joined"
            await asyncio.sleep(0.7)  # past the first timeout: the refused join restarted the clock
            assert not refused.closed
            closing = await refused.receive(timeout=5)
            assert closing.type == aiohttp.WSMsgType.CLOSE and refused.close_code == 1008
            await asyncio.sleep(0.5)
            assert not seated.closed and len(strict.rooms.seats) == 1


async def test_one_address_gets_429_beyond_its_sockets_while_another_still_joins(strict: RunningServer) -> None:
    async with session_from("127.0.0.1") as crowd, session_from("127.0.0.2") as other:
        held = [await crowd.ws_connect(strict.ws_url) for _ in range(3)]
        with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
            await crowd.ws_connect(strict.ws_url)
        assert refused.value.status == 429
        async with crowd.get(strict.ws_url.replace("ws://", "http://"), headers={
                "Upgrade": "websocket", "Connection": "Upgrade", "Sec-WebSocket-Version": "13",
                "Sec-WebSocket-Key": base64.b64encode(os.urandom(16)).decode()}) as response:
            assert response.status == 429 and await response.json() == {"error": "too-many-connections"}
            assert response.headers["Retry-After"]
        async with other.ws_connect(strict.ws_url) as elsewhere:
            await elsewhere.send_json({**JOIN, "room": "busy"})
            assert (await elsewhere.receive_json(timeout=5))["type"] == "joined"
        await held[0].close()
        async with crowd.ws_connect(strict.ws_url) as again:  # a closed socket frees its place at once
            await again.send_json({**JOIN, "room": "busy", "name": "Bo"})
            assert (await again.receive_json(timeout=5))["type"] == "joined"
        for ws in held:
            await ws.close()


def masked_frame(payload: bytes, opcode: int = 0x1, fin: bool = True) -> bytes:
    mask = os.urandom(4)
    assert len(payload) < 126
    header = bytes([(0x80 if fin else 0) | opcode, 0x80 | len(payload)]) + mask
    return header + bytes(b ^ mask[i % 4] for i, b in enumerate(payload))


async def raw_socket(server: RunningServer) -> tuple[asyncio.StreamReader, asyncio.StreamWriter, bytes]:
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    key = base64.b64encode(os.urandom(16)).decode()
    writer.write(f"GET /ws HTTP/1.1\r\nHost: 127.0.0.1:{server.port}\r\nUpgrade: websocket\r\n"
                 f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n".encode())
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
    assert head.startswith(b"HTTP/1.1 101"), head
    return reader, writer, head


async def closed_within(reader: asyncio.StreamReader, seconds: float) -> bool:
    try:
        async with asyncio.timeout(seconds):
            while await reader.read(4096):
                pass
    except TimeoutError:
        return False
    except ConnectionError:
        pass
    return True


async def trickle(writer: asyncio.StreamWriter, data: bytes, reader: asyncio.StreamReader) -> float:
    """Send `data` a byte every 0.2 s; seconds until the server closed the connection (or all was sent)."""
    started = time.monotonic()
    for byte in data:
        if reader.at_eof():
            break
        try:
            writer.write(bytes([byte]))
            await writer.drain()
        except ConnectionError:
            break
        await asyncio.sleep(0.2)
    return time.monotonic() - started


async def test_a_frame_sent_byte_by_byte_closes_even_a_joined_socket(strict: RunningServer) -> None:
    reader, writer, head = await raw_socket(strict)
    assert b"Server: peerwell\r\n" in head
    writer.write(masked_frame(json.dumps({**JOIN, "room": "slow"}).encode()))  # a whole frame: fine
    await writer.drain()
    assert b'"joined"' in await asyncio.wait_for(reader.read(65536), 5)
    assert strict.rooms.seats
    chat = masked_frame(json.dumps({"type": "leave"}).encode())
    elapsed = await asyncio.wait_for(asyncio.gather(trickle(writer, chat, reader), closed_within(reader, 4)), 10)
    assert elapsed[1], "the socket stayed open"
    assert elapsed[0] < 2.5, elapsed
    writer.close()


async def test_a_fragmented_message_that_never_ends_closes_its_socket(strict: RunningServer) -> None:
    """Each fragment arrives whole, and quickly; the message they make never finishes."""
    reader, writer, _ = await raw_socket(strict)
    writer.write(masked_frame(json.dumps({**JOIN, "room": "fragments"}).encode()))  # joined: no join timeout
    await writer.drain()
    assert b'"joined"' in await asyncio.wait_for(reader.read(65536), 5)
    writer.write(masked_frame(b'{"type": ', fin=False))
    await writer.drain()
    started = time.monotonic()
    closed = False
    for _ in range(20):
        await asyncio.sleep(0.2)
        try:
            writer.write(masked_frame(b" ", opcode=0x0, fin=False) + masked_frame(b"", opcode=0xA))  # and a pong
            await writer.drain()
        except ConnectionError:
            closed = True
            break
        if reader.at_eof() or await closed_within(reader, 0.01):
            closed = True
            break
    assert closed and time.monotonic() - started < 2.5
    writer.close()


async def test_no_software_version_in_the_server_header(strict: RunningServer) -> None:
    async with session_from("127.0.0.1") as http:
        for path in ("/", "/healthz", "/readyz", "/api/groups", "/static/app.js", "/no-such-page"):
            async with http.get(strict.http_url + path) as response:
                assert response.headers["Server"] == "peerwell", (path, response.headers.get("Server"))
        async with http.ws_connect(strict.ws_url) as ws:
            assert ws._response.headers["Server"] == "peerwell"
