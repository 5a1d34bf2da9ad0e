"""What signaling needs from a deployment of several nodes (peerwell/cluster.py implements it with Redis).

A room lives whole on one node. A `join` may arrive at any node: `Placement.route` says whether the room is
(or is now placed) here, or which node's `/ws` holds it; then this node forwards the WebSocket there
(`forward`), while media goes straight to that node (its ICE candidates are in its SDP). Without a placement
(one process, no Redis) signaling never calls any of this.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Protocol

import aiohttp
from aiohttp import WSCloseCode, WSMsgType, web

from sfu import messages
from sfu.lifecycle.restart import Ticket

if TYPE_CHECKING:
    from sfu.signaling.socket_sender import SocketSender

logger = logging.getLogger(__name__)

FORWARD_CONNECT_TIMEOUT = 2.0  # seconds to open the WebSocket to the room's node (connect and handshake)


class PlacementUnavailable(Exception):
    """The placement store cannot be reached: rooms already here go on, other rooms cannot be found or placed."""


class Placement(Protocol):
    async def route(self, room: str) -> str | None:
        """None: the room is on this node (placed here now if it was nowhere); else the `/ws` URL of its node.
        Raises PlacementUnavailable."""

    def node_unreachable(self, url: str) -> None:
        """A forward to `url` failed to connect (its node may have died before its lease ran out)."""

    async def exists(self, room: str) -> bool:
        """Whether the room is open on some live node. Raises PlacementUnavailable."""

    def failover_ticket(self, room: str, participant_id: str, role: str) -> str | None:
        """A token part that lets this place be taken back on whichever node holds the room after its node died."""

    async def redeem_failover(self, token: str, room: str) -> Ticket | None:
        """The place `token` carries, if it is valid for this room's current placement, was not given out by
        this node and was not given up since. Raises PlacementUnavailable if that cannot be checked now."""

    def revoke(self, token: str, room: str) -> None:
        """The seat holding `token` was given up: its failover ticket must not work anywhere any more."""

    def forwarding_headers(self, address: str, browser_key: str | None) -> dict[str, str]:
        """Signed headers that tell the room's node who the client is (its address and pw_key)."""

    def forwarded_client(self, headers: Mapping[str, str]) -> tuple[str, str | None] | None:
        """(address, browser key) from a forwarding node's signed headers, or None if absent or not valid."""


async def forward(client: web.WebSocketResponse, sender: SocketSender, first: str, url: str,
                  headers: dict[str, str], on_connect_failed: Callable[[], None]) -> bool:
    """Pipe the client's WebSocket to `url` (the room's node), starting with its `join`, until either side
    closes. False if the room's node could not be reached (nothing was sent anywhere)."""
    session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=None, sock_connect=FORWARD_CONNECT_TIMEOUT))
    try:
        try:
            # The handshake too: a frozen node's kernel still accepts the connection, and then nothing answers.
            async with asyncio.timeout(FORWARD_CONNECT_TIMEOUT):
                upstream = await session.ws_connect(url, headers=headers, heartbeat=15.0, ssl=False,
                                                    max_msg_size=messages.MAX_SIGNALING_FRAME, autoping=True)
        except (aiohttp.ClientError, OSError, TimeoutError):
            on_connect_failed()
            return False
        await upstream.send_str(first)

        async def client_to_node() -> None:
            async for raw in client:
                if raw.type == WSMsgType.TEXT:
                    await upstream.send_str(raw.data)
                elif raw.type == WSMsgType.BINARY:
                    await upstream.send_bytes(raw.data)

        async def node_to_client() -> None:
            async for raw in upstream:
                if raw.type == WSMsgType.TEXT:
                    sender.send(raw.data)  # the same bounded queue as a local seat: a stalled reader costs itself

        tasks = [asyncio.ensure_future(client_to_node()), asyncio.ensure_future(node_to_client())]
        try:
            await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in tasks:
                task.cancel()
            for task in tasks:
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
        node_closed = upstream.closed or upstream.close_code is not None
        code = upstream.close_code or WSCloseCode.SERVICE_RESTART
        await upstream.close()
        await sender.drain(1.0)
        if node_closed and not client.closed:
            # The room's node said goodbye (1000 after a bye, 1012 on shutdown) or vanished (1012 here too:
            # the client reconnects and resumes, as after a restart).
            await client.close(code=code if code in (WSCloseCode.OK, WSCloseCode.SERVICE_RESTART)
                               else WSCloseCode.SERVICE_RESTART, message=b"room's server closed")
        return True
    finally:
        await session.close()
