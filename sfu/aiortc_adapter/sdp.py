"""Offers and answers: what aiortc's SDP handling needs for a forwarding unit (aiortc 1.16.0).

1. Offer checks: aiortc reads any text as an SDP with no media sections; ``offer_problem`` refuses what would
   leave a connection half-built (``close_half_built`` closes one that an offer failed on anyway).
2. Codec pinning: aiortc rebuilds every m-line's codecs from its own table (its payload types) on each
   createOffer; ``pin_codecs`` makes forwarded m-lines reuse the payload types the browser chose (``install()``:
   aiortc's codec filter learns to honour it).
3. Opus DTX: ``ask_for_opus_dtx`` puts ``usedtx=1`` in our answer for a client's own audio.
4. Header extension IDs: aiortc numbers extensions from a fixed table on every offer; ``create_offer`` keeps the
   IDs this connection already negotiated.
5. Simulcast in (RID-based, RFC 8853; the receive half is in receive.py): aiortc parses the rid / repaired-rid
   header extensions but neither negotiates them nor receives more than one stream per m-line. Video m-lines
   negotiate both extensions (``install()``; the IDs are the browser's in answers and renumbered to free ones by
   create_offer), and the answer (and every server re-offer) gets ``a=rid:<id> recv`` and
   ``a=simulcast:recv`` for the layers the browser offered.
"""

from __future__ import annotations

import copy
import dis
import logging

import aiortc.codecs as aiortc_codecs
import aiortc.rtcpeerconnection as aiortc_pc
from aiortc import RTCPeerConnection, RTCRtpTransceiver, RTCSessionDescription
from aiortc import rtp as aiortc_rtp
from aiortc import sdp as aiortc_sdp
from aiortc.rtcdtlstransport import RTCDtlsTransport
from aiortc.rtcrtpparameters import RTCRtpCodecParameters, RTCRtpHeaderExtensionParameters, RTCRtpSendParameters

logger = logging.getLogger(__name__)

RID_URI = "urn:ietf:params:rtp-hdrext:sdes:rtp-stream-id"
REPAIRED_RID_URI = "urn:ietf:params:rtp-hdrext:sdes:repaired-rtp-stream-id"
MAX_SIMULCAST_LAYERS = 3


# --- 1. offer checks ------------------------------------------------------------------------------------------------

def offer_problem(sdp: str) -> str | None:
    """Why an offer is unusable, or None. aiortc reads any text as an SDP with no media sections, which
    would leave the connection with nothing to connect and the client unable to try again."""
    if not sdp.lstrip().startswith("v=0"):
        return "an SDP must start with v=0"
    try:
        parsed = aiortc_sdp.SessionDescription.parse(sdp)
    except Exception as exc:  # aiortc's parser raises assorted errors on malformed lines
        return f"malformed SDP ({exc})"
    if not parsed.media:
        return "the offer has no media or data channel sections"
    if any(not m.ice.usernameFragment or not m.dtls or not m.dtls.fingerprints for m in parsed.media):
        return "every section needs ICE credentials and a DTLS fingerprint"
    bundled = {mid for g in parsed.group if g.semantic == "BUNDLE" for mid in g.items}
    if any(m.port != 0 and m.rtp.muxId not in bundled for m in parsed.media):
        return "every section must be in the BUNDLE group (one transport, as browsers offer by default)"
    mids = [m.rtp.muxId for m in parsed.media]
    if len(set(mids)) != len(mids) or not bundled <= set(mids):
        # aiortc would build transceivers without a transport and fail half-way through the answer.
        return "each section needs its own mid, and the BUNDLE group may name only those mids"
    return None


async def close_half_built(pc: RTCPeerConnection) -> None:
    """Close a connection an offer failed on half-way, as far as it was built.

    aiortc's close() stops every transceiver's transports and raises at the first transceiver that never
    got one (a failed setRemoteDescription/createAnswer leaves such), leaving the rest running.
    """
    try:
        await pc.close()
        return
    except AttributeError:
        logger.debug("closing a half-built connection transport by transport")
    for transceiver in pc.getTransceivers():
        dtls = transceiver.receiver.transport
        for transport in (dtls, dtls.transport if dtls is not None else None):
            if transport is not None:
                try:
                    await transport.stop()
                except Exception:  # already stopped, or never started
                    logger.debug("a transport of a half-built connection would not stop")


def bundle_transport(pc: RTCPeerConnection) -> RTCDtlsTransport | None:
    """The DTLS transport every BUNDLEd m-line shares (the first mid of the remote BUNDLE group)."""
    description = pc.remoteDescription
    if description is None:
        return None
    parsed = aiortc_sdp.SessionDescription.parse(description.sdp)
    bundle = next((g for g in parsed.group if g.semantic == "BUNDLE" and g.items), None)
    first_mid = bundle.items[0] if bundle else (parsed.media[0].rtp.muxId if parsed.media else None)
    for transceiver in pc.getTransceivers():
        if transceiver.mid == first_mid:
            return transceiver.receiver.transport
    if pc.sctp is not None:
        return pc.sctp.transport
    return None


# --- 2, 3. codecs ---------------------------------------------------------------------------------------------------

def negotiated_codec(transceiver: RTCRtpTransceiver) -> RTCRtpCodecParameters | None:
    """The codec the remote side will send first: aiortc keeps the negotiated list privately."""
    codecs: list[RTCRtpCodecParameters] = transceiver._codecs
    primary = [c for c in codecs if not c.mimeType.lower().endswith("/rtx")]
    return primary[0] if primary else None


def negotiated_codecs(transceiver: RTCRtpTransceiver) -> list[RTCRtpCodecParameters]:
    return list(transceiver._codecs)


class _ExactCodecs(list):  # type: ignore[type-arg]
    """Codec "preferences" that are the exact codecs, payload types included, to offer again."""


_original_filter_preferred_codecs = aiortc_pc.filter_preferred_codecs


def _filter_keeping_exact(codecs: list[RTCRtpCodecParameters], preferred: list) -> list[RTCRtpCodecParameters]:  # type: ignore[type-arg]
    if isinstance(preferred, _ExactCodecs):
        return [copy.deepcopy(c) for c in preferred]
    return _original_filter_preferred_codecs(codecs, preferred)


def pin_codecs(transceiver: RTCRtpTransceiver, codecs: list[RTCRtpCodecParameters]) -> None:
    """Offer exactly `codecs` on this m-line from now on.

    aiortc rebuilds every m-line's codecs from its own table (its payload types) on each createOffer.
    Browsers reject a re-offer that changes a negotiated m-line's payload types, and within a BUNDLE
    group one payload type must mean one codec on every m-line, so forwarded m-lines must reuse the
    payload types the browser itself chose.
    """
    transceiver._preferred_codecs = _ExactCodecs(codecs)


def ask_for_opus_dtx(transceiver: RTCRtpTransceiver) -> None:
    """Put ``usedtx=1`` in the Opus fmtp of our answer for the client's own audio: a browser then sends
    almost nothing while its person is silent. aiortc builds the answer from the negotiated codecs, which
    copy the offer's parameters; pinned re-offers reuse the same objects, so DTX survives renegotiation."""
    for codec in transceiver._codecs:
        if codec.mimeType.lower() == "audio/opus":
            codec.parameters["usedtx"] = 1


# --- 4. header extension IDs ----------------------------------------------------------------------------------------

def _session_header_extensions(pc: RTCPeerConnection) -> dict[str, list[RTCRtpHeaderExtensionParameters]]:
    """aiortc's header extensions, renumbered to the IDs already negotiated on this connection."""
    negotiated: dict[str, int] = {}
    for description in (pc.remoteDescription, pc.localDescription):
        if description is None:
            continue
        for media in aiortc_sdp.SessionDescription.parse(description.sdp).media:
            for extension in media.rtp.headerExtensions:
                negotiated.setdefault(extension.uri, extension.id)
    used = set(negotiated.values())
    free = (i for i in range(1, 15) if i not in used)
    result: dict[str, list[RTCRtpHeaderExtensionParameters]] = {}
    for kind, extensions in aiortc_codecs.HEADER_EXTENSIONS.items():
        result[kind] = []
        for extension in extensions:
            if extension.uri not in negotiated:
                negotiated[extension.uri] = next(free)
            result[kind].append(RTCRtpHeaderExtensionParameters(id=negotiated[extension.uri], uri=extension.uri))
    return result


async def create_offer(pc: RTCPeerConnection) -> RTCSessionDescription:
    """pc.createOffer(), keeping the RTP header extension IDs this connection already negotiated.

    aiortc numbers extensions from a fixed table on every offer; a browser refuses a re-offer that
    moves an ID ("RTP extension ID reassignment not supported"). createOffer never awaits, so the
    table is swapped only while it runs.
    """
    original = aiortc_pc.HEADER_EXTENSIONS
    aiortc_pc.HEADER_EXTENSIONS = _session_header_extensions(pc)
    try:
        return await pc.createOffer()
    finally:
        aiortc_pc.HEADER_EXTENSIONS = original


# --- 5. simulcast in ------------------------------------------------------------------------------------------------

def offered_simulcast(sdp: str) -> dict[str, list[str]]:
    """The RID layers each m-line of a client's offer sends (`a=simulcast:send`), by mid, at most
    MAX_SIMULCAST_LAYERS each. Paused layers (~rid) and alternatives after the first are left out."""
    layers: dict[str, list[str]] = {}
    for section in _media_sections(sdp):
        mid = next((line[6:].strip() for line in section if line.startswith("a=mid:")), None)
        declared = {line[6:].split()[0] for line in section if line.startswith("a=rid:") and " send" in line}
        for line in section:
            if not line.startswith("a=simulcast:"):
                continue
            words = line[len("a=simulcast:"):].split()
            if len(words) < 2 or words[0] != "send" or mid is None:
                continue
            rids = []
            for stream in words[1].split(";"):
                rid = stream.split(",")[0].lstrip("~")
                if rid in declared and _valid_rid(rid) and rid not in rids:
                    rids.append(rid)
            if rids:
                layers[mid] = rids[:MAX_SIMULCAST_LAYERS]
    return layers


def _valid_rid(rid: str) -> bool:
    return 0 < len(rid) <= 16 and all(c.isalnum() or c in "-_" for c in rid)


def _media_sections(sdp: str) -> list[list[str]]:
    sections: list[list[str]] = []
    for line in sdp.splitlines():
        if line.startswith("m="):
            sections.append([])
        if sections:
            sections[-1].append(line)
    return sections


def receive_simulcast(sdp: str, layers: dict[str, list[str]]) -> str:
    """Our SDP (answer or re-offer) with `a=rid:<id> recv` and `a=simulcast:recv` on each m-line that
    receives simulcast; aiortc's serializer knows neither attribute."""
    if not layers:
        return sdp
    out: list[str] = []
    mid: str | None = None

    def close_section() -> None:
        if mid in layers:
            out.extend(f"a=rid:{rid} recv" for rid in layers[mid])
            out.append("a=simulcast:recv " + ";".join(layers[mid]))

    for line in sdp.splitlines():
        if line.startswith("m="):
            close_section()
            mid = None
        elif line.startswith("a=mid:"):
            mid = line[6:].strip()
        out.append(line)
    close_section()
    return "\r\n".join(out) + "\r\n"


# --- install and check ----------------------------------------------------------------------------------------------

def install() -> None:
    """aiortc's codec filter honours pin_codecs(); video m-lines negotiate the rid / repaired-rid extensions."""
    aiortc_pc.filter_preferred_codecs = _filter_keeping_exact
    video_extensions = aiortc_codecs.HEADER_EXTENSIONS["video"]
    for uri in (RID_URI, REPAIRED_RID_URI):
        if all(e.uri != uri for e in video_extensions):
            video_extensions.append(RTCRtpHeaderExtensionParameters(id=len(video_extensions) + 10, uri=uri))


def problems() -> list[str]:
    found: list[str] = []
    create_offer_names = aiortc_pc.RTCPeerConnection.createOffer.__code__.co_names
    if "filter_preferred_codecs" not in create_offer_names:
        found.append("RTCPeerConnection.createOffer no longer filters codecs via filter_preferred_codecs")
    if "_codecs" not in aiortc_pc.RTCPeerConnection._RTCPeerConnection__localRtp.__code__.co_names:
        found.append("answers are no longer built from transceiver._codecs (ask_for_opus_dtx)")
    if "HEADER_EXTENSIONS" not in create_offer_names:
        found.append("RTCPeerConnection.createOffer no longer reads HEADER_EXTENSIONS")
    if any(i.opname == "GET_AWAITABLE" for i in dis.get_instructions(aiortc_pc.RTCPeerConnection.createOffer)):
        found.append("RTCPeerConnection.createOffer now awaits; create_offer() cannot swap tables around it")
    return found + _simulcast_problems()


def _simulcast_problems() -> list[str]:
    """What negotiating the rid / repaired-rid extensions relies on."""
    found: list[str] = []
    uris = {"rtp_stream_id": RID_URI, "repaired_rtp_stream_id": REPAIRED_RID_URI}
    extension_map = aiortc_rtp.HeaderExtensionsMap()
    extension_map.configure(RTCRtpSendParameters(headerExtensions=[
        RTCRtpHeaderExtensionParameters(id=i + 5, uri=uri) for i, uri in enumerate(uris.values())]))
    packed = extension_map.set(aiortc_rtp.HeaderExtensions(rtp_stream_id="h", repaired_rtp_stream_id="m"))
    values = extension_map.get(*packed)
    if (values.rtp_stream_id, values.repaired_rtp_stream_id) != ("h", "m"):
        found.append("aiortc no longer parses the rid / repaired-rid header extensions")
    if not any(e.uri == "urn:ietf:params:rtp-hdrext:sdes:mid" for e in aiortc_codecs.HEADER_EXTENSIONS["video"]):
        found.append("aiortc's HEADER_EXTENSIONS table changed shape")
    if "HEADER_EXTENSIONS" not in aiortc_pc.RTCPeerConnection.setRemoteDescription.__code__.co_names:
        found.append("setRemoteDescription no longer negotiates header extensions from HEADER_EXTENSIONS")
    return found
