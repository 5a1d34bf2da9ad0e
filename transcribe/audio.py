"""Audio format handling: int16/float32 at 48 kHz in, float32 mono at 16 kHz (Whisper's rate) out."""

from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

WHISPER_RATE = 16_000


def to_float32_mono(pcm: np.ndarray) -> np.ndarray:
    """int16 or float PCM (mono; a single-channel 2-D array is accepted) as float32 in [-1, 1]."""
    arr = np.asarray(pcm)
    if arr.ndim == 2 and 1 in arr.shape:
        arr = arr.reshape(-1)
    if arr.ndim != 1:
        raise ValueError(f"expected mono PCM, got shape {arr.shape}")
    if arr.dtype == np.int16:
        return arr.astype(np.float32) / 32768.0
    if np.issubdtype(arr.dtype, np.floating):
        return arr.astype(np.float32, copy=False)
    raise TypeError(f"expected int16 or float PCM, got {arr.dtype}")


def lowpass_taps(factor: int, taps_per_phase: int = 24) -> np.ndarray:
    """Windowed-sinc anti-alias filter for decimation by ``factor`` (cutoff 0.9 x the new Nyquist)."""
    n = factor * taps_per_phase + 1
    cutoff = 0.9 * 0.5 / factor  # cycles per input sample
    t = np.arange(n) - (n - 1) / 2
    taps = 2 * cutoff * np.sinc(2 * cutoff * t) * np.blackman(n)
    return (taps / taps.sum()).astype(np.float32)


class Resampler:
    """Streaming integer-factor decimator (48 kHz -> 16 kHz by default).

    Keeps the filter history and the decimation phase between chunks, so a stream cut into 20 ms chunks
    resamples exactly like the whole signal would (no clicks at chunk edges).
    """

    def __init__(self, in_rate: int = 48_000, out_rate: int = WHISPER_RATE) -> None:
        if in_rate % out_rate:
            raise ValueError(f"only integer ratios are supported, got {in_rate} -> {out_rate}")
        self.factor = in_rate // out_rate
        self._taps = lowpass_taps(self.factor)[::-1].copy()
        self._history = np.zeros(len(self._taps) - 1, dtype=np.float32)
        self._phase = 0  # index, in the next chunk, of the next input sample that yields an output

    def process(self, samples: np.ndarray) -> np.ndarray:
        if self.factor == 1:
            return samples.astype(np.float32, copy=True)
        x = np.concatenate((self._history, samples))
        windows = sliding_window_view(x, len(self._taps))  # windows[i] ends at input sample i
        out = windows[self._phase :: self.factor] @ self._taps
        produced = len(range(self._phase, len(samples), self.factor))
        self._phase = self._phase + produced * self.factor - len(samples)
        self._history = x[len(x) - len(self._history) :]
        return out.astype(np.float32, copy=False)
