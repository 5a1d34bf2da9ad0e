"""Members who can reach the server only through a TURN relay still get media both ways.

Topology, built by the test (198.18.0.0/15, nothing else):

    this process (client)  198.18.1.2 ──veth── 198.18.1.1  TURN host (coturn; signaling forwarder)
                                                198.18.2.1 ──veth── 198.18.2.2  server (peerwell serve)

The client has no route to 198.18.2.0/24 and the server none to 198.18.1.0/24; the TURN namespace does
not forward IP packets (a fresh namespace has ip_forward=0), so media can only flow through coturn's
relay, which allocates on 198.18.2.1. Signaling reaches the server through a TCP forwarder on the TURN
host, like a reverse proxy at the edge. Clients use the credentials the server handed out in `joined`.
"""

from __future__ import annotations

import asyncio
import errno
import re
import secrets
import shutil
import socket
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import aioice.stun
import aioice.turn
import pytest
from playwright.async_api import async_playwright

from sfu.contrib.client import RoomClient, encode_opus_clip, encode_vp8_clip, read_trailer
from sfu.turn import rest_credentials
from tests.support.browser import CHROMIUM, TILE_STATE, chromium_args, join, new_page, poll, uncaught, write_tone_wav
from tests.support.netns import Namespace, link, require_private_namespace, start_forwarder, unlink
from tests.support.serve import open_rooms_settings

pytestmark = pytest.mark.topology

CLIENT, TURN_CLIENT_SIDE, TURN_SERVER_SIDE, SERVER = "198.18.1.2", "198.18.1.1", "198.18.2.1", "198.18.2.2"
TURN_PORT, HTTP_PORT, EDGE_PORT = 3478, 8080, 8081
CLIENT_TURN_UDP = f"turn:{TURN_CLIENT_SIDE}:{TURN_PORT}?transport=udp"


@dataclass
class Edge:
    secret: str
    server_flags: list[str]
    turn: Namespace
    server: Namespace
    logs: Path

    @property
    def ws_url(self) -> str:
        return f"ws://{TURN_CLIENT_SIDE}:{EDGE_PORT}/ws"

    def server_log(self) -> str:
        return (self.logs / "server.log").read_text(errors="replace")


def wait_for_line(log: Path, pattern: str, timeout: float = 90.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if log.exists() and re.search(pattern, log.read_text(errors="replace")):
            return
        time.sleep(0.1)
    raise AssertionError(f"{pattern!r} never appeared in {log}:\n{log.read_text(errors='replace')[-3000:]}")


def start_coturn(namespace: Namespace, secret: str, logs: Path) -> None:
    namespace.spawn([
        "turnserver", "-n", "--no-cli", "--no-tls", "--no-dtls", "--fingerprint",
        f"--listening-ip={TURN_CLIENT_SIDE}", f"--listening-ip={TURN_SERVER_SIDE}", f"--listening-port={TURN_PORT}",
        f"--relay-ip={TURN_SERVER_SIDE}", "--min-port=49152", "--max-port=49300",
        "--use-auth-secret", f"--static-auth-secret={secret}", "--realm=peerwell.test",
        f"--pidfile={logs / 'turnserver.pid'}", f"--userdb={logs / 'turndb'}", "--log-file=stdout", "--simple-log",
    ], logs / "coturn.log")
    wait_for_line(logs / "coturn.log", r"(?i)relay\s+198\.18\.2\.1|listener opened|IPv4\. UDP listener", 30)


@pytest.fixture
def edge(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Edge]:
    extra_flags: list[str] = getattr(request, "param", [])
    require_private_namespace()
    assert shutil.which("turnserver"), "coturn is not installed (Debian package coturn; .ci/run installs it)"
    turn, server = Namespace("turn"), Namespace("server")
    try:
        link(None, CLIENT, turn, TURN_CLIENT_SIDE, "pwc")
        link(server, SERVER, turn, TURN_SERVER_SIDE, "pws")
        secret = secrets.token_urlsafe(24)
        start_coturn(turn, secret, tmp_path)
        start_forwarder(turn, (TURN_CLIENT_SIDE, EDGE_PORT), (SERVER, HTTP_PORT), tmp_path / "forwarder.log")
        # The secret goes through the environment, as documented (a flag would show in `ps`).
        server.spawn([sys.executable, "-m", "peerwell.cli", "serve", "--config", str(open_rooms_settings(tmp_path)),
                      "--host", SERVER, "--port", str(HTTP_PORT),
                      "--no-captions", "--turn-ttl", "600", "--reconnect-grace", "0",
                      *([] if "--turn" in extra_flags else ["--turn", CLIENT_TURN_UDP]), *extra_flags],
                     tmp_path / "server.log", env={"PEERWELL_TURN_SECRET": secret})
        wait_for_line(tmp_path / "forwarder.log", "forwarding")
        wait_for_line(tmp_path / "server.log", "peerwell is running")
        yield Edge(secret, extra_flags, turn, server, tmp_path)
    finally:
        server.close()
        turn.close()
        unlink("pwc")


def test_client_has_no_route_to_the_server(edge: Edge) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe, pytest.raises(OSError) as refused:
        probe.connect((SERVER, 9))
        probe.send(b"x")
    assert refused.value.errno == errno.ENETUNREACH


SERVER_RELAY = ["--turn-server-url", f"turn:{TURN_SERVER_SIDE}:{TURN_PORT}?transport=udp"]
# Members whose network lets only TCP out reach the relay over TCP; the relayed leg to the server is UDP.
TCP_ONLY = ["--turn", f"turn:{TURN_CLIENT_SIDE}:{TURN_PORT}?transport=tcp"]


@pytest.mark.parametrize("edge", [[], SERVER_RELAY, TCP_ONLY],
                         ids=["server-host-candidates", "server-relayed-too", "members-over-tcp"], indirect=True)
async def test_relay_only_members_publish_and_receive_through_coturn(edge: Edge) -> None:
    video, audio = encode_vp8_clip(frames=60), encode_opus_clip(seconds=2.0)
    alice = RoomClient(edge.ws_url, "relay-room", "Alice", video_frames=video, audio_frames=audio, tag=1,
                       ice_transport_policy="relay")
    bob = RoomClient(edge.ws_url, "relay-room", "Bob", video_frames=video, audio_frames=audio, tag=2,
                     ice_transport_policy="relay")
    try:
        await alice.join(timeout=30)
        await bob.join(timeout=30)
        for client in (alice, bob):
            (server,) = [s for s in client.joined["ice_servers"] if s["urls"][0].startswith("turn:")]
            expiry, user = server["username"].split(":")
            assert user == client.participant_id, "credentials name the participant id, never the name"
            assert 590 <= int(expiry) - time.time() <= 601
            assert server["credential"] == rest_credentials(edge.secret, user, int(expiry))[1]
            offered = re.findall(r"a=candidate:\S+ \d+ udp \d+ (\S+) \d+ typ (\w+)", client.pc.localDescription.sdp)
            assert offered and all(kind == "relay" and host == TURN_SERVER_SIDE for host, kind in offered)
            answered = set(re.findall(r"a=candidate:\S+ \d+ udp \d+ \S+ \d+ typ (\w+)",
                                      client.pc.remoteDescription.sdp))
            # The server's own agent offers a relayed candidate only when told how to reach the relay.
            assert ("relay" in answered) == ("--turn-server-url" in edge.server_flags)

        async def both_receive() -> None:
            while not (alice.count_from(bob.participant_id, "video") > 20
                       and bob.count_from(alice.participant_id, "video") > 20
                       and alice.count_from(bob.participant_id, "audio") > 50
                       and bob.count_from(alice.participant_id, "audio") > 50):
                await asyncio.sleep(0.1)

        await asyncio.wait_for(both_receive(), 40)
        # Each member's relay connection used the transport its URL named.
        tcp = edge.turn.run("ss", "-Htn", "state", "established", f"( sport = :{TURN_PORT} )")
        assert len(tcp.splitlines()) == (2 if edge.server_flags == TCP_ONLY else 0), tcp
        # The trailer each frame carries proves these are the other member's own frames.
        tags = {read_trailer(f.data)[0] for f in bob.frames_from(alice.participant_id, "video")}  # type: ignore[index]
        assert tags == {1}
    finally:
        await alice.close()
        await bob.close()
    assert "Alice" not in edge.server_log() and "Bob" not in edge.server_log()


async def allocate(username: str, password: str) -> tuple[str, int]:
    transport, _ = await aioice.turn.create_turn_endpoint(
        asyncio.DatagramProtocol, server_addr=(TURN_CLIENT_SIDE, TURN_PORT), username=username, password=password)
    try:
        return transport.get_extra_info("sockname")
    finally:
        transport.close()


async def test_coturn_accepts_fresh_credentials_and_refuses_expired_or_forged_ones(edge: Edge) -> None:
    now = int(time.time())
    relayed = await allocate(*rest_credentials(edge.secret, "someone", now + 60))
    assert relayed[0] == TURN_SERVER_SIDE
    for username, password in (rest_credentials(edge.secret, "someone", now - 5),  # expired
                               rest_credentials("not-the-secret", "someone", now + 60)):  # forged
        with pytest.raises(aioice.stun.TransactionFailed) as refused:
            await allocate(username, password)
        assert refused.value.response.attributes["ERROR-CODE"][0] == 401


FORCE_RELAY = """
(() => {
  // What a browser configured with iceTransportPolicy "relay" does; the web client itself passes the
  // ice_servers from `joined` unchanged.
  const Original = window.RTCPeerConnection;
  function RelayOnly(config, ...rest) {
    return new Original({ ...(config || {}), iceTransportPolicy: "relay" }, ...rest);
  }
  RelayOnly.prototype = Original.prototype;
  Object.setPrototypeOf(RelayOnly, Original);
  window.RTCPeerConnection = RelayOnly;
})();
"""

SELECTED_CANDIDATES = """async () => {
  const stats = await window.peerwell.call.pc.getStats();
  let result = null;
  stats.forEach((s) => {
    if (s.type === "transport" && s.selectedCandidatePairId) {
      const pair = stats.get(s.selectedCandidatePairId);
      result = { local: stats.get(pair.localCandidateId).candidateType,
                 remote: stats.get(pair.remoteCandidateId).address };
    }
  });
  return result;
}"""


@pytest.mark.browser
async def test_relay_only_browsers_meet_through_coturn(edge: Edge) -> None:
    base = f"http://{TURN_CLIENT_SIDE}:{EDGE_PORT}"
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(
            executable_path=CHROMIUM,
            # Camera and microphone need a secure origin; this test origin is plain HTTP on a test address.
            args=[*chromium_args(write_tone_wav(edge.logs / "tone.wav")),
                  f"--unsafely-treat-insecure-origin-as-secure={base}"])
        try:
            pages = []
            for name in ("Alice", "Bob"):
                page = await new_page(browser, base)
                await page.add_init_script(FORCE_RELAY)
                await join(page, name, room="relay-browsers", mic=True, camera=True)
                pages.append(page)
            alice, bob = pages
            await poll(bob, TILE_STATE, "Alice", lambda v: v is not None and v["width"] > 0 and v["time"] > 0,
                       timeout=40)
            await poll(alice, TILE_STATE, "Bob", lambda v: v is not None and v["width"] > 0 and v["time"] > 0,
                       timeout=40)
            for page in pages:
                selected = await poll(page, SELECTED_CANDIDATES, None, lambda v: v is not None)
                assert selected == {"local": "relay", "remote": SERVER}
            assert not uncaught(alice, bob)
        finally:
            await browser.close()
