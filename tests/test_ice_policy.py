"""Host candidates in a known UDP port range, offered at an announced address (sfu/aiortc_adapter/).

The namespace test builds: this process (client) 198.18.3.1 ──veth── 198.18.3.2 and 198.18.3.3 (server).
The server binds the wildcard and announces 198.18.3.3 only, as a server behind a 1:1 NAT announces its
public address: its SDP must carry 198.18.3.3 with ports from the range, media must flow to that
address, and no UDP port outside the range may be bound in the server's namespace.
"""

from __future__ import annotations

import asyncio
import logging
import re
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import aioice
import aioice.ice
import pytest

from sfu import aiortc_adapter
from sfu.aiortc_adapter import AdapterIncompatible, PortRange, check_compatibility, set_host_candidate_policy
from sfu.contrib.client import RoomClient, encode_opus_clip, encode_vp8_clip
from tests.support.netns import Namespace, link, require_private_namespace, udp_ports_bound, unlink
from tests.support.serve import open_rooms_settings

pytestmark = pytest.mark.topology

CLIENT, SERVER, ANNOUNCED = "198.18.3.1", "198.18.3.2", "198.18.3.3"
FIRST, LAST = 40000, 40009


@pytest.fixture(autouse=True)
def restore_aioice(monkeypatch: pytest.MonkeyPatch) -> None:
    """The policy patches aioice process-wide: put back whatever other tests had."""
    monkeypatch.setattr(aioice.ice, "get_host_addresses", aioice.ice.get_host_addresses)
    monkeypatch.setattr(aioice.ice.Connection, "get_component_candidates",
                        aioice.ice.Connection.get_component_candidates)


# --- the pin -------------------------------------------------------------------------------------

def problems() -> str:
    with pytest.raises(AdapterIncompatible) as info:
        check_compatibility()
    return str(info.value)


def test_gathering_that_no_longer_asks_for_host_addresses_fails_the_check(monkeypatch: pytest.MonkeyPatch) -> None:
    async def gather_candidates(self):  # type: ignore[no-untyped-def]
        self._local_candidates = await self.gather_everything()

    monkeypatch.setattr(aioice.ice.Connection, "gather_candidates", gather_candidates)
    assert "gather_candidates" in problems()


def test_component_gathering_that_changed_shape_fails_the_check(monkeypatch: pytest.MonkeyPatch) -> None:
    async def get_component_candidates(self, addresses, component):  # type: ignore[no-untyped-def]
        return []

    monkeypatch.setattr(aiortc_adapter.ice, "_original_get_component_candidates", get_component_candidates)
    message = problems()
    assert "get_component_candidates takes" in message and "relayed_candidate" in message


# --- in-process, on loopback ---------------------------------------------------------------------

def test_port_range_hands_out_ports_round_robin() -> None:
    ports = PortRange(40000, 40002)
    assert ports.candidates() == [40000, 40001, 40002]
    ports.taken(40000)
    assert ports.candidates() == [40001, 40002, 40000]
    ports.taken(40002)
    assert ports.candidates()[0] == 40000
    with pytest.raises(ValueError, match="1024-65535"):
        PortRange(80, 90)


async def test_connections_bind_inside_the_range_until_it_is_used_up(caplog: pytest.LogCaptureFixture) -> None:
    aiortc_adapter.set_ice_host_addresses(["127.0.0.1"])
    set_host_candidate_policy((41000, 41001), None)
    connections = [aioice.Connection(ice_controlling=True) for _ in range(3)]
    try:
        with caplog.at_level(logging.WARNING, logger="sfu.aiortc_adapter"):
            for connection in connections:
                await connection.gather_candidates()
        hosts = [[(c.host, c.port) for c in conn.local_candidates] for conn in connections]
        assert sorted(hosts[0] + hosts[1]) == [("127.0.0.1", 41000), ("127.0.0.1", 41001)]
        assert hosts[2] == []
        assert "every UDP port in 41000-41001 is in use" in caplog.text
        await connections[0].close()
        fresh = aioice.Connection(ice_controlling=True)
        await fresh.gather_candidates()
        assert [c.port for c in fresh.local_candidates] == [hosts[0][0][1]]  # the freed port, reused
        connections.append(fresh)
    finally:
        for connection in connections:
            await connection.close()
        set_host_candidate_policy(None, None)
    assert aioice.ice.Connection.get_component_candidates is aiortc_adapter.ice._original_get_component_candidates


# --- a server in its own namespace -----------------------------------------------------------------

@pytest.fixture
def server_ns(tmp_path: Path) -> Iterator[tuple[Namespace, Path]]:
    require_private_namespace()
    server = Namespace("server")
    try:
        link(None, CLIENT, server, SERVER, "pwi")
        server.run("ip", "addr", "add", f"{ANNOUNCED}/24", "dev", "pwib")
        server.spawn([sys.executable, "-m", "peerwell.cli", "serve", "--config", str(open_rooms_settings(tmp_path)),
                      "--host", SERVER, "--port", "8080",
                      "--no-captions", "--ice-port-range", f"{FIRST}-{LAST}", "--announced-address", ANNOUNCED,
                      "--reconnect-grace", "0"], tmp_path / "server.log")
        deadline = time.monotonic() + 90
        while "peerwell is running" not in (tmp_path / "server.log").read_text(errors="replace"):
            assert time.monotonic() < deadline, (tmp_path / "server.log").read_text(errors="replace")
            time.sleep(0.1)
        yield server, tmp_path / "server.log"
    finally:
        server.close()
        unlink("pwi")


async def test_server_offers_the_announced_address_and_binds_only_the_range(
        server_ns: tuple[Namespace, Path]) -> None:
    server, _ = server_ns
    aiortc_adapter.set_ice_host_addresses([CLIENT])  # this process's own candidates (the clients')
    video, audio = encode_vp8_clip(frames=60), encode_opus_clip(seconds=2.0)
    url = f"ws://{SERVER}:8080/ws"
    clients = [RoomClient(url, "nat-room", f"P{i}", video_frames=video, audio_frames=audio, tag=i) for i in (1, 2, 3)]
    try:
        for client in clients:
            await client.join(timeout=30)

        async def media_flows() -> None:
            while not all(c.count_from(o.participant_id, "video") > 10 for c in clients for o in clients if o is not c):
                await asyncio.sleep(0.1)

        await asyncio.wait_for(media_flows(), 40)
        for client in clients:
            candidates = re.findall(r"a=candidate:\S+ \d+ (\w+) \d+ (\S+) (\d+) typ (\w+)",
                                    client.pc.remoteDescription.sdp)
            assert candidates, "the server offered no candidate"
            for transport, host, port, kind in candidates:
                assert (transport.lower(), host, kind) == ("udp", ANNOUNCED, "host")
                assert FIRST <= int(port) <= LAST
        bound = udp_ports_bound(server)
        assert len(bound) == len(clients), f"one port per connection, got {sorted(bound)}"
        assert all(FIRST <= port <= LAST for port in bound), sorted(bound)
    finally:
        for client in clients:
            await client.close()
        aiortc_adapter.set_ice_host_addresses(None)
