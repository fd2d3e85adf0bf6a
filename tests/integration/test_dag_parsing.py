"""Parsing the dataset DAG file with real Airflow (no metadata database needed): what a task process builds and
reads, how a derived dataset is scheduled, and what a broken spec or a failing DAG build costs.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from datashare.exceptions import SpecError

REPO = Path(__file__).resolve().parents[2]
SOURCE = REPO / "dags" / "datasets" / "air_quality_hourly.yaml"

# Runs in a fresh process, as a task's start-up does: for each dag id (None: the DAG processor's parse), set the
# parsing context as the task runner does, and parse the DAG file with a BundleDagBag as task_runner.parse does,
# while an audit hook records every file opened and every folder listed.
_PARSE = r"""
import json, os, sys
home = os.environ["DATASHARE_HOME"]
events = {"opened": [], "listed": []}
def hook(event, args):
    if event == "open" and isinstance(args[0], (str, bytes, os.PathLike)):
        events["opened"].append(os.fsdecode(args[0]))
    elif event in ("os.scandir", "os.listdir") and args and args[0] is not None:
        events["listed"].append(os.fsdecode(args[0]))
sys.addaudithook(hook)
from airflow.dag_processing.dagbag import BundleDagBag
heavy = {"pyarrow", "numpy", "pandas", "great_expectations", "boto3", "psycopg", "duckdb", "sqlalchemy.orm.session",
         "datashare.pipeline.stages", "datashare.pipeline.context", "datashare.store"}
preloaded = heavy & set(sys.modules)
dags = os.path.join(home, "dags")
specs = os.path.join(dags, "datasets")
for dag_id in json.loads(sys.argv[1]):
    for key in ("_AIRFLOW_PARSING_CONTEXT_DAG_ID", "_AIRFLOW_PARSING_CONTEXT_TASK_ID"):
        os.environ.pop(key, None)
    if dag_id is not None:
        os.environ["_AIRFLOW_PARSING_CONTEXT_DAG_ID"] = dag_id
        os.environ["_AIRFLOW_PARSING_CONTEXT_TASK_ID"] = "extract"
    events["opened"].clear(); events["listed"].clear()
    bag = BundleDagBag(dag_folder=os.path.join(dags, "datashare_dags.py"), safe_mode=False, load_op_links=False,
                       bundle_path=dags, bundle_name="dags-folder")
    print("RESULT " + json.dumps({
        "dag_ids": sorted(bag.dag_ids),
        "import_errors": bag.import_errors,
        "opened": sorted({p for p in events["opened"] if p.startswith(specs)}),
        "listed": sorted({p for p in events["listed"] if p.startswith(specs)}),
        "heavy_imports": sorted((heavy & set(sys.modules)) - preloaded),
    }))
"""


def _home(tmp_path: Path, copies: int) -> Path:
    """A DATASHARE_HOME whose dags folder holds the real DAG file and ``copies`` copies of air_quality_hourly."""
    home = tmp_path / "home"
    datasets = home / "dags" / "datasets"
    datasets.mkdir(parents=True)
    shutil.copy(REPO / "dags" / "datashare_dags.py", home / "dags")
    text = SOURCE.read_text(encoding="utf-8")
    for i in range(copies):
        copy = text.replace("id: air_quality_hourly\n", f"id: aq_copy_{i:03d}\nsuite: air_quality_hourly\n", 1)
        (datasets / f"aq_copy_{i:03d}.yaml").write_text(copy, encoding="utf-8")
    return home


def _parse(home: Path, *dag_ids: str | None) -> list[dict]:
    """Parse the DAG file once per dag id (None: no parsing context) in one fresh process; one result each."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("_AIRFLOW_PARSING_CONTEXT")}
    env["DATASHARE_HOME"] = str(home)
    result = subprocess.run(
        [sys.executable, "-c", _PARSE, json.dumps(dag_ids)],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    results = [json.loads(line[7:]) for line in result.stdout.splitlines() if line.startswith("RESULT ")]
    assert len(results) == len(dag_ids), result.stdout[-3000:]
    return results


def test_task_parse_builds_only_its_own_dag_and_reads_only_its_own_spec(tmp_path: Path) -> None:
    home = _home(tmp_path, copies=30)
    datasets = home / "dags" / "datasets"

    task, full = _parse(home, "aq_copy_007", None)
    # The DAG processor's parse: every spec read, every DAG built (so the hook does see what a parse reads).
    assert full["dag_ids"] == [f"aq_copy_{i:03d}" for i in range(30)]
    assert len(full["opened"]) == 30 and full["listed"] == [str(datasets)]
    # Parsing builds the graph and nothing else: no data library, no engine stage is imported.
    assert full["heavy_imports"] == [] and task["heavy_imports"] == []
    # A task's parse: its own spec only.
    assert task["import_errors"] == {}
    assert task["dag_ids"] == ["aq_copy_007"]
    assert task["opened"] == [str(datasets / "aq_copy_007.yaml")]
    assert task["listed"] == []  # the folder is not even listed


def test_task_parse_of_a_broken_or_foreign_dag_id_builds_nothing(tmp_path: Path) -> None:
    home = _home(tmp_path, copies=2)
    datasets = home / "dags" / "datasets"
    (datasets / "aq_copy_001.yaml").write_text("id: aq_copy_001\nid: again\n", encoding="utf-8")

    foreign = ("../../etc/passwd", "datashare_audit", "aq_copy_999")
    broken, *others = _parse(home, "aq_copy_001", *foreign)
    # Its spec broke after the run was scheduled: no DAG, so Airflow fails the task with "Dag not found".
    assert broken["dag_ids"] == [] and broken["import_errors"] == {}
    assert broken["opened"] == [str(datasets / "aq_copy_001.yaml")]

    for dag_id, other in zip(foreign, others, strict=True):
        assert other["dag_ids"] == [] and other["import_errors"] == {}, dag_id
        assert other["listed"] == [] and other["opened"] in ([], [str(datasets / "aq_copy_999.yaml")]), dag_id


def test_derived_dataset_runs_when_any_input_publishes() -> None:
    from airflow.sdk import AssetAll, AssetAny

    from datashare.orchestration.factory import build_dag
    from datashare.spec import load_spec

    spec = load_spec(REPO / "dags" / "datasets" / "province_environment_indicators.yaml")
    condition = build_dag(spec).timetable.asset_condition
    assert isinstance(condition, AssetAny) and not isinstance(condition, AssetAll)
    assert [a.uri.rstrip("/") for a in condition.objects] == [f"datashare://{i}" for i in spec.source.inputs]


def test_a_dag_that_fails_to_build_costs_only_itself(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """Fault injection: a bug of ours in building one DAG (validation let the spec through) is logged with the
    spec file, and every other DAG is still built."""
    from datashare.orchestration import factory

    home = _home(tmp_path, copies=3)
    real_build = factory.build_dag

    def failing(spec, source_file=None):
        if spec.id == "aq_copy_001":
            raise RuntimeError("simulated bug")
        return real_build(spec, source_file)

    monkeypatch.setattr(factory, "build_dag", failing)
    monkeypatch.delenv("_AIRFLOW_PARSING_CONTEXT_DAG_ID", raising=False)
    with caplog.at_level(logging.ERROR, logger="datashare.orchestration.factory"):
        dags = factory.build_dags(home / "dags" / "datasets")
    assert sorted(dags) == ["aq_copy_000", "aq_copy_002"]
    assert "aq_copy_001.yaml" in caplog.text and "simulated bug" in caplog.text


def test_raise_for_broken_specs_lists_every_problem_and_is_silent_when_none(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from datashare.orchestration.factory import raise_for_broken_specs

    monkeypatch.delenv("_AIRFLOW_PARSING_CONTEXT_DAG_ID", raising=False)
    home = _home(tmp_path, copies=2)
    datasets = home / "dags" / "datasets"
    raise_for_broken_specs(datasets, REPO / "expectations")  # nothing to say

    (datasets / "aq_copy_001.yaml").write_bytes(b"id: aq_copy_001\ntitle: \xff\n")
    (datasets / "shared_then_open.yaml").write_text(
        SOURCE.read_text(encoding="utf-8")
        .replace("id: air_quality_hourly\n", "id: shared_then_open\n")
        .replace("  sharing: open", "  sharing: shared\n  sharing: open"),
        encoding="utf-8",
    )
    with pytest.raises(SpecError) as info:
        raise_for_broken_specs(datasets, REPO / "expectations")
    message = str(info.value)
    assert "2 dataset spec(s)" in message
    assert f"{datasets / 'aq_copy_001.yaml'}: not UTF-8: byte 0xff at line 2" in message
    line = SOURCE.read_text(encoding="utf-8").split("\n").index("  sharing: open") + 2  # the second `sharing`
    assert f"{datasets / 'shared_then_open.yaml'}: not valid YAML at line {line}" in message
    assert "classification.sharing: the key 'sharing' appears twice" in message
    assert "aq_copy_000" not in message

    with pytest.raises(SpecError, match="no such folder, so no dataset has a DAG"):
        raise_for_broken_specs(home / "elsewhere", REPO / "expectations")

    monkeypatch.setenv("_AIRFLOW_PARSING_CONTEXT_DAG_ID", "aq_copy_000")  # a task process checks nothing
    raise_for_broken_specs(datasets, REPO / "expectations")
