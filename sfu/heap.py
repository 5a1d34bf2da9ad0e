"""The server's heap and Python's cyclic garbage collector.

A full (generation 2) collection walks every tracked object and holds the event loop, and so everyone's
media, while it does. Most of a server's objects are made at start (modules, classes, functions: ~70k for
`peerwell serve`) and live for ever, yet every full collection walked them again; churn leaves cyclic
garbage behind (closed connections), so full collections come every minute or so. Measured by bench.churn
(200 cycles, shared machine): in the server alone, the longest collection took 0.18 s of CPU before the
freeze and 0.10-0.14 s after; on the loaded machine that became 2-3 s of wall time either way, because
the machine did not run the process. Freezing them once the server is set up leaves them out of every
later collection.
"""

from __future__ import annotations

import gc


def freeze_startup_heap() -> None:
    """Collect what start-up left as garbage, then move everything alive into the permanent generation.

    Call once, after the application is built and before the first client: objects alive now are never
    walked again (reference counting still frees them). Not for test processes that start many servers:
    a cycle frozen there would never be collected.
    """
    gc.collect()
    gc.freeze()
