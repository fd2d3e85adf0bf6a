"""The DAG factory: one Airflow DAG per dataset spec.

Parsing reads the YAML specs and builds the graph, nothing else: no database, no pyarrow, no Great
Expectations. Each task loads its run context and calls one stage of :mod:`datashare.pipeline`;
XCom carries the stages' small JSON references. Errors the engine marks as not worth a retry
(a failed suite, a broken contract) fail the task at once; source outages are retried with
exponential backoff.
"""

from __future__ import annotations

import logging
import os
from datetime import timedelta
from pathlib import Path
from typing import Any

from datashare.alerts import on_failure_callback
from datashare.exceptions import SpecError
from datashare.spec import DatasetSpec, load_specs

log = logging.getLogger(__name__)

ASSET_SCHEME = "datashare"


def asset_uri(dataset_id: str) -> str:
    """URI of the Airflow Asset a dataset's DAG emits when it commits a release."""
    return f"{ASSET_SCHEME}://{dataset_id}"


def dataset_asset(dataset_id: str) -> Any:
    """The Airflow Asset of a dataset, defined the same way by its producer and its consumers."""
    from airflow.sdk import Asset

    return Asset(uri=asset_uri(dataset_id), name=dataset_id, group="datashare")


def default_args(spec: DatasetSpec) -> dict[str, Any]:
    """Task defaults: owner from the spec, retries with backoff (delays overridable for tests), alert on failure."""
    delay = float(os.environ.get("DATASHARE_RETRY_DELAY_S", "30"))
    return {
        "owner": spec.owner,
        "retries": int(os.environ.get("DATASHARE_RETRIES", "3")),
        "retry_delay": timedelta(seconds=delay),
        "retry_exponential_backoff": True,
        "max_retry_delay": timedelta(minutes=10),
        "on_failure_callback": on_failure_callback,
    }


def _call(stage: str, dataset_id: str, *refs: Any) -> Any:
    """Run one pipeline stage inside a task, mapping engine errors onto Airflow's retry semantics."""
    from airflow.sdk import get_current_context
    from airflow.sdk.exceptions import AirflowFailException

    from datashare import pipeline
    from datashare.exceptions import DatashareError

    context = get_current_context()
    start, end = context.get("data_interval_start"), context.get("data_interval_end")
    interval = {"start": start.isoformat() if start else None, "end": end.isoformat() if end else None}
    from datashare.refs import Ref

    try:
        ctx = pipeline.RunContext.create(dataset_id, context["run_id"], data_interval=interval)
        result = getattr(pipeline, stage)(ctx, *refs)
        return result.to_json() if isinstance(result, Ref) else result  # XCom carries JSON references
    except DatashareError as exc:
        if exc.retryable:
            raise
        raise AirflowFailException(str(exc)) from exc


def build_dag(spec: DatasetSpec, source_file: Path | None = None) -> Any:
    """The DAG of one dataset: extract -> transform -> validate -> commit_release -> publish_sql -> record."""
    from airflow.sdk import DAG, task

    asset = dataset_asset(spec.id)
    schedule: Any = spec.schedule
    if spec.source.kind == "derived":
        schedule = [dataset_asset(i) for i in spec.source.inputs]  # runs on data, not on the clock
    doc = (
        f"### {spec.title.vi}\n\n{spec.description.vi}\n\n### {spec.title.en}\n\n{spec.description.en}\n\n"
        f"Spec: `dags/datasets/{spec.id}.yaml` · suite: `expectations/{spec.suite_name}.json` · "
        f"classification: {spec.classification.sharing.value} / {spec.classification.importance.value}"
    )
    with DAG(
        dag_id=spec.id,
        description=spec.title.en,
        doc_md=doc,
        schedule=schedule,
        start_date=_start_date(),
        catchup=False,
        max_active_runs=1,
        default_args=default_args(spec),
        tags=sorted({"datashare", spec.sector, spec.classification.sharing.value, *spec.tags}),
        dagrun_timeout=timedelta(hours=6),
    ) as dag:
        dataset_id = spec.id

        @task(pool=spec.pool, pool_slots=1)
        def extract() -> dict[str, Any]:
            """Stream the source into staging Parquet (one pool slot = one source connection)."""
            return _call("stage_extract", dataset_id)

        @task(pool=spec.pool, pool_slots=1)
        def plan_ranges() -> list[dict[str, Any]]:
            """Split the partition column into the spec's number of key ranges."""
            return _call("stage_plan", dataset_id)

        @task(pool=spec.pool, pool_slots=1, map_index_template="{{ task.op_kwargs['key_range']['index'] }}")
        def extract_range(key_range: dict[str, Any]) -> dict[str, Any]:
            """Stream one key range into staging Parquet (mapped: one task per range)."""
            return _call("stage_extract", dataset_id, key_range)

        @task
        def combine(parts: list[dict[str, Any]]) -> dict[str, Any]:
            """Join the ranges' references, in range order."""
            # One slice request; iterating Airflow's lazy sequence would probe past its end and log an error.
            return _call("stage_combine", dataset_id, list(parts[:]))

        @task
        def transform(extracted: dict[str, Any]) -> dict[str, Any]:
            """Apply the transforms and the schema contract."""
            return _call("stage_transform", dataset_id, extracted)

        @task
        def validate(transformed: dict[str, Any]) -> dict[str, Any]:
            """Run the Great Expectations suite; the report is stored whatever the verdict."""
            return _call("stage_validate", dataset_id, transformed)

        @task
        def commit_release(
            extracted: dict[str, Any], transformed: dict[str, Any], validated: dict[str, Any]
        ) -> dict[str, Any]:
            """Commit release N with a put-if-absent commit record, or nothing if the content is unchanged."""
            return _call("stage_commit", dataset_id, extracted, transformed, validated)

        @task
        def publish_sql(committed: dict[str, Any]) -> dict[str, Any]:
            """Load the release into <id>__v<N> and repoint the view <id>."""
            return _call("stage_publish_sql", dataset_id, committed)

        @task(outlets=[asset])
        def record(committed: dict[str, Any], published: dict[str, Any]) -> dict[str, Any]:
            """Summarise the run; emit the Asset only when a new release was committed."""
            from airflow.sdk.exceptions import AirflowSkipException

            summary = _call("stage_record", dataset_id, committed, published)
            if not summary["created"]:
                raise AirflowSkipException(f"no new version of {dataset_id}: {summary['reason']}")
            return summary

        if spec.source.partitions is not None:
            extracted = combine(extract_range.expand(key_range=plan_ranges()))
        else:
            extracted = extract()
        transformed = transform(extracted)
        validated = validate(transformed)
        committed = commit_release(extracted, transformed, validated)
        record(committed, publish_sql(committed))
    if source_file is not None:
        dag.fileloc = str(source_file)
    return dag


def _start_date() -> Any:
    from datetime import UTC, datetime

    return datetime(2025, 7, 1, tzinfo=UTC)


def build_dags(datasets_dir: Path | None = None) -> dict[str, Any]:
    """Build a DAG for every valid spec; a malformed spec is logged with its file and field, not raised."""
    if datasets_dir is None:
        from datashare.settings import Settings

        datasets_dir = Settings.from_env().datasets_dir
    specs, errors = load_specs(datasets_dir)
    for path, err in errors.items():
        log.error("Skipping dataset spec %s: %s", path, err)
    dags = {}
    for dataset_id, spec in specs.items():
        try:
            dags[dataset_id] = build_dag(spec)
        except SpecError as exc:  # pragma: no cover - build_dag raises only for specs load_specs accepted
            log.error("Cannot build the DAG of %s: %s", dataset_id, exc)
    return dags
