"""Data channels: a text frame that is not UTF-8 reaches the channel as bytes (aiortc 1.16.0).

aiortc decodes a data-channel text frame as UTF-8 inside its SCTP receive path; invalid bytes raise there and
take the sender's whole connection down. Such frames are handed on as bytes instead (``install()``), so our own
decoder answers them with an ``error``.
"""

from __future__ import annotations

import aiortc.rtcsctptransport as aiortc_sctp

_original_data_channel_receive = aiortc_sctp.RTCSctpTransport._data_channel_receive


async def _receive_bad_text_as_bytes(self: aiortc_sctp.RTCSctpTransport, stream_id: int, pp_id: int,
                                     data: bytes) -> None:
    if pp_id == aiortc_sctp.WEBRTC_STRING:
        try:
            data.decode("utf8")
        except UnicodeDecodeError:
            pp_id = aiortc_sctp.WEBRTC_BINARY
    await _original_data_channel_receive(self, stream_id, pp_id, data)


def install() -> None:
    aiortc_sctp.RTCSctpTransport._data_channel_receive = _receive_bad_text_as_bytes  # type: ignore[method-assign]


def problems() -> list[str]:
    found: list[str] = []
    receive = _original_data_channel_receive.__code__
    if "decode" not in receive.co_names or "WEBRTC_STRING" not in receive.co_names:
        found.append("RTCSctpTransport._data_channel_receive no longer decodes WEBRTC_STRING frames itself")
    if (aiortc_sctp.WEBRTC_STRING, aiortc_sctp.WEBRTC_BINARY) != (51, 53):
        found.append("aiortc's data-channel PPIDs moved")
    return found
