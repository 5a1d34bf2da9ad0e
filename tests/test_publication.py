"""Publication: keyframe gating, rate-limited keyframe requests and fan-out, fed real VP8 frames."""

from __future__ import annotations

import asyncio

import pytest
from aiortc.rtcrtpparameters import RTCRtpCodecParameters

from sfu.aiortc_adapter.framing import AssembledFrame
from sfu.contrib.client import encode_vp8_clip
from sfu.media import publication as publication_module
from sfu.media.codecs import is_keyframe
from sfu.media.publication import EncodedFrame, Publication

VP8 = RTCRtpCodecParameters(mimeType="video/VP8", clockRate=90000, payloadType=96)
VP9 = RTCRtpCodecParameters(mimeType="video/VP9", clockRate=90000, payloadType=98)
OPUS = RTCRtpCodecParameters(mimeType="audio/opus", clockRate=48000, channels=2, payloadType=111)
SSRC = 0xC0FFEE


@pytest.fixture(scope="module")
def clip() -> list[bytes]:
    frames = encode_vp8_clip(frames=40, width=64, height=48, keyframe_interval=10)
    assert [i for i, f in enumerate(frames) if is_keyframe("video/VP8", f)] == [0, 10, 20, 30]
    return frames


class Recorder:
    def __init__(self) -> None:
        self.frames: list[EncodedFrame] = []

    def deliver(self, frame: EncodedFrame) -> None:
        self.frames.append(frame)


class FakeClock:
    def __init__(self) -> None:
        self.now = 500.0

    def __call__(self) -> float:
        return self.now


class Setup:
    def __init__(self, kind: str = "video", clock=None) -> None:  # type: ignore[no-untyped-def]
        self.plis: list[int] = []
        self.clock = clock or FakeClock()
        self.pub = Publication("alice", kind, self.plis.append, clock=self.clock)
        self.sink = Recorder()
        self.pub.add_sink(self.sink)

    def feed(self, clip: list[bytes], indices, codec=VP8, discontinuity_at=()) -> None:  # type: ignore[no-untyped-def]
        for i in indices:
            self.pub.on_assembled(AssembledFrame(clip[i], i * 3000, codec.payloadType, SSRC,
                                                 i in discontinuity_at), codec)

    def delivered(self) -> list[int]:
        return [f.timestamp // 3000 for f in self.sink.frames]


async def test_video_forwards_nothing_before_the_first_keyframe_and_asks_for_one(clip: list[bytes]) -> None:
    s = Setup()
    try:
        s.feed(clip, range(3, 10))  # joined mid-stream: deltas only
        assert s.sink.frames == []
        assert s.plis == [SSRC]  # one PLI, then rate limited however many deltas arrive
        s.feed(clip, range(10, 15))
        assert s.delivered() == [10, 11, 12, 13, 14]
        first = s.sink.frames[0]
        assert first == EncodedFrame(clip[10], 30000, True, s.clock.now, SSRC)
        assert [f.keyframe for f in s.sink.frames] == [True, False, False, False, False]
        assert s.pub.frames_received == 12
        assert s.pub.codec is VP8
    finally:
        s.pub.close()


async def test_video_waits_for_a_keyframe_again_after_a_discontinuity(clip: list[bytes]) -> None:
    s = Setup()
    try:
        s.feed(clip, range(0, 15), discontinuity_at={5})
        assert s.delivered() == [0, 1, 2, 3, 4, 10, 11, 12, 13, 14]
        assert s.plis == [SSRC]
        # A discontinuity that lands on a keyframe needs no wait.
        s.feed(clip, range(20, 23), discontinuity_at={20})
        assert s.delivered()[-3:] == [20, 21, 22]
    finally:
        s.pub.close()


async def test_keyframe_requests_are_rate_limited_with_a_trailing_request(
        clip: list[bytes], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(publication_module, "KEYFRAME_REQUEST_INTERVAL", 0.2)
    loop = asyncio.get_running_loop()
    s = Setup(clock=loop.time)
    try:
        s.pub.request_keyframe()
        assert s.plis == []  # no SSRC known yet: nobody to ask
        s.feed(clip, [0])
        for _ in range(5):
            s.pub.request_keyframe()
        assert s.plis == [SSRC]  # the first goes out at once
        await asyncio.sleep(0.1)
        s.pub.request_keyframe()
        assert s.plis == [SSRC]
        await asyncio.sleep(0.2)  # the interval ended: the requests made inside it become one PLI
        assert s.plis == [SSRC, SSRC]
        assert s.pub.keyframe_requests_sent == 2
        await asyncio.sleep(0.3)
        assert len(s.plis) == 2  # nothing more was asked for
        s.pub.request_keyframe()
        assert len(s.plis) == 3  # outside the interval: immediate
    finally:
        s.pub.close()


async def test_closing_cancels_a_deferred_keyframe_request(
        clip: list[bytes], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(publication_module, "KEYFRAME_REQUEST_INTERVAL", 0.1)
    s = Setup(clock=asyncio.get_running_loop().time)
    s.feed(clip, [0])
    s.pub.request_keyframe()
    s.pub.request_keyframe()  # deferred
    s.pub.close()
    await asyncio.sleep(0.25)
    assert s.plis == [SSRC]
    assert s.pub.sinks == ()


async def test_a_new_video_sink_asks_for_a_keyframe(clip: list[bytes]) -> None:
    s = Setup()
    try:
        s.feed(clip, range(0, 3))
        assert s.plis == []
        s.clock.now += 1
        late = Recorder()
        s.pub.add_sink(late)
        assert s.plis == [SSRC]
        assert s.pub.sinks == (s.sink, late)
    finally:
        s.pub.close()


async def test_paused_publication_forwards_nothing(clip: list[bytes]) -> None:
    s = Setup()
    try:
        s.feed(clip, range(0, 5))
        s.pub.paused = True
        s.feed(clip, range(5, 25))
        assert s.delivered() == [0, 1, 2, 3, 4]
        assert s.pub.frames_received == 25
        s.pub.paused = False
        s.feed(clip, range(25, 33))  # the clip's keyframes are frames 0 and 30
        assert s.delivered()[-3:] == [30, 31, 32]
    finally:
        s.pub.close()


async def test_unpaused_video_resumes_at_a_keyframe(clip: list[bytes]) -> None:
    s = Setup()
    try:
        s.feed(clip, range(0, 5))
        s.pub.paused = True
        s.feed(clip, range(5, 12))
        s.pub.paused = False
        s.clock.now += 1
        plis_before = len(s.plis)
        s.feed(clip, range(12, 22))
        resumed = s.sink.frames[5:]
        assert resumed and resumed[0].keyframe, "first frame after unpausing must be a keyframe"
        assert [f.timestamp // 3000 for f in resumed] == [20, 21]
        assert len(s.plis) > plis_before
    finally:
        s.pub.close()


async def test_frames_without_a_forwardable_codec_are_ignored(clip: list[bytes]) -> None:
    s = Setup()
    try:
        s.feed(clip, range(0, 4), codec=VP9)
        for i in range(4):
            s.pub.on_assembled(AssembledFrame(clip[i], i * 3000, 97, SSRC, False), None)
        assert s.sink.frames == []
        assert s.pub.frames_received == 0
        assert s.pub.codec is None
        assert s.plis == []  # nothing is waiting on a keyframe of a codec we cannot forward
        s.feed(clip, range(0, 2))
        assert s.delivered() == [0, 1]
    finally:
        s.pub.close()


async def test_codec_follows_the_payload_type_in_use(clip: list[bytes]) -> None:
    other_pt = RTCRtpCodecParameters(mimeType="video/VP8", clockRate=90000, payloadType=120)
    s = Setup()
    try:
        s.feed(clip, [0])
        assert s.pub.codec is VP8
        s.feed(clip, [1], codec=other_pt)
        assert s.pub.codec is other_pt
        assert s.delivered() == [0, 1]
    finally:
        s.pub.close()


async def test_audio_forwards_every_frame_and_never_asks_for_keyframes() -> None:
    s = Setup(kind="audio")
    try:
        opus_frames = [bytes([0xFC, i]) for i in range(6)]
        for i, data in enumerate(opus_frames):
            s.pub.on_assembled(AssembledFrame(data, i * 960, 111, SSRC, i == 3), OPUS)
        assert [f.data for f in s.sink.frames] == opus_frames
        assert all(f.keyframe for f in s.sink.frames)
        s.pub.request_keyframe()
        s.pub.add_sink(Recorder())
        assert s.plis == []
    finally:
        s.pub.close()


async def test_fan_out_shares_one_frame_and_removed_sinks_get_nothing(clip: list[bytes]) -> None:
    s = Setup()
    second = Recorder()
    s.pub.add_sink(second)
    try:
        s.feed(clip, range(0, 3))
        assert [id(f) for f in s.sink.frames] == [id(f) for f in second.frames]
        s.pub.remove_sink(second)
        s.pub.remove_sink(second)  # removing twice is harmless
        s.feed(clip, range(3, 5))
        assert len(s.sink.frames) == 5 and len(second.frames) == 3
    finally:
        s.pub.close()
    s.feed(clip, range(5, 7))
    assert len(s.sink.frames) == 5  # a closed publication has no sinks left
