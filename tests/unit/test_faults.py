"""The pause point of :mod:`datashare.faults`: armed for one run, exactly one process waits there."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from datashare import faults

POINT = "commit.data_placed"
SCRIPT = "from datashare import faults; faults.point('commit.data_placed'); print('passed')"


def _run(pause_dir: Path, run_id: str) -> subprocess.Popen[str]:
    env = {**os.environ, faults.PAUSE_ENV: str(pause_dir), "AIRFLOW_CTX_DAG_RUN_ID": run_id}
    env.pop(faults.ENV, None)
    return subprocess.Popen([sys.executable, "-c", SCRIPT], env=env, stdout=subprocess.PIPE, text=True)


def test_unarmed_point_runs_through(tmp_path: Path) -> None:
    assert _run(tmp_path, "r1").communicate(timeout=60)[0].strip() == "passed"


def test_armed_point_pauses_the_named_run_once(tmp_path: Path) -> None:
    (tmp_path / f"{POINT}.armed").write_text("r1")
    other = _run(tmp_path, "r2")  # another run passes the armed point
    assert other.communicate(timeout=60)[0].strip() == "passed"
    paused = _run(tmp_path, "r1")
    try:
        marker = tmp_path / f"{POINT}.paused"
        deadline = time.monotonic() + 60
        while not marker.exists():
            assert time.monotonic() < deadline and paused.poll() is None, "never paused"
            time.sleep(0.05)
        assert json.loads(marker.read_text())["pid"] == paused.pid
        assert not (tmp_path / f"{POINT}.armed").exists()
        retry = _run(tmp_path, "r1")  # the retry of the same run: the arming is taken
        assert retry.communicate(timeout=60)[0].strip() == "passed"
        assert paused.poll() is None  # still waiting
    finally:
        os.kill(paused.pid, signal.SIGKILL)
        paused.wait()
