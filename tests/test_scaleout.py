"""Several nodes with one Redis (issue 15): real `peerwell serve` processes on loopback and a real redis-server.

A join arriving at node A for a room on node B is forwarded there and media flows straight to B; the directory
agrees on both; when B is SIGKILLed its room comes back on A and both members resume with media; with Redis
down, rooms that exist go on and new rooms get a clear error.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import re
import signal
import socket
import time
from asyncio.subprocess import Process
from pathlib import Path

import aiohttp
import psutil
import pytest
import redis.asyncio as aioredis

from sfu import aiortc_adapter
from sfu.contrib.client import JoinError, RoomClient, encode_opus_clip, encode_vp8_clip
from tests.support.cluster import Node, RedisServer, candidate_ports, have_redis
from tests.support.serve import LOBBY_GROUP, SECRET, free_port, open_rooms_settings, start_serve, text

pytestmark = pytest.mark.skipif(not have_redis(), reason="redis-server is not installed")


@functools.cache
def clips() -> tuple[list[bytes], list[bytes]]:
    return encode_vp8_clip(frames=30, width=320, height=240), encode_opus_clip(seconds=1.0)


def client(url: str, room: str, name: str, tag: int, resume: str | None = None,
           secret: str | None = None) -> RoomClient:
    video, audio = clips()
    return RoomClient(url, room, name, video_frames=video, audio_frames=audio, tag=tag, resume=resume,
                      keep_frames=False, secret=secret)


async def media_between(a: RoomClient, b: RoomClient, timeout: float = 10.0) -> None:
    """Video and audio from each to the other, counted after this call began."""
    def counts() -> tuple[int, ...]:
        return tuple(x.count_from(y.participant_id, kind) for x, y in ((a, b), (b, a)) for kind in ("video", "audio"))

    start = counts()
    deadline = time.monotonic() + timeout
    while not all(now >= then + 10 for now, then in zip(counts(), start, strict=True)):
        assert time.monotonic() < deadline, f"media did not flow both ways: {start} -> {counts()}"
        await asyncio.sleep(0.1)


async def get_json(url: str) -> tuple[int, dict]:
    async with aiohttp.ClientSession() as session, session.get(url) as response:
        return response.status, await response.json()


async def closed(c: RoomClient, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not (c._ws is not None and c._ws.closed):
        reader = c._reader
        assert time.monotonic() < deadline, ("the client's socket stayed open; reader "
                                             + (repr(reader.exception()) if reader and reader.done() else "running"))
        await asyncio.sleep(0.05)


async def test_join_forwarded_to_the_rooms_node_and_failover_after_sigkill(tmp_path: Path) -> None:
    """A lobby group: the facilitator, an admitted member, one who left and one still waiting."""
    aiortc_adapter.set_ice_host_addresses(["127.0.0.1"])
    settings = tmp_path / "circle.toml"
    settings.write_text(LOBBY_GROUP)
    redis = RedisServer(tmp_path / "redis.log")
    await redis.start()
    a = Node("a", tmp_path, redis, (42000, 42099), settings)
    b = Node("b", tmp_path, redis, (42100, 42199), settings)
    clients: list[RoomClient] = []
    store = aioredis.from_url(redis.url, decode_responses=True)

    async def admitted(name: str, tag: int) -> RoomClient:
        member = client(a.ws, "circle", name, tag)  # at A: forwarded to B, into the lobby
        clients.append(member)
        await member.join()
        await facilitator.send({"type": "admit", "participant_id": member.participant_id})
        await member.wait_admitted()
        await member.connect_media()
        return member

    try:
        await asyncio.gather(a.start(), b.start())
        facilitator = client(a.ws, "circle", "Ana", 1, secret=SECRET)
        clients.append(facilitator)
        await facilitator.join()
        # The room went to the less loaded node (CPU decides between two idle ones): call that one B.
        if a.holds(facilitator.pc.remoteDescription.sdp):
            a, b = b, a
        member = await admitted("Ben", 2)
        entry = next(m for m in member.signals if m["type"] == "admitted")
        assert [p["name"] for p in entry["participants"]] == ["Ana"]  # in B's room, though it joined at A
        lobby_token = next(m for m in member.signals if m["type"] == "joined")["resume"]
        assert "~" not in lobby_token, "a token from the lobby carries no failover ticket"
        assert "~" in entry["resume"] and member.joined["resume"] == entry["resume"]
        await media_between(facilitator, member)
        # Media goes straight to the room's node: both answers offer only B's ICE ports.
        for c in (facilitator, member):
            assert b.holds(c.pc.remoteDescription.sdp), candidate_ports(c.pc.remoteDescription.sdp)

        # The directory agrees on both nodes.
        for node in (a, b):
            status, group = await get_json(node.http + "/api/groups/circle")
            assert status == 200 and group["slug"] == "circle"
            status, _ = await get_json(node.http + "/api/groups/nobody-here")
            assert status == 404
        assert (await get_json(a.http + "/api/groups"))[1] == (await get_json(b.http + "/api/groups"))[1]

        # Someone who leaves for good before the failure cannot use their token to skip back in after it.
        leaver = await admitted("Cleo", 3)
        left_token = leaver.joined["resume"]
        await leaver.leave()
        deadline = time.monotonic() + 5
        while not await store.scard("peerwell:revoked:circle"):  # the room's node noted the place given up
            assert time.monotonic() < deadline, "leaving did not revoke the failover ticket"
            await asyncio.sleep(0.05)
        waiting = client(a.ws, "circle", "Dan", 4)  # still in the lobby when B dies
        clients.append(waiting)
        await waiting.join()

        # SIGKILL B mid-session: the sockets close (those through A too); the two in the room resume at A.
        tokens = {c.name: (c.participant_id, c.joined["resume"]) for c in (facilitator, member)}
        killed_at = time.monotonic()
        b.process.send_signal(signal.SIGKILL)
        await asyncio.gather(closed(facilitator), closed(member), closed(waiting))
        back = [client(a.ws, "circle", c.name, c.tag, resume=tokens[c.name][1]) for c in (facilitator, member)]
        clients += back
        for c in back:
            await c.join()  # no lobby: the failover ticket keeps the place
            assert c.participant_id == tokens[c.name][0], "the same place, not a new one"
        assert [c.joined["role"] for c in back] == ["facilitator", "participant"]
        await media_between(*back)
        print(f"failover: media back {time.monotonic() - killed_at:.1f} s after SIGKILL")
        assert time.monotonic() - killed_at < 10, "members resume with media within 10 s"
        for c in back:
            assert a.holds(c.pc.remoteDescription.sdp), candidate_ports(c.pc.remoteDescription.sdp)
        # Refused: a ticket used already, a place given up before the failure, a token from the lobby.
        for name, tag, token in (("Ana", 9, tokens["Ana"][1]), ("Cleo", 3, left_token),
                                 ("Dan", 4, waiting.joined["resume"])):
            again = client(a.ws, "circle", name, tag, resume=token)
            clients.append(again)
            with pytest.raises(JoinError) as refused:
                await again.join()
            assert refused.value.code == "resume-failed", name
        assert a.process.returncode is None
    finally:
        for c in clients:
            await c.close()
        await store.aclose()
        await asyncio.gather(a.stop(), b.stop())
        await redis.stop()


async def test_redis_down_existing_rooms_go_on_new_rooms_get_a_clear_error(tmp_path: Path) -> None:
    aiortc_adapter.set_ice_host_addresses(["127.0.0.1"])
    redis = RedisServer(tmp_path / "redis.log")
    await redis.start()
    a = Node("a", tmp_path, redis, (42200, 42299))
    clients: list[RoomClient] = []
    try:
        await a.start()
        first, second = client(a.ws, "tuesday", "Ana", 1), client(a.ws, "tuesday", "Ben", 2)
        clients += [first, second]
        await first.join()
        await second.join()
        await media_between(first, second)
        await redis.stop()
        await media_between(first, second)  # the room goes on
        third = client(a.ws, "tuesday", "Cleo", 3)  # joining a room this node holds still works
        clients.append(third)
        await third.join()
        await media_between(first, third)
        elsewhere = client(a.ws, "wednesday", "Dan", 4)
        clients.append(elsewhere)
        with pytest.raises(JoinError) as refused:
            await elsewhere.join()
        assert refused.value.code == "unavailable"
        status, body = await get_json(a.http + "/api/groups/thursday")
        assert status == 503 and body == {"error": "unavailable"}
        assert (await get_json(a.http + "/healthz"))[0] == 200
        await asyncio.sleep(1.5)  # a few failed heartbeats
        assert a.process.returncode is None
        assert "Redis unreachable" in text(a.log)
        # Redis comes back empty (it keeps nothing on disk): the node registers again, re-asserts its room and
        # the deployment secret, and new rooms open again.
        await redis.start()
        deadline = time.monotonic() + 10
        store = aioredis.from_url(redis.url, decode_responses=True)
        while not (await store.get("peerwell:room:tuesday") and await store.get("peerwell:secret")):
            assert time.monotonic() < deadline, "the node did not come back into Redis"
            await asyncio.sleep(0.1)
        await store.aclose()
        later = client(a.ws, "wednesday", "Dan", 4)
        clients.append(later)
        await later.join()
        assert "Traceback" not in text(a.log)
    finally:
        for c in clients:
            await c.close()
        await a.stop()
        await redis.stop()


def port_for_two_workers() -> int:
    """A free public port whose two node ports (port + 1, port + 2) are free too."""
    while True:
        port = free_port()
        try:
            for p in (port + 1, port + 2):
                with socket.socket() as s:
                    s.bind(("127.0.0.1", p))
            return port
        except OSError:
            continue


async def serve_two_workers(tmp_path: Path, redis: RedisServer, *flags: str) -> tuple[Process, int, Path]:
    """`peerwell serve --workers 2` on a public port whose node ports are free: (parent, port, its log)."""
    port = port_for_two_workers()
    log = tmp_path / "serve.log"
    server = await start_serve(["--port", str(port), "--workers", "2", "--redis", redis.url, "--no-captions",
                                "--ice-host", "127.0.0.1", *flags, "--config", str(open_rooms_settings(tmp_path))],
                               log)
    return server, port, log


async def until_logged(server: Process, log: Path, line: str, count: int, timeout: float = 60.0) -> None:
    """Until ``line`` appears ``count`` times in the log, while the parent runs."""
    deadline = time.monotonic() + timeout
    while text(log).count(line) < count:
        assert time.monotonic() < deadline and server.returncode is None, text(log)
        await asyncio.sleep(0.05)


async def test_workers_share_one_port_and_stop_together(tmp_path: Path) -> None:
    """`--workers 2`: two nodes behind one public port, a room's members meet whichever worker took their
    socket, a worker stopped alone hands its room on, and SIGTERM to the parent stops them all gracefully."""
    aiortc_adapter.set_ice_host_addresses(["127.0.0.1"])
    redis = RedisServer(tmp_path / "redis.log")
    await redis.start()
    server, port, log = await serve_two_workers(tmp_path, redis, "--ice-port-range", "42300-42399")
    clients: list[RoomClient] = []
    try:
        await until_logged(server, log, "is ready at", 2)
        store = aioredis.from_url(redis.url, decode_responses=True)
        assert len(await store.smembers("peerwell:nodes")) == 2
        ws = f"ws://127.0.0.1:{port}/ws"
        for room in ("monday", "tuesday"):
            pair = [client(ws, room, "Ana", 1), client(ws, room, "Ben", 2)]
            clients += pair
            for c in pair:
                await c.join()
            await media_between(*pair)
        # Each worker took one of the two rooms (least loaded), and each room lives whole on one node.
        owners = [(await store.get(f"peerwell:room:{room}")).split("|")[0] for room in ("monday", "tuesday")]
        assert len(set(owners)) == 2, owners
        # Nothing about people in Redis: only node and room records and the deployment secret.
        keys = set(await store.keys("*"))
        assert keys <= {"peerwell:secret", "peerwell:nodes", "peerwell:room:monday", "peerwell:room:tuesday",
                        "peerwell:revoked:monday", "peerwell:revoked:tuesday",
                        *(f"peerwell:node:{n}" for n in await store.smembers("peerwell:nodes"))}, keys
        for node in await store.smembers("peerwell:nodes"):
            assert set(await store.hgetall(f"peerwell:node:{node}")) == {"url", "participants", "rooms", "cpu", "beat"}
        for room in ("monday", "tuesday"):
            assert re.fullmatch(r"[0-9a-f]+\|[0-9a-f]+", await store.get(f"peerwell:room:{room}"))

        # SIGTERM to one worker (a rolling restart): its members are told, reconnect to the public port with
        # their token and get their places back, whichever worker now holds the room; the parent starts a
        # new worker in its place.
        monday = clients[:2]
        node_port = int((await store.hget(f"peerwell:node:{owners[0]}", "url")).rsplit(":", 1)[1].split("/")[0])
        worker = next(c for c in psutil.Process(server.pid).children()
                      if any(conn.laddr.port == node_port for conn in c.net_connections("tcp")))
        worker.send_signal(signal.SIGTERM)
        for c in monday:
            await closed(c)
            assert any(m["type"] == "server-shutdown" for m in c.signals)
        back = [client(ws, "monday", c.name, c.tag, resume=c.joined["resume"]) for c in monday]
        clients += back
        for old, new in zip(monday, back, strict=True):
            await new.join()
            assert new.participant_id == old.participant_id
        await media_between(*back)
        await until_logged(server, log, "is ready at", 3, timeout=30)  # the parent replaced the stopped worker
        await store.aclose()

        server.send_signal(signal.SIGTERM)
        await asyncio.wait_for(server.wait(), 15)
        assert server.returncode == 0, text(log)
        assert text(log).count("shutting down: telling") == 3
    finally:
        for c in clients:
            await c.close()
        if server.returncode is None:  # a failed test: its workers too, or they outlive it
            for worker in psutil.Process(server.pid).children(recursive=True):
                with contextlib.suppress(psutil.Error):
                    worker.kill()
            server.kill()
            await server.wait()
        await redis.stop()


async def test_a_failover_ticket_works_once_in_the_whole_deployment(tmp_path: Path) -> None:
    """A ticket redeemed on one node must not work again on a third node (or a restarted worker, which has a
    new node id) after a second failover: else an old token, once its holder has left, takes their place and
    role. Real Redis; the nodes are `Cluster` objects without a web server (only placement is under test)."""
    from peerwell.cluster import Cluster
    from sfu.config import ServerConfig
    from sfu.signaling.websocket import Rooms

    redis = RedisServer(tmp_path / "redis.log")
    await redis.start()
    nodes = [Cluster(redis.url, f"ws://127.0.0.1:{9000 + i}/ws", Rooms(ServerConfig())) for i in range(3)]
    store = aioredis.from_url(redis.url, decode_responses=True)
    try:
        async def die(node: Cluster) -> None:  # as after SIGKILL: no more beats, its node record gone
            assert node._beat is not None
            node._beat.cancel()
            await store.delete(f"peerwell:node:{node.node_id}")

        async def place_on(node: Cluster) -> None:  # each starts once the one before died: it is the only node
            await node.start()
            assert await node.route("monday") is None, "the room should be placed on the asking node"

        issuer, first, second = nodes
        await place_on(issuer)
        token = "x" * 32 + issuer.failover_ticket("monday", "alice", "facilitator")
        await die(issuer)
        await place_on(first)
        ticket = await first.redeem_failover(token, "monday")
        assert ticket is not None and ticket.role == "facilitator"
        await die(first)
        await place_on(second)
        assert await second.redeem_failover(token, "monday") is None, "a used ticket worked again on another node"
        assert set(await store.keys("*")) <= {"peerwell:secret", "peerwell:nodes", "peerwell:room:monday",
                                              "peerwell:revoked:monday",
                                              *(f"peerwell:node:{n.node_id}" for n in nodes)}
    finally:
        for node in nodes:
            await node.close()
        await store.aclose()
        await redis.stop()


async def test_workers_outlive_a_redis_outage_and_a_hung_worker_does_not_hang_the_stop(tmp_path: Path) -> None:
    """`--workers 2`: a worker that dies while Redis is down cannot start again yet; that must not stop the
    other worker and its rooms (only a first start that fails is fatal), and the parent keeps trying. A worker
    that does not stop on SIGTERM (here: SIGSTOPped) is killed, so the parent still exits within its deadline."""
    redis = RedisServer(tmp_path / "redis.log")
    await redis.start()
    server, _port, log = await serve_two_workers(tmp_path, redis, "--ice-port-range", "42400-42499")
    workers: list[psutil.Process] = []
    try:
        await until_logged(server, log, "is ready at", 2)
        workers = psutil.Process(server.pid).children()
        assert len(workers) == 2
        await redis.stop()
        workers[0].kill()
        deadline = time.monotonic() + 20
        while text(log).count("cannot use Redis") < 1:  # its replacement could not start
            assert time.monotonic() < deadline, text(log)
            assert server.returncode is None, "the parent gave up on the deployment:\n" + text(log)
            await asyncio.sleep(0.1)
        await asyncio.sleep(1.0)  # the parent has seen that exit by now
        assert server.returncode is None and workers[1].is_running(), text(log)

        workers[1].suspend()  # SIGSTOP: it cannot act on SIGTERM
        stopped_at = time.monotonic()
        server.send_signal(signal.SIGTERM)
        await asyncio.wait_for(server.wait(), 20)
        assert time.monotonic() - stopped_at < 12
        assert not workers[1].is_running() or workers[1].status() == psutil.STATUS_ZOMBIE
        assert "did not stop" in text(log)
    finally:
        for worker in [*workers, *(psutil.Process(server.pid).children() if server.returncode is None else [])]:
            with contextlib.suppress(psutil.Error):
                worker.kill()
        if server.returncode is None:
            server.kill()
            await server.wait()
        await redis.stop()


def test_non_ascii_signatures_and_tickets_are_refused_not_a_crash() -> None:
    """A client connecting straight to a node port may send any header bytes, and any text as `resume`:
    hmac.compare_digest raises TypeError on non-ASCII str, which must not turn into a 500 or a logged error.
    No Redis is needed: these checks use only the secret and the room's session, set here as a node would."""
    from peerwell.cluster import Cluster
    from sfu.config import ServerConfig
    from sfu.signaling.websocket import Rooms

    node = Cluster("redis://127.0.0.1:1/0", "ws://127.0.0.1:1/ws", Rooms(ServerConfig()))
    node._secret = b"s" * 32
    node.sessions["monday"] = "abcd"
    sent = str(int(time.time()))
    good = node.forwarding_headers("10.0.0.1", None)
    assert node.forwarded_client(good) == ("10.0.0.1", None)
    for signature in ("é" * 24, "\udcc3\udca9"):  # aiohttp decodes header bytes as UTF-8 with surrogateescape
        assert node.forwarded_client({**good, "X-Peerwell-Signature": signature, "X-Peerwell-Sent": sent}) is None
    assert node.forwarded_client({**good, "X-Peerwell-Client": "é"}) is None
    assert node.forwarded_client({**good, "X-Peerwell-Sent": "²"}) is None  # isdigit() but not int()
    ticket = node.failover_ticket("monday", "alice", "facilitator")
    assert ticket is not None and node._ticket("x" * 8 + ticket, "monday") is not None
    assert node._ticket("x" * 8 + ticket[:-2] + "éé", "monday") is None


async def delaying_proxy(target_port: int, delay: float) -> tuple[asyncio.Server, int]:
    """A TCP proxy on loopback that holds every reply from `target_port` back `delay` seconds: a slow Redis."""
    async def pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, wait: float) -> None:
        with contextlib.suppress(OSError):
            while data := await reader.read(65536):
                await asyncio.sleep(wait)
                writer.write(data)
                await writer.drain()
        writer.close()

    async def handle(client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter) -> None:
        server_reader, server_writer = await asyncio.open_connection("127.0.0.1", target_port)
        await asyncio.gather(pipe(client_reader, server_writer, 0.0), pipe(server_reader, client_writer, delay))

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    return server, server.sockets[0].getsockname()[1]


async def test_a_node_with_many_rooms_stays_alive_when_redis_is_slow(tmp_path: Path) -> None:
    """Redis answering 100 ms late: a beat renews all of a node's room leases in one round trip, so a node
    holding 40 rooms beats well within NODE_TTL; one round trip per room (4 s) let its record expire, and
    then its rooms would be placed on another node too while it still held them."""
    from peerwell.cluster import Cluster
    from sfu.config import ServerConfig
    from sfu.signaling.websocket import Rooms

    redis = RedisServer(tmp_path / "redis.log")
    await redis.start()
    proxy, proxy_port = await delaying_proxy(redis.port, 0.1)
    rooms = Rooms(ServerConfig())
    for i in range(40):
        rooms.room_for_join(f"room-{i}")
    node = Cluster(f"redis://127.0.0.1:{proxy_port}/0", "ws://127.0.0.1:1/ws", rooms)
    store = aioredis.from_url(redis.url, decode_responses=True)
    try:
        await node.start()
        deadline = time.monotonic() + 5  # more than one whole beat cycle
        while time.monotonic() < deadline:
            assert await store.exists(f"peerwell:node:{node.node_id}"), "the node was taken for dead"
            await asyncio.sleep(0.1)
        assert await store.get("peerwell:room:room-39") == f"{node.node_id}|{node.sessions['room-39']}"
    finally:
        await node.close()
        await store.aclose()
        proxy.close()
        await redis.stop()


async def test_a_hung_rooms_node_does_not_hang_joins_forwarded_to_it(tmp_path: Path) -> None:
    """The room's node is frozen (SIGSTOP: its kernel still accepts connections, but it never answers the
    WebSocket handshake). A join reaching another node must not wait on it forever: once the frozen node's
    record expires, the room is placed on a live node and the join goes through there. When the frozen node
    wakes up, its copy of the room must not go on beside the new one."""
    aiortc_adapter.set_ice_host_addresses(["127.0.0.1"])
    redis = RedisServer(tmp_path / "redis.log")
    await redis.start()
    a = Node("a", tmp_path, redis, (42500, 42549))
    b = Node("b", tmp_path, redis, (42550, 42599))
    clients: list[RoomClient] = []
    try:
        await b.start()
        first = client(b.ws, "friday", "Ana", 1)
        clients.append(first)
        await first.join()  # the only node: the room is on B
        await a.start()
        assert b.process is not None
        b.process.send_signal(signal.SIGSTOP)
        second = client(a.ws, "friday", "Ben", 2)
        clients.append(second)
        await asyncio.wait_for(second.join(), 25)
        assert a.holds(second.pc.remoteDescription.sdp)
        # B wakes up and finds its room placed on A: its members are sent there (1012) and keep their places.
        b.process.send_signal(signal.SIGCONT)
        await closed(first)
        back = client(a.ws, "friday", "Ana", 1, resume=first.joined["resume"])
        clients.append(back)
        await back.join()
        assert back.participant_id == first.participant_id
        await media_between(back, second)
    finally:
        if b.process is not None and b.process.returncode is None:
            b.process.send_signal(signal.SIGCONT)
        for c in clients:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(c.close(), 5)
        await a.stop()
        await b.stop()
        await redis.stop()


async def test_workers_stop_when_their_parent_is_killed(tmp_path: Path) -> None:
    """SIGKILL to the parent (OOM killer, `kill -9`): its workers stop too (prctl death signal), instead of
    serving the shared port beside the workers of a restarted parent."""
    redis = RedisServer(tmp_path / "redis.log")
    await redis.start()
    server, _port, log = await serve_two_workers(tmp_path, redis)
    workers: list[psutil.Process] = []
    try:
        await until_logged(server, log, "is ready at", 2)
        workers = psutil.Process(server.pid).children()
        assert len(workers) == 2
        server.kill()
        await server.wait()
        _gone, alive = psutil.wait_procs(workers, timeout=10)
        assert not alive, f"workers outlived their killed parent: {[w.pid for w in alive]}"
    finally:
        for worker in workers:
            with contextlib.suppress(psutil.Error):
                worker.kill()
        if server.returncode is None:
            server.kill()
            await server.wait()
        await redis.stop()
