"""RTP packets -> encoded frames, driven packet by packet with scripted packets and an injected clock."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sfu.aiortc_adapter.framing import AssembledFrame, AudioFrameAssembler, VideoFrameAssembler, seq_after

PT = 96
SSRC = 0x1234ABCD


@dataclass
class Pkt:
    sequence_number: int
    timestamp: int
    marker: int
    payload_type: int = PT
    ssrc: int = SSRC
    _data: bytes = b""
    extensions: Any = None


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def frame(first_seq: int, timestamp: int, count: int) -> list[Pkt]:
    """One video frame of `count` packets; the last carries the marker bit. Payload names the packet."""
    packets = []
    for i in range(count):
        seq = (first_seq + i) % 65536
        packets.append(Pkt(seq, timestamp, int(i == count - 1), _data=f"[{timestamp}:{seq}]".encode()))
    return packets


def payload(packets: list[Pkt]) -> bytes:
    return b"".join(p._data for p in packets)


class VideoHarness:
    def __init__(self, loss_timeout: float = 0.25) -> None:
        self.clock = FakeClock()
        self.frames: list[AssembledFrame] = []
        self.assembler = VideoFrameAssembler(self.frames.append, loss_timeout=loss_timeout, clock=self.clock)
        self.plis = 0

    def add(self, *packets: Pkt) -> bool:
        """Feed packets; True if any add() asked for a PLI."""
        pli_any = False
        for packet in packets:
            pli, nothing = self.assembler.add(packet)
            assert nothing is None  # aiortc's receiver must never get a frame to decode
            pli_any = pli_any or pli
            self.plis += int(pli)
        return pli_any

    def sync(self, seq: int, timestamp: int = 0) -> None:
        """The tail of a frame joined midway: gives the assembler its first frame boundary (seq+1)."""
        self.add(Pkt(seq, timestamp, 1, _data=b"tail"))
        assert self.frames == []


def test_seq_after_wraps() -> None:
    assert seq_after(1, 0) and not seq_after(0, 1)
    assert seq_after(0, 65535) and seq_after(10, 65530)
    assert not seq_after(65535, 0)
    assert not seq_after(5, 5)


def test_in_order_frame_is_emitted_at_its_marker_packet_without_waiting_for_the_next_frame() -> None:
    h = VideoHarness()
    h.sync(99)
    f1 = frame(100, 3000, 3)
    assert h.add(*f1[:2]) is False
    assert h.frames == []  # incomplete: the marker packet is still to come
    assert h.add(f1[2]) is False
    assert h.frames == [AssembledFrame(payload(f1), 3000, PT, SSRC, False)]
    f2 = frame(103, 6000, 1)
    h.add(*f2)
    assert [f.data for f in h.frames] == [payload(f1), payload(f2)]
    assert h.assembler.frames_emitted == 2 and h.plis == 0


def test_packets_reordered_within_a_frame_are_put_back_in_sequence_order() -> None:
    h = VideoHarness()
    h.sync(9)
    f1 = frame(10, 90, 4)
    h.add(f1[3], f1[1])
    h.add(f1[0])
    assert h.frames == []
    h.add(f1[2])
    assert [f.data for f in h.frames] == [payload(f1)]
    assert h.frames[0].discontinuity is False


def test_missing_packet_holds_later_frames_until_the_retransmission_then_all_emit_in_order() -> None:
    h = VideoHarness()
    h.sync(199)
    a, b, c = frame(200, 1000, 3), frame(203, 4000, 2), frame(205, 7000, 2)
    lost = a[1]
    h.add(a[0], a[2], *b, *c)
    assert h.frames == []  # b and c are complete but must not overtake a
    h.clock.now += 0.1  # the NACKed packet comes back within the loss timeout
    assert h.add(lost) is False
    assert [f.data for f in h.frames] == [payload(a), payload(b), payload(c)]
    assert [f.timestamp for f in h.frames] == [1000, 4000, 7000]
    assert not any(f.discontinuity for f in h.frames)
    assert h.assembler.frames_abandoned == 0
    # A duplicate of an emitted packet (a second retransmission) changes nothing.
    h.add(lost)
    assert len(h.frames) == 3


def test_frame_never_completed_is_abandoned_after_loss_timeout_with_discontinuity_and_pli() -> None:
    h = VideoHarness(loss_timeout=0.25)
    h.sync(299)
    a, b, c, d = frame(300, 1000, 3), frame(303, 4000, 2), frame(305, 7000, 2), frame(307, 10000, 1)
    h.add(a[0], a[2])  # a[1] is lost for good
    h.clock.now += 0.1
    h.add(*b)
    h.clock.now += 0.1  # 0.2 s since a's packets: still within the timeout
    assert h.add(c[0]) is False
    assert h.frames == []
    h.clock.now += 0.1  # 0.3 s: a is given up on when the next packet arrives
    assert h.add(c[1]) is True
    assert [f.data for f in h.frames] == [payload(b), payload(c)]
    assert [f.discontinuity for f in h.frames] == [True, False]
    assert h.assembler.frames_abandoned == 1
    # The lost packet turning up late is not sent backwards.
    assert h.add(a[1]) is False
    h.add(*d)
    assert [f.data for f in h.frames] == [payload(b), payload(c), payload(d)]
    assert h.frames[-1].discontinuity is False
    assert h.plis == 1


def test_stall_without_any_marker_waiting_is_not_abandoned_yet() -> None:
    h = VideoHarness(loss_timeout=0.25)
    h.sync(9)
    big = frame(10, 500, 6)  # a large keyframe still arriving, its first packet lost
    h.add(*big[1:4])
    h.clock.now += 1.0
    assert h.add(big[4]) is False  # nothing to skip to: no frame end known yet
    assert h.assembler.frames_abandoned == 0
    h.add(big[0], big[5])
    assert [f.data for f in h.frames] == [payload(big)]


def test_sequence_numbers_wrap_at_65535() -> None:
    h = VideoHarness()
    h.sync(65532)
    a = frame(65533, 100, 4)  # 65533, 65534, 65535, 0
    b = frame(1, 200, 2)
    c = frame(3, 300, 3)
    assert [p.sequence_number for p in a] == [65533, 65534, 65535, 0]
    h.add(a[0], a[1], a[3], a[2])  # reordered across the wrap
    h.add(*b)
    lost = c[1]
    h.add(c[0], c[2])
    h.clock.now += 0.05
    h.add(lost)
    assert [f.data for f in h.frames] == [payload(a), payload(b), payload(c)]
    # Packets from just before the wrap are old now, not 65 000 packets in the future.
    h.add(Pkt(65535, 100, 1, _data=b"stale"))
    assert len(h.frames) == 3
    assert h.add(*frame(6, 400, 1)) is False
    assert len(h.frames) == 4 and h.plis == 0


def test_first_partial_frame_before_any_marker_is_skipped() -> None:
    h = VideoHarness()
    joined_midway = frame(47, 900, 4)[1:]  # packet 47, the frame's start, was never seen
    h.add(*joined_midway)
    assert h.frames == []
    nxt = frame(51, 1800, 2)
    h.add(*nxt)
    assert [f.data for f in h.frames] == [payload(nxt)]
    assert h.frames[0].discontinuity is False


def test_packets_before_the_first_boundary_are_ignored_even_if_they_would_complete_a_frame() -> None:
    h = VideoHarness()
    h.add(Pkt(10, 100, 0, _data=b"x"))  # no marker: no boundary yet, not kept
    h.add(Pkt(11, 100, 1, _data=b"y"))  # boundary: next frame starts at 12
    assert h.frames == []
    h.add(*frame(12, 200, 1))
    assert [f.timestamp for f in h.frames] == [200]


def test_window_overflow_resets_and_resynchronises_with_discontinuity() -> None:
    h = VideoHarness(loss_timeout=1e9)  # never abandons: only the window bound can act
    h.sync(999)
    # Packet 1000 (a one-packet frame) is lost; everything after it waits behind it.
    pli_seen_at = None
    seq = 1001
    for n in range(1100):
        if h.add(*frame(seq, 1000 + n, 1)):
            pli_seen_at = n
            break
        seq += 1
    assert pli_seen_at == 1024  # the 1025th waiting packet overflows the 1024-packet window
    assert h.frames == []
    # After the reset the assembler needs a new boundary: the first marker packet gives it.
    h.add(*frame(seq + 1, 9000, 1))
    assert h.frames == []
    after = frame(seq + 2, 9100, 2)
    h.add(*after)
    assert [f.data for f in h.frames] == [payload(after)]
    assert h.frames[0].discontinuity is True
    h.add(*frame(seq + 4, 9200, 1))
    assert h.frames[-1].discontinuity is False


# --- audio -----------------------------------------------------------------------------------


class AudioHarness:
    def __init__(self) -> None:
        self.frames: list[AssembledFrame] = []
        self.assembler = AudioFrameAssembler(self.frames.append)

    def add(self, seq: int, data: bytes | None = None) -> None:
        data = b"%d" % seq if data is None else data
        pli, nothing = self.assembler.add(Pkt(seq, seq * 960, 0, 111, 42, data))
        assert pli is False and nothing is None  # audio never asks for keyframes

    def seqs(self) -> list[int]:
        return [f.timestamp // 960 for f in self.frames]


def test_audio_packets_are_emitted_on_arrival() -> None:
    h = AudioHarness()
    h.add(5)
    assert h.frames == [AssembledFrame(b"5", 5 * 960, 111, 42, False)]
    h.add(6)
    h.add(7)
    assert h.seqs() == [5, 6, 7]
    assert not any(f.discontinuity for f in h.frames)


def test_audio_drops_late_and_duplicate_packets_and_flags_gaps_once() -> None:
    h = AudioHarness()
    for seq in (1, 2, 4, 3, 4, 5, 9, 8, 10):
        h.add(seq)
    assert h.seqs() == [1, 2, 4, 5, 9, 10]
    assert [f.discontinuity for f in h.frames] == [False, False, True, False, True, False]


def test_audio_wraps_without_a_false_gap() -> None:
    h = AudioHarness()
    for seq in (65534, 65535, 0, 1):
        h.add(seq)
    assert len(h.frames) == 4
    assert not any(f.discontinuity for f in h.frames)
    h.add(65535)  # from before the wrap: late
    assert len(h.frames) == 4


def test_audio_gap_before_an_empty_packet_is_flagged_on_the_next_real_frame() -> None:
    h = AudioHarness()
    h.add(1)
    h.add(3, b"")  # empty payload (e.g. padding-only): nothing to forward
    h.add(4)
    assert h.seqs() == [1, 4]
    assert [f.discontinuity for f in h.frames] == [False, True]


def test_audio_level_from_the_header_extension_rides_with_the_frame() -> None:
    from aiortc.rtp import HeaderExtensions

    frames: list[AssembledFrame] = []
    assembler = AudioFrameAssembler(frames.append)
    loud = HeaderExtensions()
    loud.audio_level = (True, 25)
    assembler.add(Pkt(1, 960, 0, 111, 42, b"a", loud))
    assembler.add(Pkt(2, 1920, 0, 111, 42, b"b", HeaderExtensions()))
    assert [f.audio_level for f in frames] == [25, None]
