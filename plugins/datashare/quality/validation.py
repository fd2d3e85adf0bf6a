"""Validate a staged dataset against its Great Expectations suite.

The validate step of a run: read the transformed Parquet files, run the dataset's suite
(``expectations/<id>.json``) in an ephemeral GX context, and leave two files for auditors in the
output folder: ``result.json`` (GX's own validation result, capped samples) and ``report.html``
(a self-contained bilingual page, see :mod:`datashare.quality.report`). A failing suite is an outcome, not
an exception; only a broken suite file (or unreadable input) raises.

The suite runs on GX's SQL data source over DuckDB, which reads the Parquet files directly
(:mod:`datashare.quality.duckdb_gx`): a few seconds and a flat few hundred MiB for millions of rows, where a
pandas DataFrame of the whole table took four times as long and gigabytes. The result is GX's own
result document either way. ``DATASHARE_VALIDATION_ENGINE=pandas`` runs the former pandas engine
(used to check that both give the same verdicts). When failing rows must be quarantined, their
positions are found afterwards, chunk by chunk, with GX's pandas engine and only for the row-level
rules that found unexpected values.

Nothing here touches the network: GX analytics are switched off before GX is imported, and the
ephemeral context keeps its stores in memory.
"""

from __future__ import annotations

import importlib
import json
import logging
import math
import os
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any

from datashare.exceptions import ConfigError, ContractError, SuiteError
from datashare.quality.report import describe_rule, render_report, rule_columns

if TYPE_CHECKING:
    import pandas as pd
    import pyarrow as pa
    from great_expectations import ExpectationSuite

log = logging.getLogger(__name__)

RESULT_FORMAT: dict[str, Any] = {"result_format": "SUMMARY", "partial_unexpected_count": 10}
"""Counts plus at most ten sample values per rule: enough to explain a failure, small enough to ship."""
SAMPLE_SIZE = 10
RESULT_FORMAT_COMPLETE: dict[str, Any] = {"result_format": "COMPLETE", "partial_unexpected_count": 10}
"""Also the index of every unexpected row, so row-level failures can be quarantined; stripped before saving."""
_BULKY = ("unexpected_list", "unexpected_index_list", "unexpected_index_query", "partial_unexpected_index_list")
ENGINE_ENV = "DATASHARE_VALIDATION_ENGINE"
"""``duckdb`` (default): GX's SQL engine over DuckDB; ``pandas``: GX's pandas engine on one DataFrame."""
POSITION_CHUNK_ROWS = 500_000
"""Rows per pandas chunk when looking for the positions of failing rows."""


def is_row_level(expectation_type: str) -> bool:
    """Whether a rule judges rows one at a time (so failing rows can be quarantined).

    Column-map rules are row-level; uniqueness, row counts, aggregates and freshness judge the table.
    """
    return expectation_type.startswith("expect_column_values_to_") and "unique" not in expectation_type


@dataclass(frozen=True)
class RuleResult:
    """The verdict of one expectation, in the shape the report and the manifest need."""

    rule: str
    """Stable id: expectation type + column(s), e.g. ``expect_column_values_to_be_between:pm25``."""
    expectation_type: str
    column: str | None
    """Column the rule reads; comma-joined for multi-column rules; None for table rules."""
    kwargs: dict
    """The expectation's kwargs (JSON-safe, without GX's internal ``batch_id``)."""
    success: bool
    unexpected_count: int | None
    unexpected_percent: float | None
    sample: list
    """Up to ten unexpected values (JSON-safe)."""
    description_vi: str
    description_en: str
    observed_value: Any = None
    """What a table- or aggregate-level rule measured (e.g. the row count)."""
    error: str | None = None
    """Message of the exception GX caught while evaluating the rule (e.g. a missing column)."""
    unexpected_index: tuple[int, ...] | None = None
    """Positions of the failing rows (row-level rules, when indices were asked for); never saved."""


@dataclass(frozen=True)
class ValidationOutcome:
    """What one validation run found, and where its result and report were written."""

    dataset_id: str
    run_id: str
    success: bool
    rows: int
    evaluated: int
    passed: int
    failed: int
    rules: tuple[RuleResult, ...]
    result_path: Path
    """``out_dir / "result.json"``: the GX validation result, sorted keys."""
    report_path: Path
    """``out_dir / "report.html"``: the self-contained report for auditors."""
    suite_name: str = ""
    gx_version: str = ""
    title_vi: str = ""
    title_en: str = ""
    validated_at: datetime | None = None
    """When the suite ran (UTC); shown in the report, kept out of :meth:`summary` on purpose."""
    quarantine: dict[str, Any] | None = None
    """Rows set aside before this validation: rows, share, threshold and counts per rule."""
    all_rows: tuple[RuleResult, ...] | None = None
    """The rules on all rows checked, when this outcome is the re-run on the rows kept after a quarantine."""
    rows_checked: int | None = None
    """Rows checked before the quarantine (None: no quarantine, ``rows`` were checked)."""
    personal_data: dict[str, str] | None = None
    """Personal-data handling per column (spec names), so the report masks those samples."""

    @property
    def failed_rules(self) -> list[str]:
        """Ids of the rules that failed, in suite order."""
        return [r.rule for r in self.rules if not r.success]

    def summary(self) -> dict[str, Any]:
        """Small JSON-safe dict for a release manifest; free of timestamps so equal data gives equal dicts."""
        return {
            "success": self.success,
            "rows": self.rows,
            "evaluated": self.evaluated,
            "passed": self.passed,
            "failed": self.failed,
            "failed_rules": self.failed_rules,
            "suite_name": self.suite_name,
            "gx_version": self.gx_version,
            "quarantine": self.quarantine,
        }


def _import_gx() -> ModuleType:
    """Import Great Expectations with analytics off: the env var must be set before the import."""
    os.environ["GX_ANALYTICS_ENABLED"] = "false"
    import great_expectations as gx

    return gx


VALIDATION_IMPORTS = ("great_expectations", "duckdb", "duckdb_engine", "datashare.quality.duckdb_gx")
"""What validating imports: about 2.5 s of pure-Python module loading (GX alone 2.2 s, most of it scipy)."""


def import_in_background() -> threading.Thread:
    """Start importing what validation needs in a thread, so a one-process run loads it while it extracts.

    Airflow's workers preload these (:mod:`datashare.orchestration.celery_preload`); ``datashare run`` has no
    worker, so it would pay the imports between transform and validate. Extraction spends its time in
    Arrow's and libpq's C code with the GIL released, so the imports run beside it nearly for free on a
    second core. Python's import locks make a concurrent ``import`` of the same module wait for this one,
    so validation needs no join; an import that fails here fails again, with its traceback, where it is
    used. The thread is a daemon: a run that ends before validating (nothing new) does not wait for it.
    """

    def load() -> None:
        try:
            _import_gx()  # first: it sets what Great Expectations reads at import time
            for name in VALIDATION_IMPORTS[1:]:
                importlib.import_module(name)
        except Exception:  # raised again, in context, by the validation that needs it
            log.debug("background import of the validation libraries failed; validation retries", exc_info=True)

    thread = threading.Thread(target=load, name="datashare-validation-imports", daemon=True)
    thread.start()
    return thread


def _flat(exc: BaseException) -> str:
    """An exception's message on one line (pydantic's are multi-line)."""
    return " ".join(str(exc).split())


def load_suite(path: Path) -> ExpectationSuite:
    """Load a suite file; raise :class:`SuiteError` naming the file (and the rule) when it is broken."""
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise SuiteError(f"cannot read suite file {path}: {exc.strerror or exc}") from exc
    except UnicodeDecodeError as exc:
        raise SuiteError(f"suite file {path} is not UTF-8 text: {exc}") from exc
    except json.JSONDecodeError as exc:
        raise SuiteError(
            f"suite file {path} is not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}"
        ) from exc
    if not isinstance(data, dict):
        raise SuiteError(f"suite file {path} must hold a JSON object, found {type(data).__name__}")
    expectations = data.get("expectations", [])
    if not isinstance(expectations, list):
        raise SuiteError(f"suite file {path}: 'expectations' must be a list")

    gx = _import_gx()
    from great_expectations.exceptions import ExpectationNotFoundError, GreatExpectationsError
    from great_expectations.expectations.registry import get_expectation_impl

    # Check rule by rule first, so the error names the rule and GX does not log a traceback.
    for number, item in enumerate(expectations, start=1):
        etype = item.get("type") if isinstance(item, dict) else None
        if not isinstance(etype, str):
            raise SuiteError(f"suite file {path}: expectation #{number} has no 'type'")
        try:
            get_expectation_impl(etype)
        except ExpectationNotFoundError as exc:
            raise SuiteError(f"suite file {path}: expectation #{number} has unknown type {etype!r}") from exc
        try:
            gx.ExpectationSuite(name="check", expectations=[json.loads(json.dumps(item))])
        except (ValueError, TypeError, GreatExpectationsError) as exc:
            raise SuiteError(f"suite file {path}: expectation #{number} ({etype}) is invalid: {_flat(exc)}") from exc
    try:
        return gx.ExpectationSuite(**data)
    except (ValueError, TypeError, GreatExpectationsError) as exc:
        raise SuiteError(f"suite file {path} is not a valid suite: {_flat(exc)}") from exc


def validate_parquet(
    paths: Sequence[Path],
    suite_path: Path,
    *,
    dataset_id: str,
    run_id: str,
    out_dir: Path,
    title_vi: str = "",
    title_en: str = "",
    collect_indices: bool = False,
    quarantine: dict[str, Any] | None = None,
    parameters: Mapping[str, Any] | None = None,
    prior: ValidationOutcome | None = None,
    personal_data: Mapping[str, str] | None = None,
) -> ValidationOutcome:
    """Run the suite over the Parquet files and write ``result.json`` and ``report.html`` to ``out_dir``.

    ``collect_indices`` keeps the positions of failing rows of row-level rules (for quarantine);
    ``quarantine`` describes rows already set aside, shown in the report and the summary;
    ``parameters`` gives the values of the suite's ``{"$PARAMETER": name}`` bounds (freshness, row counts);
    ``prior`` is the run on all rows when this one re-checks the rows kept after a quarantine (the report
    shows both); ``personal_data`` maps columns to their spec handling so the report masks their samples.

    Returns the outcome whatever the verdict; raises :class:`SuiteError` for a broken suite file and
    :class:`ContractError` for a Parquet file that cannot be read or does not match the others.
    """
    suite = load_suite(suite_path)
    params = dict(parameters or {})
    schema, rows = _inspect(paths)
    engine = validation_engine() if paths else "pandas"  # no file: nothing to scan, and no column types
    gx = _import_gx()
    from great_expectations.data_context.types.base import ProgressBarsConfig

    context = gx.get_context(mode="ephemeral")
    context.variables.progress_bars = ProgressBarsConfig(globally=False)
    suite = context.suites.add(suite)
    validated_at = datetime.now(UTC).replace(microsecond=0)
    result = None
    if engine == "duckdb":
        result = _validate_duckdb(context, suite, paths, schema, dataset_id, params)
        engine = "pandas" if result is None else engine
    if result is None:
        frame = _read_frame(paths, suite)
        rows = len(frame)
        batch = (
            context.data_sources.add_pandas("staged")
            .add_dataframe_asset(dataset_id)
            .add_batch_definition_whole_dataframe("whole")
            .get_batch(batch_parameters={"dataframe": frame})
        )
        result_format = RESULT_FORMAT_COMPLETE if collect_indices else RESULT_FORMAT
        result = _json_safe(
            batch.validate(suite, result_format=result_format, expectation_parameters=params).to_json_dict()
        )
        del frame, batch

    order = {e.id: i for i, e in enumerate(suite.expectations)}
    ordered = sorted(result["results"], key=lambda r: order.get(r["expectation_config"].get("id"), len(order)))
    indices = [_pop_bulky(r) for r in ordered]
    rules = _rule_results(ordered)
    if collect_indices and engine != "pandas":
        indices = _row_positions(context, paths, rules, params)
    rules = tuple(
        replace(rule, unexpected_index=idx) if idx is not None and is_row_level(rule.expectation_type) else rule
        for rule, idx in zip(rules, indices, strict=True)
    )
    out_dir = Path(out_dir)
    outcome = ValidationOutcome(
        dataset_id=dataset_id,
        run_id=run_id,
        success=bool(result["success"]),
        rows=rows,
        evaluated=len(rules),
        passed=sum(r.success for r in rules),
        failed=sum(not r.success for r in rules),
        rules=rules,
        result_path=out_dir / "result.json",
        report_path=out_dir / "report.html",
        suite_name=suite.name,
        gx_version=gx.__version__,
        title_vi=title_vi,
        title_en=title_en,
        validated_at=validated_at,
        quarantine=quarantine,
        all_rows=prior.rules if prior is not None else None,
        rows_checked=prior.rows if prior is not None else None,
        personal_data=dict(personal_data) if personal_data else None,
    )
    out_dir.mkdir(parents=True, exist_ok=True)
    _write_text(outcome.result_path, json.dumps(result, sort_keys=True, indent=2, ensure_ascii=False) + "\n")
    _write_text(outcome.report_path, render_report(outcome))
    log.info(
        "validated %s (run %s) against suite %s: %d rows, %d/%d rules passed, failed: %s",
        dataset_id, run_id, suite.name, outcome.rows, outcome.passed, outcome.evaluated,
        ", ".join(outcome.failed_rules) or "none",
    )  # fmt: skip
    return outcome


def render_rules_text(suite_path: Path) -> list[tuple[str, str, str]]:
    """(rule id, Vietnamese, English) for every rule of a suite, in suite order: for a CLI listing."""
    suite = load_suite(suite_path)
    configs: list[dict[str, Any]] = [dict(e.configuration.to_json_dict()) for e in suite.expectations]
    pairs = [(str(c["type"]), _public_kwargs(c["kwargs"])) for c in configs]
    return [(rid, *describe_rule(t, kw)) for rid, (t, kw) in zip(_rule_ids(pairs), pairs, strict=True)]


def validation_engine() -> str:
    """The GX execution engine to use: ``duckdb`` unless ``DATASHARE_VALIDATION_ENGINE`` says ``pandas``."""
    value = os.environ.get(ENGINE_ENV, "duckdb").strip().lower() or "duckdb"
    if value not in ("duckdb", "pandas"):
        raise ConfigError(f"{ENGINE_ENV}={value!r}: expected 'duckdb' or 'pandas'")
    return value


# --- reading -------------------------------------------------------------------------------------


def _inspect(paths: Sequence[Path]) -> tuple[pa.Schema | None, int]:
    """The files' common schema and total rows, from their footers; names a file that is unreadable or odd."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    schemas, rows = [], 0
    for path in paths:
        try:
            meta = pq.ParquetFile(path).metadata
        except (OSError, pa.ArrowException) as exc:
            raise ContractError(f"cannot read staged Parquet file {path}: {exc}") from exc
        schemas.append(meta.schema.to_arrow_schema())
        rows += meta.num_rows
    if not schemas:
        return None, 0
    try:
        return pa.unify_schemas(schemas, promote_options="default"), rows
    except (pa.ArrowInvalid, pa.ArrowTypeError) as exc:
        odd = next((p for p, s in zip(paths, schemas, strict=True) if s != schemas[0]), paths[-1])
        raise ContractError(f"staged Parquet file {odd} does not match the schema of {paths[0]}: {exc}") from exc


def _validate_duckdb(
    context: Any,
    suite: ExpectationSuite,
    paths: Sequence[Path],
    schema: pa.Schema,
    asset: str,
    parameters: Mapping[str, Any] | None = None,
) -> dict[str, Any] | None:
    """GX's result (JSON form) of the suite run by its SQL engine on DuckDB over the Parquet files.

    None when a float column holds NaN: pandas counts NaN as missing, SQL as a value, so the pandas
    engine must judge such data to keep the verdicts it always gave.
    """
    from datashare.quality.duckdb_gx import engine_kwargs, staged_database, use_flavour

    with staged_database(paths, schema) as (url, nan):
        if nan:
            log.info("%s: columns %s hold NaN; validating with the pandas engine", asset, nan)
            return None
        source = context.data_sources.add_sql("staged", connection_string=url, kwargs=engine_kwargs())
        use_flavour(source.get_execution_engine())  # the batch below runs on this cached engine
        try:
            batch = source.add_table_asset(asset, table_name="staged").add_batch_definition_whole_table("whole")
            result = batch.get_batch().validate(suite, result_format=RESULT_FORMAT, expectation_parameters=parameters)
            return _json_safe(result.to_json_dict())
        finally:
            source.get_engine().dispose()


def _row_positions(
    context: Any, paths: Sequence[Path], rules: Sequence[RuleResult], parameters: Mapping[str, Any] | None = None
) -> list[tuple[int, ...] | None]:
    """Positions of the unexpected rows of each row-level rule (``()`` when it found none), else None.

    GX's SQL engine counts unexpected rows but cannot say where they are in the files; its pandas
    engine can, so the rules that found some run again on the files chunk by chunk (offset indexes).
    """
    import pandas as pd
    import pyarrow as pa
    import pyarrow.parquet as pq

    from datashare.parquet import iter_batches

    gx = _import_gx()
    positions: list[tuple[int, ...] | None] = [
        () if is_row_level(r.expectation_type) and not r.error else None for r in rules
    ]
    wanted = [i for i, r in enumerate(rules) if positions[i] is not None and r.unexpected_count]
    if not wanted:
        return positions
    mini = context.suites.add(
        gx.ExpectationSuite(
            name="row_positions",
            expectations=[{"type": rules[i].expectation_type, "kwargs": rules[i].kwargs} for i in wanted],
        )
    )
    by_id = {e.id: i for e, i in zip(mini.expectations, wanted, strict=True)}
    found: dict[int, list[int]] = {i: [] for i in wanted}
    columns = list(dict.fromkeys(c for i in wanted for c in rule_columns(rules[i].kwargs)))
    chunks = context.data_sources.add_pandas("row_positions").add_dataframe_asset("chunk")
    definition = chunks.add_batch_definition_whole_dataframe("whole")
    offset = 0
    for path in paths:
        present = [c for c in columns if c in pq.read_schema(path).names]
        for batch in iter_batches(path, POSITION_CHUNK_ROWS, columns=present):
            table = pa.Table.from_batches([batch])
            for c in columns:
                if c not in present:
                    table = table.append_column(c, pa.nulls(table.num_rows))
            frame = table.to_pandas(types_mapper=_nullable_integers().get)
            frame.index = pd.RangeIndex(offset, offset + len(frame))
            result = definition.get_batch(batch_parameters={"dataframe": frame}).validate(
                mini, result_format=RESULT_FORMAT_COMPLETE, expectation_parameters=parameters
            )
            for r in result.results:
                index = (r.result or {}).get("unexpected_index_list") or []
                found[by_id[r.expectation_config.id]].extend(int(x) for x in index)
            offset += len(frame)
    for i in wanted:
        positions[i] = tuple(found[i])
        if len(found[i]) != rules[i].unexpected_count:
            log.warning(
                "rule %s: the SQL engine counted %s unexpected rows, the pandas engine located %s",
                rules[i].rule, rules[i].unexpected_count, len(found[i]),
            )  # fmt: skip
    return positions


def _nullable_integers() -> dict[Any, Any]:
    """Arrow integer types mapped to pandas' nullable ones, so samples read 501, not 501.0."""
    import pandas as pd
    import pyarrow as pa

    return {
        pa.int8(): pd.Int8Dtype(), pa.int16(): pd.Int16Dtype(), pa.int32(): pd.Int32Dtype(),
        pa.int64(): pd.Int64Dtype(), pa.uint8(): pd.UInt8Dtype(), pa.uint16(): pd.UInt16Dtype(),
        pa.uint32(): pd.UInt32Dtype(), pa.uint64(): pd.UInt64Dtype(),
    }  # fmt: skip


def _read_frame(paths: Sequence[Path], suite: ExpectationSuite) -> pd.DataFrame:
    """The staged rows as one DataFrame; integer columns stay integers (nullable) for readable samples."""
    import pandas as pd
    import pyarrow as pa
    import pyarrow.parquet as pq

    tables = []
    for path in paths:
        try:
            tables.append(pq.read_table(path))
        except (OSError, pa.ArrowException) as exc:
            raise ContractError(f"cannot read staged Parquet file {path}: {exc}") from exc
    if not tables:
        # No file means no rows: give the suite's columns so the verdict is "0 rows", not "column missing".
        columns = [c for e in suite.expectations for c in rule_columns(e.configuration.kwargs)]
        return pd.DataFrame({c: pd.Series([], dtype=object) for c in dict.fromkeys(columns)})
    try:
        table = pa.concat_tables(tables, promote_options="default")
    except (pa.ArrowInvalid, pa.ArrowTypeError) as exc:
        odd = next((p for p, t in zip(paths, tables, strict=True) if t.schema != tables[0].schema), paths[-1])
        raise ContractError(f"staged Parquet file {odd} does not match the schema of {paths[0]}: {exc}") from exc
    return table.to_pandas(types_mapper=_nullable_integers().get)


def _pop_bulky(result: dict[str, Any]) -> tuple[int, ...] | None:
    """Remove per-row lists from a rule's result (kept out of result.json); return the row positions."""
    res = result.get("result") or {}
    index = res.get("unexpected_index_list")
    for key in _BULKY:
        res.pop(key, None)
    if not isinstance(index, list):
        return None
    return tuple(int(i) for i in index if isinstance(i, int) or (isinstance(i, str) and i.isdigit()))


def _write_text(path: Path, text: str) -> None:
    """Write through a temporary sibling, so a reader never sees half a file."""
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(path)


# --- results -------------------------------------------------------------------------------------


def _json_safe(value: Any) -> Any:
    """Plain JSON values only: NaN and infinities become null, anything exotic becomes its text."""
    if isinstance(value, Mapping):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json_safe(v) for v in value]
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if value is None or isinstance(value, str | int | bool):
        return value
    return str(value)


def _public_kwargs(kwargs: Mapping[str, Any]) -> dict[str, Any]:
    """The kwargs a suite author wrote: GX adds ``batch_id`` at run time."""
    return {k: _json_safe(v) for k, v in kwargs.items() if k != "batch_id"}


def _rule_ids(pairs: Sequence[tuple[str, Mapping[str, Any]]]) -> list[str]:
    """``type:col1,col2`` per rule; a repeated id gets ``#2``, ``#3``… in suite order."""
    ids: list[str] = []
    seen: dict[str, int] = {}
    for etype, kwargs in pairs:
        columns = rule_columns(kwargs)
        base = f"{etype}:{','.join(columns)}" if columns else etype
        seen[base] = seen.get(base, 0) + 1
        ids.append(base if seen[base] == 1 else f"{base}#{seen[base]}")
    return ids


def _exception_message(info: Any) -> str | None:
    """The first message GX recorded for a rule it could not evaluate (two shapes exist in GX 1.x)."""
    if not isinstance(info, Mapping):
        return None
    candidates = [info] if "raised_exception" in info else [v for v in info.values() if isinstance(v, Mapping)]
    for item in candidates:
        if item.get("raised_exception"):
            return str(item.get("exception_message") or "exception without a message")[:500]
    return None


def _rule_results(results: Sequence[Mapping[str, Any]]) -> tuple[RuleResult, ...]:
    """Turn GX's per-expectation results (JSON form, suite order) into :class:`RuleResult` values."""
    pairs = [(r["expectation_config"]["type"], _public_kwargs(r["expectation_config"]["kwargs"])) for r in results]
    out = []
    for rid, (etype, kwargs), r in zip(_rule_ids(pairs), pairs, results, strict=True):
        res = r.get("result") or {}
        columns = rule_columns(kwargs)
        vi, en = describe_rule(etype, kwargs)
        count = res.get("unexpected_count")
        percent = res.get("unexpected_percent")
        out.append(
            RuleResult(
                rule=rid,
                expectation_type=etype,
                column=",".join(columns) or None,
                kwargs=kwargs,
                success=bool(r.get("success")),
                unexpected_count=int(count) if isinstance(count, int | float) else None,
                unexpected_percent=float(percent) if isinstance(percent, int | float) else None,
                sample=list(res.get("partial_unexpected_list") or [])[:SAMPLE_SIZE],
                description_vi=vi,
                description_en=en,
                observed_value=res.get("observed_value"),
                error=_exception_message(r.get("exception_info")),
            )
        )
    return tuple(out)
