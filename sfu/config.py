"""Server settings the SFU runs with (peerwell/config.py builds them from file, environment and flags)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

from aiortc import RTCConfiguration, RTCIceServer

from sfu import messages
from sfu.limits.offer_limits import ADHOC_ROOMS_PER_ADDRESS, JOINS_PER_MINUTE, OFFERS_PER_MINUTE
from sfu.room.groups import GroupsConfig
from sfu.turn import SERVER_USER, TurnRelay

SOCKETS_PER_ADDRESS = 32  # a household or an office behind one address is far below this
JOIN_TIMEOUT = 10.0
FRAME_TIMEOUT = 5.0  # a 256 KiB message at 512 kbit/s takes 4 s; a browser's answer is 3-50 KB


def open_rooms() -> GroupsConfig:
    """The embedded groups with ad-hoc rooms allowed: the default of a bare ServerConfig (tests, benchmarks,
    embedding). `peerwell serve` loads the embedded config itself, where ad-hoc rooms are off."""
    groups = GroupsConfig.default()
    return dataclasses.replace(groups, server=dataclasses.replace(groups.server, allow_adhoc_rooms=True))


@dataclass(frozen=True)
class ServerConfig:
    host: str = "127.0.0.1"
    port: int = 8080
    ice_hosts: tuple[str, ...] = ()  # empty: aioice picks the machine's addresses
    ice_servers: tuple[messages.IceServer, ...] = ()  # static STUN/TURN, handed to browsers and used here
    turn: TurnRelay | None = None  # a relay with short-lived credentials minted per join
    ice_port_range: tuple[int, int] | None = None  # UDP ports host candidates bind (None: any)
    announced_address: str | None = None  # public address offered instead of the bound one (1:1 NAT)
    groups: GroupsConfig = field(default_factory=open_rooms)
    reconnect_grace: float = 20.0  # seconds a dropped participant keeps their place
    web_root: str | None = None  # None: the web/ folder beside the packages
    offers_per_minute: float = OFFERS_PER_MINUTE  # SDP offers per client address
    joins_per_minute: float = JOINS_PER_MINUTE  # joins (resumes included) per client address
    allowed_origins: tuple[str, ...] = ()  # pages on other origins that may open /ws (besides the server's own)
    # Reverse proxies (addresses or networks) whose client-address header is believed; nobody else's is.
    trusted_proxies: tuple[str, ...] = ()
    proxy_header: str = "x-forwarded-for"  # or "forwarded" (RFC 7239): the one header the proxy sets
    sockets_per_address: int = SOCKETS_PER_ADDRESS  # open WebSockets per client address, joined or not
    adhoc_rooms_per_address: int = ADHOC_ROOMS_PER_ADDRESS  # ad-hoc rooms open at once, by who opened them
    # Test hooks (peerwell's settings do not expose them; docs/protocol.md section 5 gives the values).
    join_timeout: float = JOIN_TIMEOUT  # seconds a socket may stay open without sending `join`
    frame_timeout: float = FRAME_TIMEOUT  # seconds a frame may take from its first byte to its last
    restart_key: str | None = field(default=None, repr=False)  # signs restart tickets (sfu/lifecycle/restart.py)
    # Shortest share timer a facilitator may set. A test hook (tests lower it to wait seconds, not half a
    # minute); peerwell's settings do not expose it, so the documented 30 s holds in every deployment.
    share_timer_min_seconds: int = messages.SHARE_TIMER_MIN_S
    # The notice before breakout rooms close (docs/protocol.md, "Breakout rooms"). A test hook like the one
    # above: not in peerwell's settings, so every deployment gives people the documented 60 s.
    breakout_notice_seconds: float = messages.BREAKOUT_NOTICE_S

    def client_ice_servers(self, participant_id: str) -> list[messages.IceServer]:
        """What `joined` hands this participant: the static servers plus fresh relay credentials."""
        servers = list(self.ice_servers)
        if self.turn is not None:
            servers.append(self.turn.ice_server(participant_id))
        return servers

    def rtc_configuration(self) -> RTCConfiguration:
        """The server's own ICE agent, one per peer connection (relay credentials minted each time)."""
        servers = [RTCIceServer(urls=s.urls, username=s.username, credential=s.credential)
                   for s in self.ice_servers]
        if self.turn is not None and self.turn.server_url:
            relay = self.turn.ice_server(SERVER_USER, urls=(self.turn.server_url,))
            # aiortc uses only the first TURN URL it finds: ours goes first.
            servers.insert(0, RTCIceServer(urls=relay.urls, username=relay.username, credential=relay.credential))
        return RTCConfiguration(iceServers=servers or [])


def parse_ice_server(url: str, username: str | None = None, credential: str | None = None) -> messages.IceServer:
    if not url.startswith(("stun:", "turn:", "turns:")):
        raise ValueError(f"ICE server URL must start with stun:, turn: or turns: ({url!r})")
    return messages.IceServer(urls=[url], username=username, credential=credential)
