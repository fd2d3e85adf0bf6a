"""A broken spec as Airflow's own services show it: the real DAG processor parses a dags folder with broken specs
and writes what the UI and ``airflow dags list-import-errors`` read (its metadata database).

In an Airflow home of its own (SQLite metadata): ``airflow db migrate``, then ``airflow dag-processor -n 1`` twice,
once with three broken specs beside the nine real ones, once after they are fixed.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.airflow

REPO = Path(__file__).resolve().parents[2]
AIRFLOW = Path(sys.executable).with_name("airflow")
DATASETS = sorted(p.stem for p in (REPO / "dags" / "datasets").glob("*.yaml"))


def _run(args: list[str], env: dict[str, str], timeout: float = 600, ok: tuple[int, ...] = (0,)) -> str:
    """Run an Airflow command in a session of its own; on a timeout, kill exactly that process group."""
    proc = subprocess.Popen(
        [str(AIRFLOW), *args], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        start_new_session=True,
    )  # fmt: skip
    try:
        out, _ = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
        raise
    assert proc.returncode in ok, f"airflow {' '.join(args)}:\n{out[-4000:]}"
    return out


def _json(out: str) -> list[dict]:
    """The JSON document of a CLI's output (Airflow's log lines share stdout)."""
    line = next(line for line in out.splitlines() if line.startswith("["))
    return json.loads(line)


@pytest.fixture
def airflow_env(tmp_path: Path) -> dict[str, str]:
    """A project copy (dags, specs, suites) and an Airflow home of its own, migrated."""
    home = tmp_path / "project"
    shutil.copytree(REPO / "dags", home / "dags", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copytree(REPO / "expectations", home / "expectations")
    airflow_home = tmp_path / "airflow"
    airflow_home.mkdir()
    (tmp_path / "no-plugins").mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "_AIRFLOW"))}
    env.update(
        {
            "AIRFLOW_HOME": str(airflow_home),
            "AIRFLOW__CORE__DAGS_FOLDER": str(home / "dags"),
            "AIRFLOW__CORE__PLUGINS_FOLDER": str(tmp_path / "no-plugins"),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{airflow_home / 'airflow.db'}",
            "AIRFLOW__API_AUTH__JWT_SECRET": secrets.token_hex(48),
            "AIRFLOW__DAG_PROCESSOR__PARSING_PROCESSES": "2",
            "DATASHARE_HOME": str(home),
        }
    )
    _run(["db", "migrate"], env)
    return env


def _query(env: dict[str, str], sql: str) -> list[tuple]:
    """Read the metadata database the UI reads."""
    db = env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"].removeprefix("sqlite:///")
    with sqlite3.connect(db) as conn:
        return conn.execute(sql).fetchall()


def _dags(env: dict[str, str]) -> dict[str, tuple[int, int]]:
    """Each DAG's (is_stale, has_import_errors) in the metadata database."""
    rows = _query(env, "SELECT dag_id, is_stale, has_import_errors FROM dag")
    return {dag_id: (int(stale), int(errors)) for dag_id, stale, errors in rows}


def test_broken_specs_are_import_errors_and_every_other_dag_loads(airflow_env: dict[str, str]) -> None:
    datasets = Path(airflow_env["DATASHARE_HOME"]) / "dags" / "datasets"
    air = (datasets / "air_quality_hourly.yaml").read_text(encoding="utf-8")
    (datasets / "not_utf8.yaml").write_bytes(
        air.replace("id: air_quality_hourly", "id: not_utf8").encode().replace(b"Quan tr\xe1\xba\xafc", b"Quan tr\xffc")
    )
    (datasets / "shared_then_open.yaml").write_text(
        air.replace("id: air_quality_hourly", "id: shared_then_open").replace(
            "  sharing: open", "  sharing: shared\n  sharing: open"
        ),
        encoding="utf-8",
    )
    (datasets / "air_quality_hourly__v3.yaml").write_text(
        air.replace("id: air_quality_hourly", "id: air_quality_hourly__v3"), encoding="utf-8"
    )

    _run(["dag-processor", "-n", "1"], airflow_env)

    errors = _json(_run(["dags", "list-import-errors", "-o", "json"], airflow_env, ok=(1,)))  # 1: errors found
    assert [e["filepath"] for e in errors] == ["datashare_spec_errors.py"], errors
    error = errors[0]["error"]
    assert f"{datasets / 'not_utf8.yaml'}: not UTF-8: byte 0xff at line 5, column 14" in error
    line = air.split("\n").index("  sharing: open") + 2  # the second `sharing`, one line below the first
    assert f"{datasets / 'shared_then_open.yaml'}: not valid YAML at line {line}" in error
    assert "classification.sharing: the key 'sharing' appears twice" in error
    assert f"{datasets / 'air_quality_hourly__v3.yaml'}: invalid dataset spec" in error
    assert "- id: 'air_quality_hourly__v3' contains '__'" in error
    dags = _dags(airflow_env)
    assert sorted(dags) == sorted([*DATASETS, "datashare_audit", "datashare_webhooks"])  # no DAG for a broken spec...
    assert all(state == (0, 0) for state in dags.values()), dags  # ...and every other one active, no error

    for name in ("not_utf8", "shared_then_open", "air_quality_hourly__v3"):
        (datasets / f"{name}.yaml").unlink()
    _run(["dag-processor", "-n", "1"], airflow_env)
    assert _query(airflow_env, "SELECT filename FROM import_error") == []  # the same table the CLI read above
    assert all(state == (0, 0) for state in _dags(airflow_env).values())
