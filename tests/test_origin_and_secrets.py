"""Foreign pages and secret guessing: /ws refuses another site's Origin; bad facilitator secrets lock out
the address (and, from many addresses, the room) before any comparison is made."""

from __future__ import annotations

from collections.abc import AsyncIterator

import aiohttp
import pytest

from sfu.config import ServerConfig
from sfu.limits import secret_guard
from sfu.limits.secret_guard import SecretGuard
from sfu.room.groups import Group, GroupsConfig, ServerSettings
from tests.conftest import RunningServer, start_server

SECRET = "the-real-facilitator-secret"


@pytest.fixture
async def guarded() -> AsyncIterator[RunningServer]:
    group = Group(slug="circle", name="Circle", agreement="Be kind.", lobby=False, facilitator_secret=SECRET)
    config = ServerConfig(ice_hosts=("127.0.0.1",), reconnect_grace=0, allowed_origins=("https://portal.example",),
                          groups=GroupsConfig(server=ServerSettings(allow_adhoc_rooms=False), groups=(group,)))
    runner, running = await start_server(config)
    yield running
    await runner.cleanup()


async def joined_with(http: aiohttp.ClientSession, server: RunningServer, headers: dict[str, str] | None = None,
                      **extra: object) -> dict:
    async with http.ws_connect(server.ws_url, headers=headers) as ws:
        await ws.send_json({"type": "join", "room": "circle", "name": "Someone", "accept_agreement": True, **extra})
        return await ws.receive_json(timeout=10)


async def test_websocket_origin_must_be_the_servers_own_or_allowed(guarded: RunningServer) -> None:
    async with aiohttp.ClientSession() as http:
        own = f"http://127.0.0.1:{guarded.port}"
        for origin in (own, "https://portal.example", None):
            headers = {"Origin": origin} if origin else None
            assert (await joined_with(http, guarded, headers))["type"] == "joined", origin
        for origin in ("https://evil.example", f"http://127.0.0.1:{guarded.port + 1}", "null",
                       "https://portal.example.evil.example"):
            with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
                await joined_with(http, guarded, {"Origin": origin})
            assert refused.value.status == 403, origin
        async with http.get(f"{own}/ws", headers={"Origin": "https://evil.example", "Upgrade": "websocket",
                                                  "Connection": "Upgrade", "Sec-WebSocket-Version": "13",
                                                  "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ=="}) as response:
            assert response.status == 403 and (await response.json()) == {"error": "origin-not-allowed"}


async def test_bad_secrets_lock_the_address_out_even_for_the_right_secret(guarded: RunningServer) -> None:
    async with aiohttp.ClientSession() as http:
        codes = [(await joined_with(http, guarded, secret=f"guess-{i}")).get("code")
                 for i in range(secret_guard.ADDRESS_ATTEMPTS + 1)]
        assert codes == ["bad-secret"] * secret_guard.ADDRESS_ATTEMPTS + ["secret-locked"]
        locked = await joined_with(http, guarded, secret=SECRET)
        assert locked["type"] == "error" and locked["code"] == "secret-locked" and " s" in locked["message"]
        # Joining as a participant (no secret) is not affected.
        assert (await joined_with(http, guarded))["type"] == "joined"
    assert "circle" not in guarded.rooms.rooms  # refused joins leave no room behind


def test_room_lockout_from_many_addresses_and_refill() -> None:
    now = [0.0]
    guard = SecretGuard(clock=lambda: now[0])
    for i in range(secret_guard.ROOM_ATTEMPTS):
        assert guard.locked_for(f"10.0.0.{i}", "circle") is None
        guard.failed(f"10.0.0.{i}", "circle")
    wait = guard.locked_for("10.9.9.9", "circle")  # a fresh address, the same room
    assert wait is not None and 0 < wait <= secret_guard.ROOM_REFILL_SECONDS
    assert guard.locked_for("10.9.9.9", "elsewhere") is None
    now[0] += secret_guard.ROOM_REFILL_SECONDS
    assert guard.locked_for("10.9.9.9", "circle") is None
    for _ in range(secret_guard.ADDRESS_ATTEMPTS):
        guard.failed("10.1.1.1", f"room-{now[0]}")
        now[0] += 1
    assert guard.locked_for("10.1.1.1", "any-room") is not None  # the address, whatever room it tries
    now[0] += secret_guard.ADDRESS_REFILL_SECONDS
    assert guard.locked_for("10.1.1.1", "any-room") is None
