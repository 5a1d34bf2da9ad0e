"""Decoded audio, once per speaker, for the captions pipeline.

The tap is one more sink on an audio publication. It decodes each Opus frame once, however many
people listen (listeners get the encoded frames), and hands 48 kHz mono int16 PCM to a consumer.
Opus decoding costs tens of microseconds per 20 ms frame, so it runs inline on the event loop.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

import av
import numpy as np
from aiortc.codecs import get_decoder
from aiortc.jitterbuffer import JitterFrame

from sfu.publication import EncodedFrame, Publication

logger = logging.getLogger(__name__)

PcmConsumer = Callable[[np.ndarray, float], None]  # (48 kHz mono int16 samples, time.monotonic() received)


class DecodedAudioTap:
    def __init__(self, publication: Publication, consume: PcmConsumer) -> None:
        if publication.kind != "audio":
            raise ValueError("decoded audio taps only audio publications")
        self.publication = publication
        self._consume = consume
        self._decoder = None
        self._decoder_codec: str | None = None
        self.frames_decoded = 0
        self.decode_errors = 0
        publication.add_sink(self)

    def deliver(self, frame: EncodedFrame) -> None:
        codec = self.publication.codec
        if codec is None:
            return
        if self._decoder is None or self._decoder_codec != codec.mimeType:
            self._decoder = get_decoder(codec)
            self._decoder_codec = codec.mimeType
        try:
            decoded = self._decoder.decode(JitterFrame(frame.data, frame.timestamp))
        except av.FFmpegError:
            self.decode_errors += 1
            return
        self.frames_decoded += 1
        for audio in decoded:
            samples = audio.to_ndarray()  # s16, interleaved (1, samples * channels)
            channels = len(audio.layout.channels)
            pcm = samples.reshape(-1, channels).mean(axis=1).astype(np.int16) if channels > 1 \
                else samples.reshape(-1)
            self._consume(pcm, frame.received_at)

    def close(self) -> None:
        self.publication.remove_sink(self)
        self._decoder = None
