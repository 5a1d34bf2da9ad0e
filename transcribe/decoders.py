"""How many Whisper decodes run side by side, and on how many CPU threads each.

One single-threaded decoder per core: a decode of a few seconds of audio parallelises poorly inside
CTranslate2, so on this project's 2-core reference machine two decodes side by side did 1.5-1.8x the work
of one decode on two threads, at about the same latency per decode (``python -m bench.captions
--decoders 1:2`` against the default). Each decoder keeps its own model replica in CTranslate2 (more
memory), so the automatic count is capped.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

MAX_AUTO_DECODERS = 4


@dataclass(frozen=True)
class DecoderLayout:
    workers: int  # decodes that may run at once (threads of the decode scheduler, CTranslate2 replicas)
    cpu_threads: int  # CTranslate2 threads inside each decode

    def __str__(self) -> str:
        return f"{self.workers} decoder{'s' if self.workers != 1 else ''} x {self.cpu_threads} thread" + (
            "s" if self.cpu_threads != 1 else "")


def usable_cores() -> int:
    """Cores this process may run on (taskset and cpusets narrow it; os.cpu_count() does not see them)."""
    try:
        return len(os.sched_getaffinity(0)) or 1
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def decoder_layout(cores: int, *, workers: int | None = None, nodes: int = 1) -> DecoderLayout:
    """``workers`` None: one decoder per core of this node's share of the machine (nodes split the cores),
    at most MAX_AUTO_DECODERS. The node's cores are then shared out between the decoders' threads."""
    share = max(1, cores // max(1, nodes))
    if workers is None:
        workers = min(share, MAX_AUTO_DECODERS)
    if workers < 1:
        raise ValueError("workers must be >= 1")
    return DecoderLayout(workers, max(1, share // workers))
