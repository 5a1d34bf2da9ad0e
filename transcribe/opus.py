"""Opus packets -> 48 kHz mono int16 PCM, for captions only (listeners get the encoded packets)."""

from __future__ import annotations

import av
import numpy as np

SAMPLE_RATE = 48_000


class OpusDecoder:
    """One speaker's decoder: Opus keeps state between packets, so never share one between speakers."""

    def __init__(self) -> None:
        self._codec = av.CodecContext.create("libopus", "r")
        self._codec.format = "s16"
        self._codec.layout = "stereo"
        self._codec.sample_rate = SAMPLE_RATE
        self.decode_errors = 0

    def decode(self, payload: bytes) -> np.ndarray:
        """The packet's samples (mono int16); empty for a packet libopus rejects (counted, never raised)."""
        try:
            frames = self._codec.decode(av.Packet(payload))
        except (av.FFmpegError, ValueError):
            self.decode_errors += 1
            return np.zeros(0, dtype=np.int16)
        chunks = []
        for frame in frames:
            samples = frame.to_ndarray()  # s16 interleaved: (1, samples * channels)
            channels = len(frame.layout.channels)
            chunks.append(samples.reshape(-1, channels).mean(axis=1).astype(np.int16) if channels > 1
                          else samples.reshape(-1))
        if not chunks:
            return np.zeros(0, dtype=np.int16)
        return chunks[0] if len(chunks) == 1 else np.concatenate(chunks)
