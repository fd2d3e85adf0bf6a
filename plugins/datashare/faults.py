"""Deterministic kill points, for the crash tests: ``DATASHARE_KILL_AT=<point>`` kills the process there.

Each point names an instant between two writes whose order the store's recovery relies on (see the
points in :mod:`datashare.store.releases`, :mod:`datashare.store.ledger`, :mod:`datashare.pipeline.stages`).
The process is killed with SIGKILL, as an out-of-memory kill or a lost host would: no ``finally``
block, no cleanup. ``<point>@<n>`` kills at the n-th time the point is reached. Unset (always, in
production), a point costs one dictionary lookup.
"""

from __future__ import annotations

import os
import signal

ENV = "DATASHARE_KILL_AT"
_hits: dict[str, int] = {}


def point(name: str) -> None:
    """Die here if the environment asks for it."""
    wanted = os.environ.get(ENV)
    if not wanted:
        return
    target, _, nth = wanted.partition("@")
    if target != name:
        return
    _hits[name] = _hits.get(name, 0) + 1
    if _hits[name] >= int(nth or 1):
        os.kill(os.getpid(), signal.SIGKILL)
