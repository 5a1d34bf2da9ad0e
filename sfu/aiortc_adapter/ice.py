"""ICE: which host candidates aioice offers, on which ports, and consent checks that stop (aioice 0.13.0).

1. Host addresses: aioice leaves 127.0.0.1 out of host candidates; ``--ice-host`` needs to choose them
   (``set_ice_host_addresses``).
2. Port range and announced address: aioice binds each host candidate to a random UDP port and offers the
   address it bound, so a firewall cannot be opened for a known range and a server behind a 1:1 NAT offers an
   address nobody can reach. ``set_host_candidate_policy`` binds host candidates inside a port range and/or
   announces a public address instead (as mediasoup's ``announcedAddress``), replacing the host part of aioice's
   gathering.
3. Connect respecting close: aioice starts consent checks at the end of connect(), even when close() ran
   meanwhile; that task then finds no nominated pair and loops every few seconds for ever, one per departed peer
   (``install()``).
"""

from __future__ import annotations

import asyncio
import errno
import inspect
import ipaddress
import logging
import socket
import types
from collections.abc import Sequence

import aioice.candidate
import aioice.ice
import aioice.turn

logger = logging.getLogger(__name__)


# --- 1. host addresses ----------------------------------------------------------------------------------------------

_original_get_host_addresses = aioice.ice.get_host_addresses


def set_ice_host_addresses(addresses: Sequence[str] | None) -> None:
    """Offer exactly `addresses` as ICE host candidates; None restores aioice's own choice."""
    if not addresses:
        aioice.ice.get_host_addresses = _original_get_host_addresses
        return
    chosen = list(addresses)

    def fixed(use_ipv4: bool, use_ipv6: bool) -> list[str]:
        return [a for a in chosen if (":" in a and use_ipv6) or (":" not in a and use_ipv4)]

    aioice.ice.get_host_addresses = fixed


# --- 2. port range and announced address ----------------------------------------------------------------------------

_original_get_component_candidates = aioice.ice.Connection.get_component_candidates


class PortRange:
    """UDP ports host candidates may bind, handed out round-robin so a freed port is not reused at once."""

    def __init__(self, first: int, last: int) -> None:
        if not 1024 <= first <= last <= 65535:
            raise ValueError(f"ICE port range must be within 1024-65535 with first <= last, not {first}-{last}")
        self.first, self.last = first, last
        self._next = first

    def __len__(self) -> int:
        return self.last - self.first + 1

    def candidates(self) -> list[int]:
        """Every port once, starting after the one handed out last."""
        start = self._next - self.first
        ports = list(range(self.first, self.last + 1))
        return ports[start:] + ports[:start]

    def taken(self, port: int) -> None:
        self._next = self.first if port >= self.last else port + 1


async def _bind_host(connection: aioice.ice.Connection, address: str, ports: PortRange | None
                     ) -> aioice.ice.StunProtocol | None:
    loop = asyncio.get_running_loop()
    for port in (ports.candidates() if ports is not None else [0]):
        try:
            transport, protocol = await loop.create_datagram_endpoint(
                lambda: aioice.ice.StunProtocol(connection), local_addr=(address, port))
        except OSError as exc:
            if ports is not None and exc.errno == errno.EADDRINUSE:
                continue
            logger.warning("ICE: cannot bind UDP on %s: %s", address, exc)
            return None
        sock = transport.get_extra_info("socket")
        if sock is not None:  # as aioice does for its own host sockets
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, aioice.turn.UDP_SOCKET_BUFFER_SIZE)
        if ports is not None:
            ports.taken(port)
        return protocol
    assert ports is not None
    logger.warning("ICE: every UDP port in %d-%d is in use; a connection has no host candidate "
                   "(the range needs one port per connected participant)", ports.first, ports.last)
    return None


def set_host_candidate_policy(ports: tuple[int, int] | None = None, announced_address: str | None = None,
                              bind_address: str | None = None) -> None:
    """Bind ICE host candidates inside `ports` and/or offer `announced_address` instead of the bound one.

    With an announced address, one socket per connection is bound on `bind_address` (default: the
    wildcard, so packets a 1:1 NAT forwards arrive whatever the local address) and offered as
    announced_address:port; a NAT that keeps ports (as port forwarding of a range does) then delivers.
    Without either, aioice's own gathering is restored. Process-wide, like set_ice_host_addresses.
    """
    if ports is None and announced_address is None:
        aioice.ice.Connection.get_component_candidates = _original_get_component_candidates  # type: ignore[method-assign]
        return
    port_range = PortRange(*ports) if ports is not None else None
    if announced_address is not None:
        family = ipaddress.ip_address(announced_address).version
        bind_address = bind_address or ("0.0.0.0" if family == 4 else "::")

    async def get_component_candidates(self: aioice.ice.Connection, component: int, addresses: list[str],
                                       timeout: int = 5) -> list[aioice.candidate.Candidate]:
        if not addresses:  # relay-only policy: aioice gathers no host candidates, nor do we
            return await _original_get_component_candidates(self, component=component, addresses=[],
                                                            timeout=timeout)
        bind_to = [bind_address] if announced_address is not None else list(addresses)
        protocols = []
        for address in bind_to:
            protocol = await _bind_host(self, address, port_range)
            if protocol is None:
                continue
            bound_host, bound_port = protocol.transport.get_extra_info("sockname")[:2]
            host = announced_address or bound_host
            protocol.local_candidate = aioice.candidate.Candidate(
                foundation=aioice.candidate.candidate_foundation("host", "udp", host),
                component=component, transport="udp", priority=aioice.candidate.candidate_priority(component, "host"),
                host=host, port=bound_port, type="host")
            protocols.append(protocol)
        self._protocols += protocols
        candidates = [p.local_candidate for p in protocols]
        # aioice asks STUN only from the host sockets it bound itself; ask from ours (an announced
        # address already is the public one).
        reflexive = []
        if self.stun_server and announced_address is None:
            reflexive = [asyncio.ensure_future(aioice.ice.server_reflexive_candidate(p, self.stun_server))
                         for p in protocols if ipaddress.ip_address(p.local_candidate.host).version == 4]
        # aioice's own gathering with no addresses does only the TURN allocation.
        relayed = await _original_get_component_candidates(self, component=component, addresses=[], timeout=timeout)
        if reflexive:
            done, pending = await asyncio.wait(reflexive, timeout=timeout)
            candidates += [t.result()[0] for t in done if t.exception() is None]
            for task in pending:
                task.cancel()
        return candidates + relayed

    aioice.ice.Connection.get_component_candidates = get_component_candidates  # type: ignore[method-assign]


# --- 3. connect respecting close ------------------------------------------------------------------------------------

_original_connect = aioice.ice.Connection.connect


async def _connect_respecting_close(self: aioice.ice.Connection) -> None:
    await _original_connect(self)
    if getattr(self, "_closing", False):
        task = self._query_consent_task
        if task is not None and not task.done():
            task.cancel()


# --- install and check ----------------------------------------------------------------------------------------------

def install() -> None:
    aioice.ice.Connection.connect = _connect_respecting_close  # type: ignore[method-assign]


def problems() -> list[str]:
    found: list[str] = []
    if "_query_consent_task" not in _original_connect.__code__.co_names:
        found.append("aioice Connection.connect no longer starts _query_consent_task")
    if not callable(getattr(aioice.ice, "get_host_addresses", None)):
        found.append("aioice.ice.get_host_addresses is gone")
    return found + _host_candidate_problems()


def _names_used(code: types.CodeType) -> set[str]:
    """Global and attribute names a function uses, nested comprehensions included."""
    names = set(code.co_names)
    for constant in code.co_consts:
        if isinstance(constant, types.CodeType):
            names |= _names_used(constant)
    return names


def _host_candidate_problems() -> list[str]:
    """What set_host_candidate_policy relies on in aioice 0.13.0."""
    found: list[str] = []
    gather = _names_used(aioice.ice.Connection.gather_candidates.__code__)
    if "get_component_candidates" not in gather or "get_host_addresses" not in gather:
        found.append("aioice Connection.gather_candidates no longer passes get_host_addresses() to "
                     "get_component_candidates")
    original = _original_get_component_candidates
    parameters = list(inspect.signature(original).parameters)
    if parameters[:3] != ["self", "component", "addresses"]:
        found.append(f"aioice Connection.get_component_candidates takes {parameters}, not (component, addresses)")
    body = _names_used(original.__code__)  # type: ignore[attr-defined]
    for name in ("create_datagram_endpoint", "stun_server", "turn_server", "relayed_candidate", "_protocols"):
        if name not in body:
            found.append(f"aioice Connection.get_component_candidates no longer uses {name}")
    if "local_candidate" not in aioice.ice.CandidatePair.local_candidate.fget.__code__.co_names:
        found.append("aioice CandidatePair no longer takes its local candidate from its protocol")
    if "receiver" not in inspect.signature(aioice.ice.StunProtocol).parameters:
        found.append("aioice StunProtocol is no longer built from its Connection")
    for name in ("candidate_foundation", "candidate_priority"):
        if not callable(getattr(aioice.candidate, name, None)):
            found.append(f"aioice.candidate.{name} is gone")
    if not callable(getattr(aioice.ice, "server_reflexive_candidate", None)):
        found.append("aioice.ice.server_reflexive_candidate is gone")
    return found
