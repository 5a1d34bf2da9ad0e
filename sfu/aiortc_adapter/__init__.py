"""Every contact point with aiortc/aioice private internals lives in this package, and only here.

Why: aiortc's tracks only yield *decoded* frames and its senders encode every frame, so an SFU built on its public
API decodes once per publisher and re-encodes once per subscriber. Its maintainers say there is no supported way
around that (aiortc issues #449, #55). We forward encoded frames instead. One module per concept, each with the
private names it touches, its patch, its ``install()`` if it replaces something module-wide, and its own
``problems()`` check:

- compat.py   the pin (aiortc 1.16.0 / aioice 0.13.0), AdapterIncompatible, check_compatibility() gathering
              every module's problems(); runs at server start and in tests (tests/test_aiortc_adapter.py)
- framing.py  our stand-in for aiortc's private jitter buffer: encoded frames as soon as they are complete
- receive.py  receiver tap, no decoder thread for a tapped receiver, NACK per stream, RTX by repaired-rid,
              PLI to a publisher, REMB floor, compact rate counter
- send.py     keyframe-request redirect, downlink feedback, RTP history compaction, audio level stamping
- clock.py    aiortc's per-packet wall clock from time.time() instead of datetime
- sdp.py      offer checks, codec pinning, Opus DTX, header-extension IDs (create_offer), simulcast SDP
- ice.py      host addresses, port range, announced address, connect respecting close
- sctp.py     data-channel text that is not UTF-8 handed on as bytes
- client.py   helpers only the headless client, tests and benchmarks use

``install_patches()`` installs the module-wide replacements (ice, sdp, sctp, clock, receive) when the server
(create_app) or a client (RoomClient) starts; importing this package changes nothing.
"""

from __future__ import annotations

from sfu.aiortc_adapter import bundle, clock, ice, receive, sctp, sdp
from sfu.aiortc_adapter.client import (
    count_keyframe_requests,
    drop_outgoing_rtp,
    offer_simulcast,
    send_raw_text_frame,
    send_simulcast_layer,
    stamp_rid,
)
from sfu.aiortc_adapter.compat import TESTED_AIOICE, TESTED_AIORTC, AdapterIncompatible, check_compatibility
from sfu.aiortc_adapter.ice import PortRange, set_host_candidate_policy, set_ice_host_addresses
from sfu.aiortc_adapter.receive import (
    PUBLISHER_REMB_FLOOR_BPS,
    REMB_FLOOR_QUIET_S,
    CompactRateCounter,
    keep_remb_floor,
    receiver_codec,
    request_keyframe,
    tap_receiver,
)
from sfu.aiortc_adapter.sdp import (
    MAX_SIMULCAST_LAYERS,
    REPAIRED_RID_URI,
    RID_URI,
    ask_for_opus_dtx,
    bundle_transport,
    close_half_built,
    create_offer,
    negotiated_codec,
    negotiated_codecs,
    offer_problem,
    offered_simulcast,
    pin_codecs,
    receive_simulcast,
)
from sfu.aiortc_adapter.send import (
    forget_sent_packets,
    keep_compact_rtp_history,
    observe_downlink,
    redirect_keyframe_requests,
    sent_packets_kept,
    stamp_audio_level,
)

__all__ = [
    "MAX_SIMULCAST_LAYERS",
    "PUBLISHER_REMB_FLOOR_BPS",
    "REMB_FLOOR_QUIET_S",
    "REPAIRED_RID_URI",
    "RID_URI",
    "TESTED_AIOICE",
    "TESTED_AIORTC",
    "AdapterIncompatible",
    "CompactRateCounter",
    "PortRange",
    "ask_for_opus_dtx",
    "bundle_transport",
    "check_compatibility",
    "close_half_built",
    "count_keyframe_requests",
    "create_offer",
    "drop_outgoing_rtp",
    "forget_sent_packets",
    "install_patches",
    "keep_compact_rtp_history",
    "keep_remb_floor",
    "negotiated_codec",
    "negotiated_codecs",
    "observe_downlink",
    "offer_problem",
    "offer_simulcast",
    "offered_simulcast",
    "pin_codecs",
    "receive_simulcast",
    "receiver_codec",
    "redirect_keyframe_requests",
    "request_keyframe",
    "send_raw_text_frame",
    "send_simulcast_layer",
    "sent_packets_kept",
    "set_host_candidate_policy",
    "set_ice_host_addresses",
    "stamp_audio_level",
    "stamp_rid",
    "tap_receiver",
]

_installed = False


def install_patches() -> None:
    """Install every module-wide replacement, once: the server (create_app) or a client (RoomClient) calls this
    when it starts, never an import; a second call does nothing. What each replaces is in its module's docstring:
    ice (connect respecting close), sdp (codec filter honouring pin_codecs, rid extensions for video), sctp (bad
    text as bytes), clock (time.time for datetime), receive (no decoder thread when tapped, compact rate counter),
    bundle (packets of an unknown SSRC routed by their MID).
    """
    global _installed
    if _installed:
        return
    _installed = True
    for module in (ice, sdp, sctp, clock, receive, bundle):
        module.install()
