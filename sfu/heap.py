"""The server's heap and Python's cyclic garbage collector.

A full (generation 2) collection walks every tracked object and holds the event loop, and so everyone's
media, while it does. Most of a server's objects are made at start (modules, classes, functions: ~100k)
and live for ever; walking them at every full collection cost 0.4-0.6 s a time on a shared 2-core machine
(measured by bench.churn, where such pauses came every minute or so as the churn left cyclic garbage
behind). Freezing them once the server is set up leaves them out of every later collection.
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
