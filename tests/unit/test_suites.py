"""Every dataset's suite has a passing fixture and failing fixtures, each failing on the rule it targets.

Fixtures are data, in ``tests/fixtures/suites/<id>/``: ``passing.json`` (rows) and ``failing.json``
(rule id -> rows that break exactly that rule). Rows are typed by the dataset's spec, so the fixture
tables have the published schema.
"""

from __future__ import annotations

import json
from datetime import date, datetime
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from datashare.quality.validation import validate_parquet
from datashare.source.typemap import arrow_schema
from datashare.spec import load_specs

REPO = Path(__file__).resolve().parents[2]
FIXTURES = REPO / "tests" / "fixtures" / "suites"
SPECS, _ = load_specs(REPO / "dags" / "datasets")
CASES = [
    (dataset_id, rule)
    for dataset_id in sorted(SPECS)
    if (FIXTURES / dataset_id / "failing.json").is_file()
    for rule in json.loads((FIXTURES / dataset_id / "failing.json").read_text(encoding="utf-8"))
]


def _table(dataset_id: str, rows: list[dict], tmp_path: Path, name: str) -> Path:
    schema = arrow_schema(SPECS[dataset_id])
    columns = {}
    for field in schema:
        values = [row.get(field.name) for row in rows]
        if pa.types.is_timestamp(field.type):
            values = [datetime.fromisoformat(v) if v else None for v in values]
        elif pa.types.is_date(field.type):
            values = [date.fromisoformat(v) if v else None for v in values]
        columns[field.name] = pa.array(values, field.type)
    path = tmp_path / f"{name}.parquet"
    pq.write_table(pa.table(columns, schema=schema), path)
    return path


def _parameters(dataset_id: str) -> dict:
    """Run-time bounds of the suite (freshness_min, min_rows, max_rows) for the fixtures, if it has any."""
    path = FIXTURES / dataset_id / "parameters.json"
    params = json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}
    if "freshness_min" in params:
        params["freshness_min"] = datetime.fromisoformat(params["freshness_min"])
    return params


def _validate(dataset_id: str, path: Path, tmp_path: Path):
    spec = SPECS[dataset_id]
    suite = REPO / "expectations" / f"{spec.suite_name}.json"
    out = tmp_path / "out"
    return validate_parquet(
        [path], suite, dataset_id=dataset_id, run_id="fixture", out_dir=out, parameters=_parameters(dataset_id)
    )


@pytest.mark.parametrize("dataset_id", sorted(SPECS))
def test_every_dataset_has_a_suite_and_fixtures(dataset_id: str) -> None:
    spec = SPECS[dataset_id]
    assert (REPO / "expectations" / f"{spec.suite_name}.json").is_file()
    assert (FIXTURES / dataset_id / "passing.json").is_file(), f"add tests/fixtures/suites/{dataset_id}/passing.json"
    failing = json.loads((FIXTURES / dataset_id / "failing.json").read_text(encoding="utf-8"))
    assert len(failing) >= 3, "at least three failing fixtures, one per targeted rule"


@pytest.mark.parametrize("dataset_id", sorted(SPECS))
def test_passing_fixture_passes(dataset_id: str, tmp_path: Path) -> None:
    rows = json.loads((FIXTURES / dataset_id / "passing.json").read_text(encoding="utf-8"))
    outcome = _validate(dataset_id, _table(dataset_id, rows, tmp_path, "passing"), tmp_path)
    assert outcome.success, outcome.failed_rules


@pytest.mark.parametrize(("dataset_id", "rule"), CASES)
def test_failing_fixture_fails_on_its_rule(dataset_id: str, rule: str, tmp_path: Path) -> None:
    rows = json.loads((FIXTURES / dataset_id / "failing.json").read_text(encoding="utf-8"))[rule]
    outcome = _validate(dataset_id, _table(dataset_id, rows, tmp_path, "failing"), tmp_path)
    assert not outcome.success
    assert outcome.failed_rules == [rule], f"expected to fail on {rule} only, failed on {outcome.failed_rules}"
