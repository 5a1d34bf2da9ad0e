"""Behind a real Caddy (the documented reverse proxy) every visitor is still themselves: with
`--trusted-proxy 127.0.0.1` peerwell believes Caddy's X-Forwarded-For, so per-address limits and a removal
ban hit only the client they are about; a peer that is not trusted is its own address whatever it claims.

Clients stand at different loopback addresses (127.0.0.2, 127.0.0.3, ...) and connect to Caddy on
127.0.0.1; Caddy writes the address it saw into X-Forwarded-For (it ignores one sent by an untrusted client)."""

from __future__ import annotations

import asyncio
import os
import shutil
import sys
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import pytest

from sfu import aiortc_adapter
from sfu.contrib.client import JoinError, RoomClient
from sfu.limits.proxies import TrustedProxies
from tests.support.serve import ROOT, SECRET, free_port, text

GROUP = f"""
[server]
allow_adhoc_rooms = true

[[group]]
slug = "circle"
name = "Circle"
agreement = "Be kind."
lobby = false
facilitator_secret = "{SECRET}"
"""


@dataclass
class Deployment:
    direct: int  # peerwell's own port
    proxy: int  # Caddy's

    @property
    def ws(self) -> str:
        return f"ws://127.0.0.1:{self.proxy}/ws"


@pytest.fixture
async def behind_caddy(tmp_path: Path) -> AsyncIterator[Deployment]:
    assert shutil.which("caddy"), "Caddy is not installed (Debian package caddy; .ci/run installs it)"
    deployment = Deployment(free_port(), free_port())
    config = tmp_path / "peerwell.toml"
    config.write_text(GROUP)
    caddyfile = tmp_path / "Caddyfile"
    caddyfile.write_text(f"{{\n\tadmin off\n\tauto_https off\n}}\n\nhttp://127.0.0.1:{deployment.proxy} {{\n"
                         f"\treverse_proxy 127.0.0.1:{deployment.direct}\n}}\n")
    log = tmp_path / "server.log"
    env = {**os.environ, "XDG_DATA_HOME": str(tmp_path / "data"), "XDG_CONFIG_HOME": str(tmp_path / "config")}
    with log.open("wb") as out:
        server = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "peerwell.cli", "serve", "--config", str(config), "--port", str(deployment.direct),
            "--ice-host", "127.0.0.1", "--no-captions", "--reconnect-grace", "0", "--trusted-proxy", "127.0.0.1",
            "--sockets-per-address", "2", cwd=ROOT, stdout=out, stderr=out)
        proxy = await asyncio.create_subprocess_exec(
            "caddy", "run", "--config", str(caddyfile), "--adapter", "caddyfile", stdout=out, stderr=out, env=env)
    try:
        deadline = time.monotonic() + 60
        while "peerwell is running" not in text(log):
            assert server.returncode is None and time.monotonic() < deadline, text(log)
            await asyncio.sleep(0.1)
        async with aiohttp.ClientSession() as http:
            while True:
                try:
                    async with http.get(f"http://127.0.0.1:{deployment.proxy}/healthz") as health:
                        if health.status == 200:
                            break
                except aiohttp.ClientError:
                    pass
                assert proxy.returncode is None and time.monotonic() < deadline, text(log)
                await asyncio.sleep(0.2)
        yield deployment
    finally:
        for process in (proxy, server):
            process.terminate()
            await asyncio.wait_for(process.wait(), 15)
    assert "Traceback" not in text(log), text(log)[-3000:]


def client_at(address: str) -> aiohttp.ClientSession:
    return aiohttp.ClientSession(connector=aiohttp.TCPConnector(local_addr=(address, 0)))


async def refused_status(http: aiohttp.ClientSession, url: str, **kwargs: object) -> int | None:
    try:
        ws = await http.ws_connect(url, **kwargs)  # type: ignore[arg-type]
    except aiohttp.WSServerHandshakeError as refused:
        return refused.status
    await ws.close()
    return None


async def test_clients_behind_caddy_are_limited_separately(behind_caddy: Deployment) -> None:
    async with client_at("127.0.0.2") as first, client_at("127.0.0.3") as second:
        held = [await first.ws_connect(behind_caddy.ws) for _ in range(2)]
        # A forged header is no way out: Caddy replaces what an untrusted client says with what it saw.
        assert await refused_status(first, behind_caddy.ws, headers={"X-Forwarded-For": "192.0.2.9"}) == 429
        async with second.ws_connect(behind_caddy.ws) as other:  # someone else behind the same proxy
            await other.send_json({"type": "join", "room": "circle", "name": "Other", "accept_agreement": True})
            assert (await other.receive_json(timeout=10))["type"] == "joined"
        for ws in held:
            await ws.close()


async def test_an_untrusted_peers_forwarded_for_is_ignored(behind_caddy: Deployment) -> None:
    direct = f"ws://127.0.0.1:{behind_caddy.direct}/ws"
    async with client_at("127.0.0.4") as liar:
        held = [await liar.ws_connect(direct, headers={"X-Forwarded-For": f"198.51.100.{i}"}) for i in range(2)]
        assert await refused_status(liar, direct, headers={"X-Forwarded-For": "198.51.100.7",
                                                          "Forwarded": "for=198.51.100.8"}) == 429
        for ws in held:
            await ws.close()


async def test_a_removal_behind_caddy_bans_only_the_removed_client(behind_caddy: Deployment) -> None:
    aiortc_adapter.set_ice_host_addresses(["127.0.0.1"])
    url = behind_caddy.ws
    facilitator = RoomClient(url, "circle", "Facilitator", secret=SECRET, local_address="127.0.0.5")
    removed = RoomClient(url, "circle", "Removed", local_address="127.0.0.2")
    clients = [facilitator, removed]
    try:
        await facilitator.join()
        await removed.join()
        deadline = time.monotonic() + 10
        while facilitator.channel is None or facilitator.channel.readyState != "open":
            assert time.monotonic() < deadline
            await asyncio.sleep(0.05)
        facilitator.send_channel({"type": "remove", "participant_id": removed.participant_id})
        while not any(s.get("type") == "bye" for s in removed.signals):
            assert time.monotonic() < deadline, removed.signals
            await asyncio.sleep(0.05)
        newcomer = RoomClient(url, "circle", "Newcomer", local_address="127.0.0.3")  # a fresh page elsewhere
        clients.append(newcomer)
        await newcomer.join()
        again = RoomClient(url, "circle", "Again", local_address="127.0.0.2")  # the removed person's address
        clients.append(again)
        with pytest.raises(JoinError) as refused:
            await again.join()
        assert refused.value.code == "removed"
    finally:
        for client in clients:
            await client.close()


def test_the_rightmost_untrusted_hop_is_the_client() -> None:
    proxies = TrustedProxies(["127.0.0.1", "10.0.0.0/8"])
    assert proxies.client("127.0.0.1", ["198.51.100.1, 203.0.113.5, 10.1.2.3"]) == "203.0.113.5"
    assert proxies.client("127.0.0.1", ["198.51.100.1", "203.0.113.5:4711"]) == "203.0.113.5"  # two headers
    assert proxies.client("::ffff:127.0.0.1", ["[2001:db8::1]:80"]) == "2001:db8::1"
    assert proxies.client("127.0.0.1", []) == "127.0.0.1"  # no header: the proxy itself
    assert proxies.client("127.0.0.1", ["198.51.100.1, unknown"]) == "127.0.0.1"  # unreadable: go no further
    assert proxies.client("192.0.2.7", ["198.51.100.1"]) == "192.0.2.7"  # not a trusted peer
    forwarded = TrustedProxies(["127.0.0.1"], "forwarded")
    assert forwarded.client("127.0.0.1", ['for=198.51.100.1, for="[2001:db8::2]:4711";proto=https']) == "2001:db8::2"
    assert forwarded.client("127.0.0.1", ["by=127.0.0.1"]) == "127.0.0.1"
