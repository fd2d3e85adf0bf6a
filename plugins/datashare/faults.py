"""Deterministic kill points, for the crash tests: ``DATASHARE_KILL_AT=<point>`` kills the process there.

Each point names an instant between two writes whose order the store's recovery relies on (see the
points in :mod:`datashare.store.releases`, :mod:`datashare.store.ledger`, :mod:`datashare.pipeline.stages`).
The process is killed with SIGKILL, as an out-of-memory kill or a lost host would: no ``finally``
block, no cleanup. ``<point>@<n>`` kills at the n-th time the point is reached. Unset (always, in
production), a point costs one dictionary lookup.

``DATASHARE_PAUSE_DIR=<folder>`` makes a point a place to *wait* instead, for a test that kills a whole
host from outside (the real-scheduler suite SIGKILLs a Celery worker with every process it forked). A
point pauses only while the folder holds ``<point>.armed``, and only for the run named in it (Airflow's
``AIRFLOW_CTX_DAG_RUN_ID``; empty: any run). The first process to get there takes the file (a rename:
exactly one process pauses, so a retry runs through), writes ``<point>.paused`` (JSON: pid, run, task,
try) and sleeps until it is killed. Unarmed, a point costs one failed ``open``.
"""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path

ENV = "DATASHARE_KILL_AT"
PAUSE_ENV = "DATASHARE_PAUSE_DIR"
_hits: dict[str, int] = {}


def point(name: str) -> None:
    """Die here (or pause, see the module docstring) if the environment asks for it."""
    pause_dir = os.environ.get(PAUSE_ENV)
    if pause_dir:
        _pause(Path(pause_dir), name)
    wanted = os.environ.get(ENV)
    if not wanted:
        return
    target, _, nth = wanted.partition("@")
    if target != name:
        return
    _hits[name] = _hits.get(name, 0) + 1
    if _hits[name] >= int(nth or 1):
        os.kill(os.getpid(), signal.SIGKILL)


def _pause(folder: Path, name: str) -> None:
    """Wait here for good if ``<name>.armed`` is in ``folder`` and names this run (or none)."""
    armed = folder / f"{name}.armed"
    try:
        wanted = armed.read_text().strip()
    except OSError:
        return  # not armed: the usual case
    run_id = os.environ.get("AIRFLOW_CTX_DAG_RUN_ID", "")
    if wanted and wanted != run_id:
        return
    taken = folder / f"{name}.taken-{os.getpid()}"
    try:
        armed.rename(taken)  # atomic: one process wins, every later one (a retry) runs through
    except OSError:
        return
    where = {
        "pid": os.getpid(),
        "point": name,
        "run_id": run_id,
        "task_id": os.environ.get("AIRFLOW_CTX_TASK_ID"),
        "try_number": os.environ.get("AIRFLOW_CTX_TRY_NUMBER"),
    }
    taken.write_text(json.dumps(where))
    taken.replace(folder / f"{name}.paused")  # the waiting test reads it whole or not at all
    while True:
        time.sleep(3600)
