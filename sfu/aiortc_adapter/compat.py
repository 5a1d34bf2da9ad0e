"""The pin: which aiortc/aioice this adapter was written against, and one check that gathers every module's own.

Each module of the package keeps the private names it touches beside the patch that touches them and says, in its
own ``problems()``, what it relies on. ``check_compatibility()`` runs them all (at server start and in
tests/test_aiortc_adapter.py) and fails loudly, naming every problem at once, if these internals moved.
"""

from __future__ import annotations

from importlib.metadata import version

TESTED_AIORTC = "1.16.0"
TESTED_AIOICE = "0.13.0"


class AdapterIncompatible(RuntimeError):
    """The installed aiortc/aioice no longer has the internals this adapter relies on."""


def problems() -> list[str]:
    """The installed versions are the ones every module's check was written against."""
    found: list[str] = []
    for package, tested in (("aiortc", TESTED_AIORTC), ("aioice", TESTED_AIOICE)):
        if version(package) != tested:
            found.append(f"{package} {version(package)} installed, adapter written for {tested}")
    return found


def check_compatibility() -> None:
    """Raise AdapterIncompatible naming everything this package relies on that the installed aiortc/aioice changed."""
    # Imported here: each of these raises AdapterIncompatible, so they import this module first.
    from sfu.aiortc_adapter import bundle, client, clock, framing, ice, receive, sctp, sdp, send

    found = problems()
    for module in (receive, framing, send, clock, sdp, ice, sctp, bundle, client):
        found += module.problems()
    if found:
        raise AdapterIncompatible("; ".join(found))
