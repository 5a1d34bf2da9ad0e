"""Several nodes, one deployment: nodes register in Redis, rooms are placed on them, joins are routed.

A node is one `peerwell serve` process (`--workers N` starts N on one machine; several machines share one
Redis). Everything kept in Redis (prefix ``peerwell:``), and nothing else (no names, nothing said):

- ``secret``: 32 random bytes set by the first node; signs forwarded client headers, failover tickets and
  the `pw_key` cookie, so every node accepts what another issued.
- ``nodes``: the set of node ids; ``node:<id>``: a hash ``url`` (its /ws for forwarded joins),
  ``participants``, ``rooms``, ``cpu`` (cores its process used over the last beat). It expires `NODE_TTL`
  after the node's last heartbeat: a node that stops beating is dead.
- ``room:<slug>``: ``<node id>|<room session id>``, renewed by its node every beat; expires `ROOM_LEASE`
  after the last renewal (or is deleted when the room closes on its node). While it exists and its node is
  alive, every join for that room goes to that node. Once its node is dead, the first join places the room
  on the least loaded live node, keeping the session id, and failover tickets of that session work there.
- ``revoked:<slug>``: MACs of the failover tickets of places given up in this room session (left, removed,
  grace ran out, resumed with a newer token) or redeemed already, so an old token cannot skip the lobby or
  take a place again after a failover. A MAC
  names nobody; the set lives and dies with the room key.

Placement is one Lua script (atomic): a room is never on two nodes. Load = participants + 2 x rooms +
10 x cpu cores; the joining node wins ties (no forwarding hop).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import time
from collections.abc import Mapping
from dataclasses import dataclass, field

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from sfu.lifecycle.placement import PlacementUnavailable
from sfu.lifecycle.restart import Ticket
from sfu.limits.browser_key import BrowserKeys
from sfu.limits.signer import RoleToken, Signer
from sfu.signaling.websocket import Rooms

logger = logging.getLogger(__name__)

PREFIX = "peerwell:"
HEARTBEAT = 1.0  # seconds between a node's load reports and lease renewals
NODE_TTL = 3.0  # a node silent this long is dead: its rooms are placed again on the next join
ROOM_LEASE = 30.0  # a dead node's room keeps its session (failover tickets) this long for its members to return
FORWARD_SKEW = 60  # seconds a forwarding node's signed headers stay valid
FAILOVER = "f1"  # the kind of RoleToken a failover ticket is

# KEYS: room key. ARGV: candidate node id, node key prefix, lease ms, new session id.
# Returns {owner id, session, owner url}. A live owner keeps its room; else the candidate takes it (with the
# old session, if the key outlived its dead node).
_PLACE = """
local value = redis.call('GET', KEYS[1])
local session = ARGV[4]
if value then
  local owner, old = string.match(value, '^([^|]+)|(.+)$')
  if owner and redis.call('EXISTS', ARGV[2] .. owner) == 1 then
    return {owner, old, redis.call('HGET', ARGV[2] .. owner, 'url')}
  end
  if old then session = old end
end
if redis.call('EXISTS', ARGV[2] .. ARGV[1]) == 0 then return false end
redis.call('SET', KEYS[1], ARGV[1] .. '|' .. session, 'PX', ARGV[3])
redis.call('HINCRBY', ARGV[2] .. ARGV[1], 'rooms', 1)
return {ARGV[1], session, redis.call('HGET', ARGV[2] .. ARGV[1], 'url')}
"""
# KEYS: room key, revoked key. ARGV: node id, lease ms, session. 1: renewed (or re-created after Redis lost it);
# 0: another node holds it (this node was taken for dead).
_RENEW = """
local value = redis.call('GET', KEYS[1])
if not value then
  redis.call('SET', KEYS[1], ARGV[1] .. '|' .. ARGV[3], 'PX', ARGV[2])
  return 1
end
if string.match(value, '^([^|]+)|') == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  redis.call('PEXPIRE', KEYS[2], ARGV[2])
  return 1
end
return 0
"""
# KEYS: room key, revoked key. ARGV: node id. The room closed here: forget it (if it is still ours).
_RELEASE = """
local value = redis.call('GET', KEYS[1])
if value and string.match(value, '^([^|]+)|') == ARGV[1] then return redis.call('DEL', KEYS[1], KEYS[2]) end
return 0
"""


class ClusterError(Exception):
    pass


@dataclass
class Cluster:
    """This node's membership: heartbeats, placement and the tokens that cross nodes (sfu/lifecycle/placement.py)."""

    redis_url: str = field(repr=False)
    node_url: str  # ws://address:port/ws where other nodes forward joins to this node
    rooms: Rooms
    node_id: str = field(default_factory=lambda: secrets.token_hex(4))
    sessions: dict[str, str] = field(default_factory=dict)  # room -> session id of its placement here
    issued: set[str] = field(default_factory=set)  # "room|participant": places this node gave out (not failovers)
    _revoking: set[asyncio.Task[None]] = field(default_factory=set)
    _leaving: bool = False
    _secret: bytes = field(default=b"", repr=False)
    _signer: Signer = field(default_factory=lambda: Signer(b""), repr=False)  # from _secret, once Redis gave it
    _held: set[str] = field(default_factory=set)  # rooms whose lease this node renewed at the last beat
    _beat: asyncio.Task[None] | None = None
    _healthy: bool = True
    _cpu: tuple[float, float] = field(default_factory=lambda: (time.process_time(), time.monotonic()))

    def __post_init__(self) -> None:
        self.redis = aioredis.from_url(self.redis_url, socket_timeout=1.0, socket_connect_timeout=1.0,
                                       decode_responses=True)
        self._place = self.redis.register_script(_PLACE)
        self._renew = self.redis.register_script(_RENEW)
        self._release = self.redis.register_script(_RELEASE)

    # --- lifecycle ---------------------------------------------------------------------------------

    async def start(self) -> None:
        """Join the deployment (before the node listens); a Redis that cannot be reached stops the start."""
        try:
            await self._report()
        except (RedisError, OSError, ValueError, TypeError) as exc:
            raise ClusterError(f"cannot use Redis for placement: {type(exc).__name__}: {exc}") from None
        self.rooms.placement = self
        self._beat = asyncio.ensure_future(self._heartbeats())
        logger.info("node %s joined the deployment at %s", self.node_id, self.node_url)

    async def leave(self, app: object = None) -> None:
        """Graceful stop: this node is dead at once for placement; its room keys stay, so a returning member's
        join places the room on another node with the same session (failover tickets work there)."""
        self._leaving = True  # the seats closed by the shutdown stay redeemable on the node taking the rooms
        if self._beat is not None:
            self._beat.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._beat
            self._beat = None
        with contextlib.suppress(RedisError, OSError):
            await self.redis.delete(PREFIX + "node:" + self.node_id)
            await self.redis.srem(PREFIX + "nodes", self.node_id)

    async def close(self, app: object = None) -> None:
        await self.leave()
        with contextlib.suppress(RedisError, OSError):
            await self.redis.aclose()

    async def _heartbeats(self) -> None:
        while True:
            await asyncio.sleep(HEARTBEAT)
            try:
                await self._report()
                if not self._healthy:
                    logger.warning("Redis is back: node %s placing rooms again", self.node_id)
                self._healthy = True
            except (RedisError, OSError) as exc:
                if self._healthy:  # once per outage
                    logger.error("Redis unreachable (%s): rooms here go on, new rooms cannot be opened",
                                 type(exc).__name__)
                self._healthy = False
            except Exception:  # a bug (or a mangled key) must not stop the heartbeats for good
                logger.exception("heartbeat failed")

    async def _report(self) -> None:
        node_key = PREFIX + "node:" + self.node_id
        now_cpu, now = time.process_time(), time.monotonic()
        cpu = (now_cpu - self._cpu[0]) / max(now - self._cpu[1], 1e-3)
        self._cpu = (now_cpu, now)
        local = set(self.rooms.rooms)
        # The deployment's secret: the first node sets it; a Redis restarted empty gets it back from the nodes.
        await self.redis.set(PREFIX + "secret", (self._secret or secrets.token_bytes(32)).hex(), nx=True)
        shared = bytes.fromhex(await self.redis.get(PREFIX + "secret"))
        if shared != self._secret:
            if self._secret:
                logger.error("the deployment secret in Redis changed; tokens issued before no longer cross nodes")
            self._secret = shared
            # The cookie any node issued is recognised by every node (a removal sticks across nodes).
            self._signer = Signer(shared)
            self.rooms.browser_keys = BrowserKeys(self._signer)
        # One round trip for the node record and every lease: with a slow Redis, one per room made a beat of a
        # busy node outlast NODE_TTL, and its rooms were then placed on another node while it still held them.
        held = sorted(local)
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.hset(node_key, mapping={"url": self.node_url, "participants": len(self.rooms.seats),
                                         "rooms": len(local), "cpu": f"{cpu:.3f}", "beat": f"{time.time():.3f}"})
            pipe.pexpire(node_key, int(NODE_TTL * 1000))
            pipe.sadd(PREFIX + "nodes", self.node_id)
            for slug in held:
                session = self.sessions.setdefault(slug, secrets.token_hex(8))
                await self._renew(keys=[PREFIX + "room:" + slug, PREFIX + "revoked:" + slug],
                                  args=[self.node_id, int(ROOM_LEASE * 1000), session], client=pipe)
            renewed = (await pipe.execute())[3:]
        lost = [slug for slug, ok in zip(held, renewed, strict=True) if not ok]
        # Rooms that closed here: checked now, not against `local`, since joins went on during the awaits above
        # (a room placed meanwhile is already held, and its session must survive).
        closed = [slug for slug in self._held if slug not in self.rooms.rooms]
        if closed:
            async with self.redis.pipeline(transaction=False) as pipe:
                for slug in closed:
                    await self._release(keys=[PREFIX + "room:" + slug, PREFIX + "revoked:" + slug],
                                        args=[self.node_id], client=pipe)
                await pipe.execute()
        for slug in closed:
            if slug not in self.rooms.rooms:  # else it opened again meanwhile: the next beat re-creates its key
                self._held.discard(slug)
                self.sessions.pop(slug, None)
                self.issued = {place for place in self.issued if not place.startswith(slug + "|")}
        self._held |= set(self.rooms.rooms)
        for slug in lost:  # two copies of one group must not go on: its members go to the node that holds it now
            logger.error("room %r was placed on another node (this node was taken for dead): moving its members",
                         slug)
            await self.rooms.hand_over(slug)

    # --- placement (sfu/lifecycle/placement.py) --------------------------------------------------------------

    async def _least_loaded(self) -> str:
        try:
            ids = sorted(await self.redis.smembers(PREFIX + "nodes"))
            async with self.redis.pipeline(transaction=False) as pipe:
                for node in ids:
                    pipe.hgetall(PREFIX + "node:" + node)
                loads = await pipe.execute()
        except (RedisError, OSError) as exc:
            raise PlacementUnavailable(str(exc)) from None
        best, best_load = self.node_id, None
        for node, info in zip(ids, loads, strict=True):
            if not info:
                with contextlib.suppress(RedisError, OSError):
                    await self.redis.srem(PREFIX + "nodes", node)  # expired: dead
                continue
            load = float(info.get("participants", 0)) + 2 * float(info.get("rooms", 0)) + 10 * float(
                info.get("cpu", 0))
            if best_load is None or load < best_load or (load == best_load and node == self.node_id):
                best, best_load = node, load
        return best

    async def route(self, room: str) -> str | None:
        candidate = await self._least_loaded()
        try:
            placed = await self._place(keys=[PREFIX + "room:" + room],
                                       args=[candidate, PREFIX + "node:", int(ROOM_LEASE * 1000),
                                             secrets.token_hex(8)])
            if not placed and candidate != self.node_id:  # the candidate just died: take it here
                placed = await self._place(keys=[PREFIX + "room:" + room],
                                           args=[self.node_id, PREFIX + "node:", int(ROOM_LEASE * 1000),
                                                 secrets.token_hex(8)])
        except (RedisError, OSError) as exc:
            raise PlacementUnavailable(str(exc)) from None
        if not placed:
            raise PlacementUnavailable("this node is not registered (Redis lost its heartbeat)")
        owner, session, url = placed
        if owner == self.node_id:
            if self.sessions.get(room) != session:
                logger.info("room %r placed on node %s", room, self.node_id)
            self.sessions[room] = session
            self._held.add(room)
            return None
        return url

    def node_unreachable(self, url: str) -> None:
        logger.warning("a room's node at %s did not answer; waiting for its lease to run out", url)

    async def exists(self, room: str) -> bool:
        try:
            value = await self.redis.get(PREFIX + "room:" + room)
            return bool(value) and bool(await self.redis.exists(PREFIX + "node:" + value.split("|", 1)[0]))
        except (RedisError, OSError) as exc:
            raise PlacementUnavailable(str(exc)) from None

    # --- tokens that cross nodes ---------------------------------------------------------------------

    def failover_ticket(self, room: str, participant_id: str, role: str) -> str | None:
        session = self.sessions.get(room)
        if session is None or "." in participant_id:
            return None
        self.issued.add(f"{room}|{participant_id}")
        ticket = RoleToken(FAILOVER, participant_id, role, secrets.token_urlsafe(6))  # one per seat: revoked alone
        return "~" + ticket.sign(self._signer.for_purpose("failover"), f"{room}|{session}")

    def _ticket(self, token: str, room: str) -> tuple[RoleToken, str] | None:
        """(the ticket, its signature) if `token` carries a ticket valid for the room's current session."""
        _, tilde, text = token.rpartition("~")
        session = self.sessions.get(room)
        if not tilde or session is None:
            return None
        ticket = RoleToken.read(text, FAILOVER, self._signer.for_purpose("failover"), f"{room}|{session}")
        return None if ticket is None else (ticket, RoleToken.signature_of(text))

    def revoke(self, token: str, room: str) -> None:
        """A seat was given up (left, removed, grace over, resumed with a newer token): its ticket must not
        bring anyone back after a failover."""
        ticket = self._ticket(token, room)
        if ticket is None or self._leaving:
            return

        async def add() -> None:
            key = PREFIX + "revoked:" + room
            try:
                async with self.redis.pipeline(transaction=False) as pipe:
                    pipe.sadd(key, ticket[1])
                    pipe.pexpire(key, int(ROOM_LEASE * 1000))
                    await pipe.execute()
            except (RedisError, OSError):
                logger.warning("Redis unreachable: a given-up place in %r could come back after a failover", room)

        task = asyncio.ensure_future(add())
        self._revoking.add(task)
        task.add_done_callback(self._revoking.discard)

    async def redeem_failover(self, token: str, room: str) -> Ticket | None:
        """Valid only in the placement session it was issued in (a room that closed and opened again is a new
        session), on a node that did not give that place out itself, once in the whole deployment, and never
        after it was given up."""
        ticket = self._ticket(token, room)
        if ticket is None:
            return None
        seat, mac = ticket
        if f"{room}|{seat.participant_id}" in self.issued:
            return None
        key = PREFIX + "revoked:" + room
        try:  # used up as it is redeemed, in one step: once in the whole deployment, not once per node
            async with self.redis.pipeline(transaction=True) as pipe:
                pipe.sadd(key, mac)
                pipe.pexpire(key, int(ROOM_LEASE * 1000))
                added, _ = await pipe.execute()
        except (RedisError, OSError) as exc:  # cannot tell whether it was given up: try again, keep the token
            raise PlacementUnavailable(str(exc)) from None
        if not added:  # given up, or redeemed already (on any node)
            return None
        self.issued.add(f"{room}|{seat.participant_id}")
        return Ticket(participant_id=seat.participant_id, role=seat.role)

    def forwarding_headers(self, address: str, browser_key: str | None) -> dict[str, str]:
        sent = str(int(time.time()))
        key = browser_key if browser_key and browser_key.isascii() else ""  # else not a key any node issued
        return {"X-Peerwell-Client": address, "X-Peerwell-Browser-Key": key, "X-Peerwell-Sent": sent,
                "X-Peerwell-Signature": self._signer.for_purpose("forwarding").sign(f"{address}|{key}|{sent}")}

    def forwarded_client(self, headers: Mapping[str, str]) -> tuple[str, str | None] | None:
        signature = headers.get("X-Peerwell-Signature")
        if not signature or not self._secret:  # no deployment secret yet: nothing can be verified
            return None
        address = headers.get("X-Peerwell-Client", "")
        key = headers.get("X-Peerwell-Browser-Key", "")
        sent = headers.get("X-Peerwell-Sent", "")
        if not sent.isascii() or not sent.isdigit() or abs(time.time() - int(sent)) > FORWARD_SKEW:
            return None
        if not self._signer.for_purpose("forwarding").verify(signature, f"{address}|{key}|{sent}"):
            return None
        return address, key or None
