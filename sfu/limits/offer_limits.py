"""Bounded work per SDP: cheap line counts refuse an oversized offer or answer before aiortc parses it.

aiortc parses an SDP and builds a transceiver per m-line and an ICE check per remote candidate on the
event loop that also forwards everyone's media. A well-formed offer with 500 m-lines or 3,000 candidates
kept that loop busy for seconds (a bystander's video fell from 15 to 1.4 fps). These checks read the text
once, line by line, and refuse it with a reason; docs/protocol.md lists the limits.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from sfu.limits.ratelimit import KeyedBuckets

MAX_SDP_BYTES = 128 * 1024  # a browser's offer is 3-8 KB; an answer in a 16-person room ~50 KB (parses in ~3 ms)
MAX_SDP_LINES = 2000
# The client's one offer: at most one audio, two video (camera, then screen) and one data channel section.
MAX_SECTIONS_OF_KIND = {"audio": 1, "video": 2, "application": 1}
MAX_OFFER_SECTIONS = sum(MAX_SECTIONS_OF_KIND.values())
MAX_CANDIDATES = 64  # ICE candidates in one SDP (a browser on a busy laptop offers 10-20)
OFFERS_PER_MINUTE = 20  # per client address, counted over all its connections, refused or not
JOINS_PER_MINUTE = 60  # per client address: each join is a participant, a peer connection and a broadcast
# Ad-hoc rooms open at once that one client address opened (each costs a directory entry, a facilitator
# link in the log and, with several nodes, a Redis lease); a room counts until it closes.
ADHOC_ROOMS_PER_ADDRESS = 5


class SdpRefused(Exception):
    """An SDP over a limit; the message says which."""


def _lines(sdp: str) -> list[str]:
    if len(sdp.encode("utf8", "surrogatepass")) > MAX_SDP_BYTES:
        raise SdpRefused(f"an SDP may be at most {MAX_SDP_BYTES // 1024} KiB")
    lines = sdp.splitlines()
    if len(lines) > MAX_SDP_LINES:
        raise SdpRefused(f"an SDP may have at most {MAX_SDP_LINES} lines")
    return lines


def _check_candidates(lines: list[str]) -> None:
    candidates = sum(1 for line in lines if line.startswith("a=candidate:"))
    if candidates > MAX_CANDIDATES:
        raise SdpRefused(f"an SDP may carry at most {MAX_CANDIDATES} ICE candidates (this one has {candidates})")


def check_offer(sdp: str) -> None:
    """The client's one offer: size, sections (one of each kind at most) and candidates."""
    lines = _lines(sdp)
    kinds = [line[2:].split(" ", 1)[0] for line in lines if line.startswith("m=")]
    if len(kinds) > MAX_OFFER_SECTIONS or any(kinds.count(k) > MAX_SECTIONS_OF_KIND.get(k, 1) for k in set(kinds)):
        raise SdpRefused("the offer may have at most one audio, two video (camera, then screen) and one application "
                         f"(data channel) section; it has {len(kinds)} sections")
    _check_candidates(lines)


def check_answer(sdp: str, offered_sections: int) -> None:
    """An answer to a server offer has exactly the offer's sections."""
    lines = _lines(sdp)
    sections = sum(1 for line in lines if line.startswith("m="))
    if sections != offered_sections:
        raise SdpRefused(f"the answer must have the offer's {offered_sections} sections; it has {sections}")
    _check_candidates(lines)


def section_count(sdp: str) -> int:
    return sum(1 for line in sdp.splitlines() if line.startswith("m="))


def address_rate(per_minute: float = OFFERS_PER_MINUTE, clock: Callable[[], float] = time.monotonic) -> KeyedBuckets:
    """Attempts per minute per client address (offers, joins): a flood of fresh connections each making one
    attempt is refused before any of them costs real work."""
    return KeyedBuckets(per_minute / 60.0, per_minute, clock=clock)
