"""Typed wire messages: WebSocket signaling and the data channel. docs/protocol.md describes each one.

Every inbound message is decoded against these schemas before anything acts on it; a message that does
not fit gets an ``error`` reply and changes nothing.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

import msgspec

MAX_SIGNALING_BYTES = 256 * 1024  # an SDP with many m-lines stays well under this
MAX_CHANNEL_BYTES = 16 * 1024

RoomName = Annotated[str, msgspec.Meta(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9][A-Za-z0-9_-]*$")]
DisplayName = Annotated[str, msgspec.Meta(min_length=1, max_length=40)]
Sdp = Annotated[str, msgspec.Meta(min_length=10, max_length=MAX_SIGNALING_BYTES)]
Token = Annotated[str, msgspec.Meta(min_length=8, max_length=128)]
LanguageCode = Annotated[str, msgspec.Meta(min_length=2, max_length=8, pattern=r"^[a-z]{2,3}(-[A-Za-z]{2,4})?$")]


class Struct(msgspec.Struct, forbid_unknown_fields=True, omit_defaults=False, tag_field="type"):
    pass


# --- client -> server, WebSocket -------------------------------------------------------------

class Join(Struct, tag="join"):
    room: RoomName
    name: DisplayName
    resume: Token | None = None  # token from an earlier "joined", to take back one's place after a drop
    secret: Annotated[str, msgspec.Meta(max_length=128)] | None = None  # facilitator secret
    language: LanguageCode | None = None  # language I speak; None = detect


class Offer(Struct, tag="offer"):
    sdp: Sdp


class Answer(Struct, tag="answer"):
    sdp: Sdp


class Leave(Struct, tag="leave"):
    pass


ClientSignal = Join | Offer | Answer | Leave


# --- server -> client, WebSocket -------------------------------------------------------------

class IceServer(msgspec.Struct, omit_defaults=True):
    urls: list[str]
    username: str | None = None
    credential: str | None = None


class ParticipantInfo(msgspec.Struct):
    id: str
    name: str
    role: str = "participant"


class TrackInfo(msgspec.Struct):
    participant_id: str
    kind: str


class CaptionsStatus(msgspec.Struct):
    enabled: bool
    model: str | None = None
    reason: str | None = None  # why captions are off


class Joined(Struct, tag="joined"):
    participant_id: str
    room: str
    resume: str
    ice_servers: list[IceServer]
    participants: list[ParticipantInfo]
    captions: CaptionsStatus


class ServerOffer(Struct, tag="offer"):
    sdp: str
    tracks: dict[str, TrackInfo]  # mid -> whose media arrives on that transceiver


class ServerAnswer(Struct, tag="answer"):
    sdp: str


class ParticipantJoined(Struct, tag="participant-joined"):
    participant: ParticipantInfo


class ParticipantLeft(Struct, tag="participant-left"):
    participant_id: str


class ErrorMessage(Struct, tag="error"):
    code: str
    message: str


class Bye(Struct, tag="bye"):
    reason: str


# --- data channel ----------------------------------------------------------------------------

class SetSpokenLanguage(Struct, tag="set-spoken-language"):
    language: LanguageCode | None


ChannelRequest = SetSpokenLanguage


class Caption(Struct, tag="caption"):
    segment_id: str
    speaker_id: str
    speaker_name: str
    text: str
    final: bool
    start: float
    end: float
    language: str


class ChannelError(Struct, tag="error"):
    code: str
    message: str


_signal_decoder = msgspec.json.Decoder(ClientSignal)
_encoder = msgspec.json.Encoder()


class InvalidMessage(ValueError):
    pass


def decode_signal(raw: str | bytes) -> ClientSignal:
    if len(raw) > MAX_SIGNALING_BYTES:
        raise InvalidMessage(f"message larger than {MAX_SIGNALING_BYTES} bytes")
    try:
        return _signal_decoder.decode(raw)
    except msgspec.DecodeError as exc:
        raise InvalidMessage(str(exc)) from None


def decode_channel(raw: str | bytes, schema: Any) -> Any:
    if len(raw) > MAX_CHANNEL_BYTES:
        raise InvalidMessage(f"message larger than {MAX_CHANNEL_BYTES} bytes")
    try:
        return msgspec.json.decode(raw, type=schema)
    except msgspec.DecodeError as exc:
        raise InvalidMessage(str(exc)) from None


def encode(message: msgspec.Struct) -> str:
    return _encoder.encode(message).decode()
