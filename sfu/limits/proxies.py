"""Who the client is behind a reverse proxy: every per-address limit and ban keys on this address.

Only a peer the operator named (`server.trusted_proxies`) is believed about the client. Its header
(`X-Forwarded-For`, or RFC 7239 `Forwarded`) is read from the right: each trusted proxy appends the address
it received the request from, so the rightmost hop that is not a trusted proxy is the client. Anything to
the left of it was written by the client and is ignored. A peer that is not trusted is the client itself,
whatever headers it sends. Only one header is read, the one the proxy sets: a proxy that sets
`X-Forwarded-For` passes a client's own `Forwarded` through untouched (Caddy does), so believing both would
let a client choose its address.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
HEADERS = ("x-forwarded-for", "forwarded")


def parse_address(text: str | None) -> IPAddress | None:
    """An address as a proxy or the socket gives it: `1.2.3.4`, `1.2.3.4:5678`, `[2001:db8::1]:80`,
    `"[2001:db8::1]"`, `::ffff:1.2.3.4` (IPv4-mapped, read as IPv4). None for anything else."""
    if not text:
        return None
    text = text.strip().strip('"').strip()
    if text.startswith("["):
        text = text[1:].partition("]")[0]
    elif text.count(":") == 1:  # IPv4 with a port
        text = text.partition(":")[0]
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def _hops(header: str, values: Iterable[str]) -> list[str]:
    """The addresses a header lists, left (first hop) to right (last). A `Forwarded` element without
    `for=` is kept as an unreadable hop."""
    elements = [part.strip() for value in values for part in value.split(",") if part.strip()]
    if header == "x-forwarded-for":
        return elements
    hops = []
    for element in elements:
        pairs = (pair.strip().partition("=") for pair in element.split(";"))
        hops.append(next((value for name, _, value in pairs if name.strip().lower() == "for"), ""))
    return hops


class TrustedProxies:
    def __init__(self, networks: Iterable[str] = (), header: str = "x-forwarded-for") -> None:
        if header.lower() not in HEADERS:
            raise ValueError(f"the proxy header is one of {', '.join(HEADERS)}, not {header!r}")
        self.networks = tuple(ipaddress.ip_network(n, strict=False) for n in networks)
        self.header = header.lower()

    def trusts(self, address: IPAddress | None) -> bool:
        return address is not None and any(address in network for network in self.networks)

    def client(self, peer: str | None, header_values: Iterable[str]) -> str:
        """The client's address: `peer` (the TCP peer) unless it is a trusted proxy, then the rightmost hop of
        `header_values` (every value of the header, in order) that is not a trusted proxy."""
        peer_address = parse_address(peer)
        if not self.trusts(peer_address):
            return str(peer_address) if peer_address is not None else (peer or "")
        hop = peer_address
        for text in reversed(_hops(self.header, header_values)):
            address = parse_address(text)
            if address is None:  # "unknown", an obfuscated name: nothing to the left of it can be believed
                break
            hop = address
            if not self.trusts(address):
                break
        return str(hop)
