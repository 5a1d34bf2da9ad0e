"""Loss on purpose, through real peer connections: a lost packet is repaired on each leg (NACK and
retransmission, aiortc's per hop), frames still arrive byte-identical and none goes missing, and a
subscriber's keyframe request reaches the publisher's sender."""

from __future__ import annotations

import asyncio
import struct
from collections.abc import Callable

from sfu import aiortc_adapter
from sfu.contrib.client import TRAILER_SIZE, RoomClient, encode_vp8_clip, read_trailer
from tests.conftest import RunningServer, wait_for

EVERY = 15  # one video packet in this many is lost (its first copy only)


def lose_first_copies(payload_type: int, lost: list[int]) -> Callable[[bytes], bool]:
    """Drops the first transmission of every EVERY-th packet of `payload_type`; retransmissions get through
    (plain ones repeat the sequence number, RTX ones use another payload type)."""
    def should_drop(packet: bytes) -> bool:
        if len(packet) < 12 or packet[1] & 0x7F != payload_type:
            return False
        (sequence,) = struct.unpack_from("!H", packet, 2)
        if sequence % EVERY or sequence in lost:
            return False
        lost.append(sequence)
        return True
    return should_drop


def video_payload_type(client_or_pc: object) -> int:
    pc = getattr(client_or_pc, "pc", client_or_pc)
    for transceiver in pc.getTransceivers():  # type: ignore[attr-defined]
        codec = aiortc_adapter.negotiated_codec(transceiver)
        if codec is not None and codec.mimeType.lower() == "video/vp8":
            return codec.payloadType
    raise AssertionError("no VP8 transceiver")


def numbers_since(subscriber: RoomClient, publisher_id: str, first_number: int) -> list[int]:
    numbers = []
    for frame in subscriber.frames_from(publisher_id, "video"):
        mark = read_trailer(frame.data)
        assert mark is not None
        if mark[1] >= first_number:
            numbers.append(mark[1])
    return numbers


async def test_lost_packets_are_repaired_on_both_legs_and_keyframe_requests_reach_the_publisher(
        server: RunningServer) -> None:
    vp8 = encode_vp8_clip(frames=60)
    publisher = RoomClient(server.ws_url, "loss", "Publisher", vp8, None, tag=1)
    subscriber = RoomClient(server.ws_url, "loss", "Subscriber")
    await publisher.join()
    await subscriber.join()
    try:
        assert publisher.participant_id is not None and publisher.video_track is not None
        await wait_for(lambda: subscriber.count_from(publisher.participant_id, "video") > 30, 20)

        # A subscriber's keyframe request (PLI) reaches the publisher's sender through the server.
        sender = next(t.sender for t in publisher.pc.getTransceivers() if t.sender.track is publisher.video_track)
        keyframe_requests = aiortc_adapter.count_keyframe_requests(sender)
        await asyncio.sleep(1.0)  # past the server's 0.5 s request window from the join
        before = keyframe_requests()
        receiver = next(t.receiver for t in subscriber.pc.getTransceivers()
                        if subscriber.tracks.get(t.mid or "", {}).get("kind") == "video")
        stats = await receiver.getStats()
        ssrc = next(s.ssrc for s in stats.values() if s.type == "inbound-rtp")
        aiortc_adapter.request_keyframe(receiver, ssrc)
        await wait_for(lambda: keyframe_requests() > before, 5)

        room = server.rooms.rooms["loss"]
        server_to_subscriber = room.participants[subscriber.participant_id].media.pc  # type: ignore[index]
        # First the publisher's leg loses packets; then the subscriber's leg too (the first one still does).
        for leg, pc in (("publisher -> server", publisher.pc), ("server -> subscriber", server_to_subscriber)):
            lost: list[int] = []
            start = publisher.video_track.sent + 5  # frames sent from here on cross the lossy leg
            aiortc_adapter.drop_outgoing_rtp(pc, lose_first_copies(video_payload_type(pc), lost))
            await asyncio.sleep(3.0)
            end = publisher.video_track.sent - 10  # the last few may still be in flight
            got = set(numbers_since(subscriber, publisher.participant_id, start))
            assert len(lost) >= 5, f"{leg}: only {len(lost)} packets were lost on purpose"
            missing = [n for n in range(start, end) if n not in got]
            assert not missing, f"{leg}: frames {missing[:10]} never arrived although {len(lost)} packets were lost"

        # Byte-identical: every repaired frame is the frame that was sent.
        for frame in subscriber.frames_from(publisher.participant_id, "video"):
            mark = read_trailer(frame.data)
            assert mark is not None and frame.data[:-TRAILER_SIZE] == vp8[mark[1] % len(vp8)]
    finally:
        await subscriber.leave()
        await publisher.leave()
