"""Messages between the server and its transcription worker process (a local socket, never the network).

Frames are a 4-byte big-endian length and a msgpack body, decoded against these schemas. The worker sees
speaker ids, Opus packets and room times; never names. Nothing here is written anywhere.
"""

from __future__ import annotations

import asyncio
import struct

import msgspec

MAX_FRAME = 8 * 1024 * 1024
_LENGTH = struct.Struct(">I")


class Message(msgspec.Struct, tag_field="type", tag=lambda name: name, frozen=True):
    pass


# --- server -> worker -------------------------------------------------------------------------

class OpenStream(Message):
    key: int
    language: str | None
    english: bool


class Audio(Message):
    """Opus packets of several streams, in arrival order: (stream key, payload, room time)."""

    packets: list[tuple[int, bytes, float]]


class SetLanguage(Message):
    key: int
    language: str | None


class SetEnglish(Message):
    key: int
    english: bool


class SetDominant(Message):
    """Whether this stream's speaker is the room's dominant speaker (decoded first under load)."""

    key: int
    dominant: bool


class CloseStream(Message):
    key: int


class StatsRequest(Message):
    request: int


class Shutdown(Message):
    """Finalise every stream (their last captions still come back), then exit. Decodes not started within
    ``grace`` seconds are dropped, so a backlog cannot hold the server's shutdown."""

    grace: float = 4.0


ToWorker = OpenStream | Audio | SetLanguage | SetEnglish | SetDominant | CloseStream | StatsRequest | Shutdown


# --- worker -> server -------------------------------------------------------------------------

class Ready(Message):
    multilingual: bool


class LoadFailed(Message):
    reason: str  # shown to people joining: "captions are off because ..."


class CaptionOut(Message):
    key: int
    segment_id: str
    text: str
    final: bool
    start: float
    end: float
    language: str
    task: str
    skipped: float = 0.0  # seconds of speech at the end of this final left uncaptioned (transcribe.events.Caption)


class StreamClosed(Message):
    key: int


class Stats(Message):
    request: int
    values: dict[str, float]


FromWorker = Ready | LoadFailed | CaptionOut | StreamClosed | Stats

_encoder = msgspec.msgpack.Encoder()
_to_worker = msgspec.msgpack.Decoder(ToWorker)
_from_worker = msgspec.msgpack.Decoder(FromWorker)


def frame(message: Message) -> bytes:
    body = _encoder.encode(message)
    return _LENGTH.pack(len(body)) + body


async def _read_body(reader: asyncio.StreamReader) -> bytes | None:
    """The next frame's body; None at a clean end of stream."""
    try:
        header = await reader.readexactly(_LENGTH.size)
    except asyncio.IncompleteReadError as exc:
        if exc.partial:
            raise
        return None
    (length,) = _LENGTH.unpack(header)
    if length > MAX_FRAME:
        raise ValueError(f"frame of {length} bytes is over the {MAX_FRAME} limit")
    return await reader.readexactly(length)


async def read_to_worker(reader: asyncio.StreamReader) -> ToWorker | None:
    body = await _read_body(reader)
    return None if body is None else _to_worker.decode(body)


async def read_from_worker(reader: asyncio.StreamReader) -> FromWorker | None:
    body = await _read_body(reader)
    return None if body is None else _from_worker.decode(body)
