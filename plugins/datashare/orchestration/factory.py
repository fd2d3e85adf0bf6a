"""The DAG factory: one Airflow DAG per dataset spec.

Parsing reads the YAML specs and builds the graph, nothing else: no database, no pyarrow, no Great
Expectations. Each task loads its run context and calls one stage of :mod:`datashare.pipeline.stages`;
XCom carries the stages' small JSON references. Errors the engine marks as not worth a retry
(a failed suite, a broken contract) fail the task at once; source outages are retried with
exponential backoff.

Parsing scales with the number of specs only where it must. The DAG processor builds every DAG;
a task process (Airflow sets the parsing context's ``dag_id``) reads only its own spec file,
``dags/datasets/<dag_id>.yaml``, and builds only its own DAG, so a task's start-up does not grow with
the number of datasets.

A broken spec costs only its own DAG. Airflow records an import error against the DAG *file*, and the
DAG processor then marks every DAG of that file stale, so ``dags/datashare_dags.py`` never fails: it
logs each broken spec and builds the others. ``dags/datashare_spec_errors.py``, a file that defines no
DAG, raises one import error listing every broken spec with its file and field
(:func:`raise_for_broken_specs`): that is what Airflow's UI and ``airflow dags list-import-errors``
show, and it clears itself when the specs are fixed.
"""

from __future__ import annotations

import logging
import os
from datetime import timedelta
from pathlib import Path
from typing import Any

from airflow.sdk import task

from datashare.exceptions import SpecError
from datashare.notify.alerts import on_failure_callback
from datashare.spec import DatasetSpec, is_dataset_id, load_spec, load_specs, spec_path, spec_problems

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

    from datashare.exceptions import DatashareError
    from datashare.pipeline import stages as pipeline

    context = get_current_context()
    start, end = context.get("data_interval_start"), context.get("data_interval_end")
    interval = {"start": start.isoformat() if start else None, "end": end.isoformat() if end else None}
    from datashare.pipeline.refs import Ref

    try:
        ctx = pipeline.RunContext.create(dataset_id, context["run_id"], data_interval=interval)
        result = getattr(pipeline, stage)(ctx, *refs)
        return result.to_json() if isinstance(result, Ref) else result  # XCom carries JSON references
    except DatashareError as exc:
        if exc.retryable:
            raise
        raise AirflowFailException(str(exc)) from exc


def _dataset_id() -> str:
    """The dataset a running task belongs to: its DAG's id is the dataset id (build_dag makes it so)."""
    from airflow.sdk import get_current_context

    return str(get_current_context()["dag"].dag_id)


# The tasks of every dataset DAG, decorated once: a DAG gets its own copies when they are called inside it,
# with its pool and its Asset set by ``override``. About a fifth cheaper to parse than decorating them per DAG.


@task(pool_slots=1)
def extract() -> dict[str, Any]:
    """Stream the source into staging Parquet (one pool slot = one source connection)."""
    return _call("stage_extract", _dataset_id())


@task(pool_slots=1)
def plan_ranges() -> list[dict[str, Any]]:
    """Split the partition column into the spec's number of key ranges."""
    return _call("stage_plan", _dataset_id())


@task(pool_slots=1, map_index_template="{{ task.op_kwargs['key_range']['index'] }}")
def extract_range(key_range: dict[str, Any]) -> dict[str, Any]:
    """Stream one key range into staging Parquet (mapped: one task per range)."""
    return _call("stage_extract", _dataset_id(), key_range)


@task
def combine(parts: list[dict[str, Any]]) -> dict[str, Any]:
    """Join the ranges' references, in range order."""
    # One slice request; iterating Airflow's lazy sequence would probe past its end and log an error.
    return _call("stage_combine", _dataset_id(), list(parts[:]))


@task
def transform(extracted: dict[str, Any]) -> dict[str, Any]:
    """Apply the transforms and the schema contract."""
    return _call("stage_transform", _dataset_id(), extracted)


@task
def validate(transformed: dict[str, Any]) -> dict[str, Any]:
    """Run the Great Expectations suite; the report is stored whatever the verdict."""
    return _call("stage_validate", _dataset_id(), transformed)


@task
def commit_release(extracted: dict[str, Any], transformed: dict[str, Any], validated: dict[str, Any]) -> dict[str, Any]:
    """Commit release N with a put-if-absent commit record, or nothing if the content is unchanged."""
    return _call("stage_commit", _dataset_id(), extracted, transformed, validated)


@task
def publish_sql(committed: dict[str, Any]) -> dict[str, Any]:
    """Load the release into <id>__v<N> and repoint the view <id>."""
    return _call("stage_publish_sql", _dataset_id(), committed)


@task
def record(committed: dict[str, Any], published: dict[str, Any]) -> dict[str, Any]:
    """Summarise the run; emit the Asset only when a new release was committed."""
    from airflow.sdk.exceptions import AirflowSkipException

    dataset_id = _dataset_id()
    summary = _call("stage_record", dataset_id, committed, published)
    if not summary["created"]:
        raise AirflowSkipException(f"no new version of {dataset_id}: {summary['reason']}")
    return summary


class _Tasks:
    """The task functions of every dataset DAG, in the order a run calls them."""

    plan_ranges = plan_ranges
    extract_range = extract_range
    combine = combine
    extract = extract
    transform = transform
    validate = validate
    commit_release = commit_release
    publish_sql = publish_sql
    record = record


def build_dag(spec: DatasetSpec, source_file: Path | None = None) -> Any:
    """The DAG of one dataset: extract -> transform -> validate -> commit_release -> publish_sql -> record."""
    from airflow.sdk import DAG

    schedule: Any = spec.schedule
    if spec.source.kind == "derived":
        schedule = derived_schedule(spec.source.inputs)
    doc = (
        f"### {spec.title.vi}\n\n{spec.description.vi}\n\n### {spec.title.en}\n\n{spec.description.en}\n\n"
        f"Spec: `dags/datasets/{spec.id}.yaml` · suite: `expectations/{spec.suite_name}.json` · "
        f"classification: {spec.classification.sharing.value} / {spec.classification.importance.value}"
    )
    with DAG(
        dag_id=spec.id,  # the tasks find their dataset by it (_dataset_id)
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
        # TaskFlow calls take XComArgs where the functions declare the values they receive: the calls below
        # are typed Any, as Airflow's decorator typing cannot say that (and the tasks' annotations are read at
        # parse time to infer multiple outputs, so they must stay plain).
        tasks: Any = _Tasks
        if spec.source.partitions is not None:
            ranges = tasks.plan_ranges.override(pool=spec.pool)()
            extracted = tasks.combine(tasks.extract_range.override(pool=spec.pool).expand(key_range=ranges))
        else:
            extracted = tasks.extract.override(pool=spec.pool)()
        transformed = tasks.transform(extracted)
        validated = tasks.validate(transformed)
        committed = tasks.commit_release(extracted, transformed, validated)
        tasks.record.override(outlets=[dataset_asset(spec.id)])(committed, tasks.publish_sql(committed))
    if source_file is not None:
        dag.fileloc = str(source_file)
    return dag


def _start_date() -> Any:
    from datetime import UTC, datetime

    return datetime(2025, 7, 1, tzinfo=UTC)


def derived_schedule(inputs: list[str]) -> Any:
    """Run on data, not on the clock: when *any* input publishes a release (an Asset expression ``a | b | c``).

    A list of Assets would wait until every input had published since the last run, so a dataset built
    from air, water and licences would stay stale for as long as the licences did not change.
    """
    from airflow.sdk import AssetAny

    return AssetAny(*(dataset_asset(i) for i in inputs))


def _datasets_dir(datasets_dir: Path | None) -> Path:
    if datasets_dir is not None:
        return datasets_dir
    from datashare.settings import Settings

    return Settings.from_env().datasets_dir


def _parsing_dag_id() -> str | None:
    """The DAG a task process is parsing the file for (Airflow's parsing context), or None: build them all."""
    from airflow.sdk import get_parsing_context

    return get_parsing_context().dag_id


def build_dags(datasets_dir: Path | None = None) -> dict[str, Any]:
    """Build a DAG for every valid spec; a malformed spec is logged with its file and field, never raised.

    In a task process only the task's own DAG is built, from its own spec file: the other specs are
    neither listed nor read.
    """
    datasets_dir = _datasets_dir(datasets_dir)
    wanted = _parsing_dag_id()
    if wanted is not None:
        return _build_one(datasets_dir, wanted)
    specs, errors = load_specs(datasets_dir)
    for path, err in errors.items():
        log.error("Skipping dataset spec %s: %s", path, err)
    dags = {}
    for dataset_id, spec in specs.items():
        dag = _build_or_log(spec, datasets_dir / f"{dataset_id}.yaml")
        if dag is not None:
            dags[dataset_id] = dag
    return dags


def _build_one(datasets_dir: Path, dag_id: str) -> dict[str, Any]:
    """The one DAG a task runs, or nothing when ``dag_id`` is not a dataset of this folder (Airflow says so)."""
    if not is_dataset_id(dag_id):
        return {}
    path = spec_path(datasets_dir, dag_id)
    try:
        spec = load_spec(path)
    except SpecError as exc:
        log.error("Cannot build the DAG of %s: %s", dag_id, exc)
        return {}
    dag = _build_or_log(spec, path)
    return {} if dag is None else {dag_id: dag}


def _build_or_log(spec: DatasetSpec, path: Path) -> Any:
    """Build one DAG; any failure costs this DAG only, logged with its spec file (never the other DAGs)."""
    try:
        return build_dag(spec)
    except Exception:  # the spec passed validation, so this is a bug of ours: isolate it, keep the traceback
        log.exception("Cannot build the DAG of %s from %s", spec.id, path)
        return None


def raise_for_broken_specs(datasets_dir: Path | None = None, expectations_dir: Path | None = None) -> None:
    """Raise one :class:`SpecError` listing every spec problem of the folder, each with its file and field.

    Called at the top of ``dags/datashare_spec_errors.py``, a DAG file with no DAG: Airflow records the
    error as that file's import error (shown in the UI and by ``airflow dags list-import-errors``),
    which marks no dataset DAG stale, and clears it when a later parse succeeds. A task process never
    parses that file; should one do so, nothing is checked. Suites are checked to exist (a stat, no
    read) when the folders come from the settings or ``expectations_dir`` is given.
    """
    if _parsing_dag_id() is not None:
        return
    if datasets_dir is None:
        from datashare.settings import Settings

        settings = Settings.from_env()
        datasets_dir, expectations_dir = settings.datasets_dir, expectations_dir or settings.expectations_dir
    if not datasets_dir.is_dir():
        raise SpecError(f"{datasets_dir}: no such folder, so no dataset has a DAG (is DATASHARE_HOME right?)")
    specs, errors = load_specs(datasets_dir)
    problems = spec_problems(specs, errors, datasets_dir, expectations_dir)
    if not problems:
        return
    lines = [p for messages in problems.values() for p in messages]
    raise SpecError(
        f"{len(problems)} dataset spec(s) in {datasets_dir} have problems; a spec that cannot be loaded has "
        "no DAG, every other dataset's DAG is loaded:\n\n" + "\n\n".join(lines)
    )
