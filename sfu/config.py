"""Server settings: embedded defaults, overridden by command-line flags."""

from __future__ import annotations

from dataclasses import dataclass, field

from aiortc import RTCConfiguration, RTCIceServer

from peerwell.groups import GroupsConfig
from sfu import messages


@dataclass(frozen=True)
class ServerConfig:
    host: str = "127.0.0.1"
    port: int = 8080
    ice_hosts: tuple[str, ...] = ()  # empty: aioice picks the machine's addresses
    ice_servers: tuple[messages.IceServer, ...] = ()  # handed to browsers; also used by the server's own ICE
    groups: GroupsConfig = field(default_factory=GroupsConfig.default)
    reconnect_grace: float = 20.0  # seconds a dropped participant keeps their place
    web_root: str | None = None  # None: the web/ folder beside the packages
    offers_per_minute: float = 20.0  # SDP offers per client address (sfu/offer_limits.py)
    joins_per_minute: float = 60.0  # joins (resumes included) per client address
    allowed_origins: tuple[str, ...] = ()  # pages on other origins that may open /ws (besides the server's own)

    def rtc_configuration(self) -> RTCConfiguration:
        servers = [RTCIceServer(urls=s.urls, username=s.username, credential=s.credential)
                   for s in self.ice_servers]
        return RTCConfiguration(iceServers=servers or [])


def parse_ice_server(url: str, username: str | None = None, credential: str | None = None) -> messages.IceServer:
    if not url.startswith(("stun:", "turn:", "turns:")):
        raise ValueError(f"ICE server URL must start with stun:, turn: or turns: ({url!r})")
    return messages.IceServer(urls=[url], username=username, credential=credential)
