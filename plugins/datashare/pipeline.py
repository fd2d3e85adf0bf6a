"""One run of a dataset: extract -> transform -> validate -> commit release -> publish SQL share -> record.

Each stage is a function of the run context and the small JSON references the stages before it
returned: that is all Airflow passes through XCom, and all the CLI needs to run a dataset without
Airflow. A stage re-run for the same run gives the same result.
"""

from __future__ import annotations

import logging
import shutil
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from datashare.connections import get_connection
from datashare.context import RunContext, local_files, suite_parameters, sweep_staging
from datashare.exceptions import SourceError, ValidationFailed
from datashare.manifest import build_manifest, code_version, content_sha256
from datashare.parquet import key_ranges_disjoint, parquet_rows
from datashare.settings import Settings
from datashare.store import DataFile, Release

log = logging.getLogger(__name__)

# -- stages ------------------------------------------------------------------------------------


def stage_plan(ctx: RunContext) -> list[dict[str, Any]]:
    """Key ranges to extract in parallel (one per mapped task), from the spec's ``source.partitions``."""
    from datashare.extract import plan_ranges

    ranges = plan_ranges(ctx.spec, get_connection(ctx.spec.source.conn_id))
    return [{"index": i, "lo": lo, "hi": hi} for i, (lo, hi) in enumerate(ranges)]


def stage_extract(ctx: RunContext, key_range: dict[str, Any] | None = None) -> dict[str, Any]:
    """Stream the source (or one key range of it) into staging, past the latest release's cursor if incremental."""
    from datashare.extract import extract

    if key_range is None or key_range["index"] == 0:
        sweep_staging(ctx.settings.staging_root)
    latest = ctx.base_release()
    if ctx.spec.source.kind == "derived":
        return _extract_derived(ctx, latest)
    cursor = None
    if ctx.spec.mode.kind == "incremental" and latest is not None:
        from datashare.cursor import stored

        cursor = stored(ctx.spec, latest.manifest["datashare"])  # typed by what it recorded, as the spec reads it
    info = get_connection(ctx.spec.source.conn_id)
    index = key_range["index"] if key_range else 0
    bounds = (key_range["lo"], key_range["hi"]) if key_range else None
    target = ctx.staging / "extract" / f"part-{index:05d}.parquet"
    result = extract(ctx.spec, info, target, cursor=cursor, key_range=bounds)
    return {
        "paths": [str(result.path)],
        "rows": result.rows,
        "cursor_from": cursor,
        "cursor_max": result.cursor_max,
        "ignored_columns": list(result.ignored_columns),
        "base_version": latest.version if latest else None,
    }


def _extract_derived(ctx: RunContext, latest: Release | None) -> dict[str, Any]:
    """Build a derived dataset from the latest releases of its inputs."""
    from datashare.parquet import BatchWriter
    from transforms.registry import resolve_builder

    inputs: dict[str, list[Path]] = {}
    versions: dict[str, int] = {}
    for input_id in ctx.spec.source.inputs:
        release = ctx.base_release(input_id)
        if release is None:
            raise SourceError(f"{ctx.spec.id}: input dataset {input_id!r} has no release yet (or all are withdrawn)")
        inputs[input_id] = local_files(ctx, release, "inputs")
        versions[input_id] = release.version
    table = resolve_builder(ctx.spec.source.builder)(inputs)  # type: ignore[arg-type]
    target = ctx.staging / "extract" / "part-00000.parquet"
    with BatchWriter(target, table.schema) as writer:
        for batch in table.to_batches():
            writer.write(batch)
    log.info("%s: built %s rows from %s", ctx.spec.id, table.num_rows, versions)
    return {
        "paths": [str(target)],
        "rows": table.num_rows,
        "cursor_from": None,
        "cursor_max": None,
        "ignored_columns": [],
        "base_version": latest.version if latest else None,
        "inputs": versions,
    }


def stage_combine(ctx: RunContext, parts: list[dict[str, Any]]) -> dict[str, Any]:
    """One extraction reference from the key ranges' references, in range order."""
    from datashare.cursor import cursor_column, newest

    cursors = [p["cursor_max"] for p in parts if p["cursor_max"] is not None]
    return {
        "paths": [path for p in parts for path in p["paths"]],
        "rows": sum(p["rows"] for p in parts),
        "cursor_from": parts[0]["cursor_from"],
        "cursor_max": newest(cursor_column(ctx.spec), cursors),  # compared as the cursor's type, not as text
        "ignored_columns": sorted({c for p in parts for c in p["ignored_columns"]}),
        "base_version": parts[0]["base_version"],
    }


def _nothing_new(ctx: RunContext, extracted: dict[str, Any]) -> bool:
    return ctx.spec.mode.kind == "incremental" and extracted["base_version"] is not None and extracted["rows"] == 0


def stage_transform(ctx: RunContext, extracted: dict[str, Any]) -> dict[str, Any]:
    """Apply the transforms and the schema contract."""
    from datashare.transform import transform

    if _nothing_new(ctx, extracted):
        return {"path": None, "rows": 0, "duplicates_dropped": 0, "conflicts_dropped": 0}
    sources = [Path(p) for p in extracted["paths"]]
    result = transform(ctx.spec, sources, ctx.staging / "transform" / "part-00000.parquet")
    return {
        "path": str(result.path),
        "rows": result.rows,
        "duplicates_dropped": result.duplicates_dropped,
        "conflicts_dropped": result.conflicts_dropped,
    }


def stage_validate(ctx: RunContext, transformed: dict[str, Any]) -> dict[str, Any]:
    """Run the suite; quarantine rows that break row-level rules within the threshold; store the report either way."""
    from datashare.quarantine import quarantine_and_revalidate
    from datashare.validation import validate_parquet

    if transformed["path"] is None:
        return {"skipped": True, "success": True, "summary": None, "report": None, "path": None}
    out_dir = ctx.staging / "validation"
    if out_dir.exists():
        shutil.rmtree(out_dir)
    suite = ctx.settings.expectations_dir / f"{ctx.spec.suite_name}.json"
    args = {
        "dataset_id": ctx.spec.id,
        "run_id": ctx.run_key,
        "out_dir": out_dir,
        "title_vi": ctx.spec.title.vi,
        "title_en": ctx.spec.title.en,
    }
    path = Path(transformed["path"])
    threshold = ctx.spec.quarantine.max_share
    args["parameters"] = suite_parameters(ctx)
    outcome = validate_parquet([path], suite, collect_indices=threshold > 0, **args)
    if not outcome.success and threshold > 0:
        path, outcome = quarantine_and_revalidate(ctx, path, outcome, threshold, suite, args)
    prefix = ctx.store.save_validation(ctx.spec.id, ctx.run_key, out_dir)
    summary = outcome.summary()
    event = "validation_passed" if outcome.success else "validation_failed"
    ctx.ledger.append(event, dataset_id=ctx.spec.id, run=ctx.run_key, report=f"{prefix}/report.html", summary=summary)
    if not outcome.success:
        failed = ", ".join(f"{r.rule} ({r.unexpected_count} rows)" for r in outcome.rules if not r.success)
        extra = ""
        if outcome.quarantine and outcome.quarantine.get("over_threshold"):
            q = outcome.quarantine
            extra = (
                f" Row-level failures in {q['rows']} rows ({q['share']:.2%}) exceed the quarantine threshold"
                f" {threshold:.2%}."
            )
        raise ValidationFailed(
            f"{ctx.spec.id}: validation failed on {outcome.failed} of {outcome.evaluated} rules: {failed}.{extra} "
            f"Nothing was published; report: {ctx.store.backend.describe(prefix + '/report.html')}"
        )
    return {
        "skipped": False,
        "success": True,
        "summary": summary,
        "report": f"{prefix}/report.html",
        "dir": str(out_dir),
        "path": str(path),
        "rows": outcome.rows,
    }


def _reuse_or_filter(ctx: RunContext, latest: Release, delta_path: Path) -> list[DataFile]:
    """Files of the previous release, minus rows whose key the delta replaces (late updates)."""
    import pyarrow.parquet as pq

    key = list(ctx.spec.key)
    delta_keys = pq.read_table(delta_path, columns=key)
    files: list[DataFile] = []
    for f in latest.files:
        name = f["path"].removeprefix("data/")
        src_key = f"{latest.prefix}/{f['path']}"
        local = ctx.store.backend.local_path(src_key)
        if local is None:
            local = ctx.staging / "previous" / name
            local.parent.mkdir(parents=True, exist_ok=True)
            ctx.store.backend.download(src_key, local)
        if key_ranges_disjoint(local, delta_keys):  # footer statistics only: new rows past the cursor
            files.append(DataFile(local=local, name=name, rows=f["rows"], sha256=f["sha256"], bytes=f["bytes"]))
            continue
        old = pq.read_table(local, columns=key)
        overlap = old.join(delta_keys, keys=key, join_type="left semi").num_rows
        if not overlap:
            files.append(DataFile(local=local, name=name, rows=f["rows"], sha256=f["sha256"], bytes=f["bytes"]))
            continue
        table = pq.read_table(local)
        kept = table.join(delta_keys, keys=key, join_type="left anti").sort_by([(k, "ascending") for k in key])
        kept = kept.select(table.schema.names).cast(table.schema)
        out = ctx.staging / "merge" / name
        out.parent.mkdir(parents=True, exist_ok=True)
        pq.write_table(kept, out, compression="zstd")
        log.info("%s: %s rows of %s replaced by late updates", ctx.spec.id, overlap, name)
        files.append(DataFile.from_path(out, name, kept.num_rows))
    return files


def stage_commit(
    ctx: RunContext, extracted: dict[str, Any], transformed: dict[str, Any], validated: dict[str, Any]
) -> dict[str, Any]:
    """Commit release N (or nothing, when nothing changed)."""
    store = ctx.store
    latest = ctx.base_release()
    if transformed["path"] is None:
        assert latest is not None
        log.info("%s: no rows past cursor %s; no new version", ctx.spec.id, extracted["cursor_from"])
        return _commit_ref(latest, created=False, reason="no new rows past the cursor")
    staged = Path(validated["path"])
    incremental_base = ctx.spec.mode.kind == "incremental" and latest is not None
    files = _reuse_or_filter(ctx, latest, staged) if incremental_base else []  # type: ignore[arg-type]
    files.append(DataFile.from_path(staged, f"part-{len(files):05d}.parquet", parquet_rows(staged)))
    from datashare.cursor import TYPE_FIELD, cursor_column, newest, stored, type_record

    cursor = extracted["cursor_max"]
    if incremental_base:
        cursor = newest(cursor_column(ctx.spec), [cursor, stored(ctx.spec, latest.manifest["datashare"])])  # type: ignore[union-attr]
    manifest = build_manifest(
        ctx.spec,
        files,
        run_key=ctx.run_key,
        created=datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z"),
        data_interval=ctx.data_interval,
        source_cursor=cursor,
        validation=validated["summary"] or {},
        stats={
            "extracted_rows": extracted["rows"],
            "duplicates_dropped": transformed["duplicates_dropped"],
            "conflicts_dropped": transformed["conflicts_dropped"],
            "ignored_source_columns": extracted["ignored_columns"],
            "base_version": extracted["base_version"],
            "inputs": extracted.get("inputs"),
        },
        code=code_version(ctx.settings.home),
    )
    if cursor is not None:
        manifest["datashare"][TYPE_FIELD] = type_record(ctx.spec)  # the cursor's type, so it reads back exactly
    result = store.commit(
        ctx.spec.id,
        run_key=ctx.run_key,
        files=files,
        manifest=manifest,
        validation_dir=Path(validated["dir"]),
        content_sha256=content_sha256(ctx.spec, files),
    )
    assert result.release is not None
    if result.created:
        ctx.ledger.append(
            "release_committed",
            dataset_id=ctx.spec.id,
            version=result.version,
            run=ctx.run_key,
            manifest_sha256=result.release.record["manifest_sha256"],
            rows=result.release.rows,
        )
    reason = None if result.created else "content unchanged"
    if not result.created and result.version in ctx.withdrawn:
        reason = f"content equals withdrawn v{result.version}: not released again"
        log.warning("%s: %s (withdrawn for: %s)", ctx.spec.id, reason, ctx.withdrawn[result.version])
    return _commit_ref(result.release, created=result.created, reason=reason)


def _commit_ref(release: Release, *, created: bool, reason: str | None) -> dict[str, Any]:
    return {
        "version": release.version,
        "created": created,
        "reason": reason,
        "rows": release.rows,
        "manifest_sha256": release.record["manifest_sha256"],
    }


def _apply_sql_grants(ctx: RunContext, url: str, schema: str) -> None:
    """Make the share's grants match the spec and the recipients registry (SQLite has no roles)."""
    from datashare.access import load_registry
    from datashare.sqlroles import apply_grants, supports_roles

    if supports_roles(url):
        registry = load_registry(ctx.settings.recipients_file)
        apply_grants(spec=ctx.spec, registry=registry, target_url=url, schema=schema)


def stage_publish_sql(ctx: RunContext, committed: dict[str, Any]) -> dict[str, Any]:
    """Serve the newest release that is not withdrawn in the SQL share (normally the one just committed)."""
    return sync_sql_share(ctx, committed=committed["version"])


def sync_sql_share(ctx: RunContext, *, committed: int | None = None) -> dict[str, Any]:
    """Make the SQL share serve the newest release that is not withdrawn, and nothing withdrawn.

    The view moves to that release in the transaction that drops withdrawn version tables (the
    release is loaded again from the store if retention dropped its table); when every release is
    withdrawn the dataset leaves the share. Grants are applied after every change.
    """
    from datashare.sqlshare import list_versions, publish_release, redacted_target, unpublish
    from datashare.withdrawals import newest_available, withdrawn_versions

    if not ctx.spec.publish.sql:
        return {"published": False, "reason": "sql publishing is off in the spec"}
    url = ctx.settings.share_url()
    schema = ctx.settings.share_schema
    withdrawn = withdrawn_versions(ctx.ledger, ctx.spec.id)  # read again: a withdrawal may be minutes old
    if committed in withdrawn:
        log.warning("%s v%s is withdrawn: not published to the SQL share", ctx.spec.id, committed)
    in_share = list_versions(dataset_id=ctx.spec.id, target_url=url, schema=schema)
    stale = [v for v in in_share if v in withdrawn]
    base = newest_available(ctx.store, ctx.spec.id, withdrawn)
    if base is None:
        if not in_share:
            return {"published": False, "reason": "no release to serve"}
        dropped = unpublish(dataset_id=ctx.spec.id, target_url=url, schema=schema)
        ctx.ledger.append("sql_unpublished", dataset_id=ctx.spec.id, tables=list(dropped), target=redacted_target(url))
        return {
            "published": False,
            "reason": "every release is withdrawn: the view was removed from the share",
            "dropped": list(dropped),
        }
    version = base.version
    if in_share and in_share[-1] == version and not stale:
        _apply_sql_grants(ctx, url, schema)  # a reclassification or registry change applies on the next run
        return {
            "published": False,
            "reason": f"the share already serves v{version}",
            "view": ctx.spec.id,
            "version": version,
        }
    paths = local_files(ctx, base, "publish")
    result = publish_release(
        dataset_id=ctx.spec.id,
        version=version,
        parquet_paths=paths,
        target_url=url,
        schema=schema,
        retention=ctx.spec.retention.sql_versions,
        comment=f"{ctx.spec.title.vi} / {ctx.spec.title.en}",
        withdrawn=stale,
    )
    details: dict[str, Any] = {"replaces_withdrawn": stale} if stale else {}
    ctx.ledger.append(
        "sql_published",
        dataset_id=ctx.spec.id,
        version=version,
        manifest_sha256=base.record["manifest_sha256"],
        table=result.table,
        view=result.view,
        target=result.target,
        **details,
    )
    _apply_sql_grants(ctx, url, schema)
    return {
        "published": True,
        "view": result.view,
        "table": result.table,
        "rows": result.rows,
        "target": result.target,
        "dropped": [*result.dropped, *(f"{ctx.spec.id}__v{v}" for v in stale)],
        "version": version,
    }


def stage_record(ctx: RunContext, committed: dict[str, Any], published: dict[str, Any]) -> dict[str, Any]:
    """Summarise the run for people (the CLI and the logs) and clean the staging folder."""
    release = ctx.store.release(ctx.spec.id, committed["version"])
    summary = describe_release(ctx, release)
    summary.update(
        created=committed["created"],
        reason=committed["reason"],
        sql=published,
        run=ctx.run_key,
        finished_at=datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z"),
    )
    ctx.store.save_run(ctx.spec.id, ctx.run_key, summary)
    shutil.rmtree(ctx.staging, ignore_errors=True)
    return summary


def describe_release(ctx: RunContext, release: Release) -> dict[str, Any]:
    """What a person wants to see of a release."""
    backend = ctx.store.backend
    validation = release.manifest["datashare"].get("validation") or {}
    return {
        "dataset_id": release.dataset_id,
        "version": release.version,
        "rows": release.rows,
        "committed_at": release.record["committed_at"],
        "path": backend.describe(release.prefix),
        "files": [
            {
                "path": backend.describe(f"{release.prefix}/{f['path']}"),
                "sha256": f["sha256"],
                "bytes": f["bytes"],
                "rows": f["rows"],
            }
            for f in release.files
        ],
        "manifest_sha256": release.record["manifest_sha256"],
        "validation": "passed" if validation.get("success") else "not run" if not validation else "failed",
        "report": backend.describe(f"{release.prefix}/validation/report.html"),
        "sql_view": release.dataset_id
        if ctx.settings.share_url().startswith("sqlite")
        else f"{ctx.settings.share_schema}.{release.dataset_id}",
    }


def run_dataset(dataset_id: str, *, run_id: str | None = None, settings: Settings | None = None) -> dict[str, Any]:
    """Run every stage in this process (the CLI's ``run``); raises ``DatashareError`` on failure."""
    run_id = run_id or f"cli__{datetime.now(UTC).strftime('%Y%m%dT%H%M%S%fZ')}"
    ctx = RunContext.create(dataset_id, run_id, settings=settings)
    if ctx.spec.source.partitions is not None:
        extracted = stage_combine(ctx, [stage_extract(ctx, r) for r in stage_plan(ctx)])
    else:
        extracted = stage_extract(ctx)
    transformed = stage_transform(ctx, extracted)
    validated = stage_validate(ctx, transformed)
    committed = stage_commit(ctx, extracted, transformed, validated)
    published = stage_publish_sql(ctx, committed)
    return stage_record(ctx, committed, published)
