"""What Airflow's workers load before they fork their task processes (``datashare.orchestration.celery_preload``).

Each task process is forked from a worker that imported the engine's libraries and parsed boto3's S3
models once, so a task makes its S3 client without reading a model file; and nothing the fork would
copy half-made (a thread, a socket) exists yet. Run in a fresh interpreter, as a worker starts.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]

PROBE = r"""
import json, os, threading
import botocore.loaders

from datashare.orchestration import celery_preload
from datashare.store import s3

def links():
    for fd in os.listdir("/proc/self/fd"):
        try:
            yield os.readlink(f"/proc/self/fd/{fd}")
        except OSError:  # the listing's own descriptor, closed already
            pass

state = {
    "threads": threading.active_count(),
    "sockets": sum(link.startswith("socket:") for link in links()),
    "session": s3._session is not None,
    "models_s": celery_preload.S3_MODELS_S,
    "preloaded": sorted(celery_preload.PRELOADED),
}
loads = []
original = botocore.loaders.JSONFileLoader.load_file
botocore.loaders.JSONFileLoader.load_file = lambda self, path: loads.append(path) or original(self, path)
if os.fork() == 0:  # a task process: a client of its own for the store, as the backend makes it
    backend = s3.S3Backend("releases", endpoint_url="http://127.0.0.1:9")
    backend.client.meta  # made on first use
    with open(os.environ["PROBE_OUT"] + ".child", "w") as out:
        json.dump({"model_files_read": loads}, out)
    os._exit(0)
os.wait()
with open(os.environ["PROBE_OUT"], "w") as out:
    json.dump(state, out)
"""


def test_workers_fork_tasks_with_s3_models_parsed_and_nothing_open(tmp_path: Path) -> None:
    out = tmp_path / "probe.json"
    env = {
        **os.environ,
        "PROBE_OUT": str(out),
        "PYTHONPATH": os.pathsep.join([str(REPO / "plugins"), str(REPO)]),
        "AWS_ACCESS_KEY_ID": "task",
        "AWS_SECRET_ACCESS_KEY": "task",
        "AWS_DEFAULT_REGION": "us-east-1",
    }
    done = subprocess.run([sys.executable, "-c", PROBE], env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    state = json.loads(out.read_text())
    child = json.loads(Path(f"{out}.child").read_text())
    assert state["session"], "the worker did not make the shared boto3 session before forking"
    assert state["models_s"] > 0
    assert {"boto3", "pyarrow", "great_expectations", "datashare.pipeline.stages"} <= set(state["preloaded"])
    assert state["threads"] == 1, "a thread started before the fork would be copied half-way"
    assert state["sockets"] == 0, "a connection opened before the fork would be shared by every task"
    assert child["model_files_read"] == [], f"the task parsed boto3 models again: {child['model_files_read']}"
