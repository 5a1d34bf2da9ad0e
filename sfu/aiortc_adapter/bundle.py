"""BUNDLE routing by MID (RFC 8843 section 9.2): a packet whose SSRC is not known yet goes to the m-line its
MID header extension names (aiortc 1.16.0).

aiortc's RtpRouter keeps a MID table but never reads it: an unknown SSRC is routed by payload type, and only
when exactly one receiver has that payload type. A browser that publishes a camera (RID simulcast: no SSRCs
in its SDP) and a screen (a second video m-line with the same VP8 payload type) then has every camera packet
dropped, because payload type 96 names two receivers. With this patch (``install()``) such a packet goes to
the receiver of its MID, which then owns that SSRC, as browsers and other SFUs route. Packets without a MID
still go by payload type exactly as aiortc does.
"""

from __future__ import annotations

import inspect

from aiortc import rtcdtlstransport
from aiortc.rtp import HeaderExtensions, RtpPacket

_Router = rtcdtlstransport.RtpRouter
_original_route_rtp = _Router.route_rtp


def _route_rtp_by_mid(self: _Router, packet: RtpPacket) -> rtcdtlstransport.RtpReceiver | None:
    receiver = _original_route_rtp(self, packet)
    if receiver is None and packet.ssrc not in self.ssrc_table:
        receiver = self.mid_table.get(packet.extensions.mid) if packet.extensions.mid else None
        if receiver is not None and receiver in self.payload_type_table.get(packet.payload_type, ()):
            self.ssrc_table[packet.ssrc] = receiver
        else:
            receiver = None
    return receiver


def install() -> None:
    _Router.route_rtp = _route_rtp_by_mid  # type: ignore[method-assign]


def problems() -> list[str]:
    found: list[str] = []
    router = _Router()
    for table in ("mid_table", "ssrc_table", "payload_type_table"):
        if not isinstance(getattr(router, table, None), dict):
            found.append(f"RtpRouter no longer keeps {table} as a dict")
    if list(inspect.signature(_original_route_rtp).parameters) != ["self", "packet"]:
        found.append("RtpRouter.route_rtp(packet) changed its signature")
    if "mid" not in HeaderExtensions.__dataclass_fields__:
        found.append("aiortc's parsed header extensions no longer carry the MID")
    register = inspect.signature(_Router.register_receiver).parameters
    if "mid" not in register:
        found.append("RtpRouter.register_receiver no longer takes the receiver's MID")
    return found
