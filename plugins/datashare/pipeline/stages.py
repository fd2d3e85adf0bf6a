"""One run of a dataset: extract -> transform -> validate -> commit release -> publish SQL share -> record.

Each stage is a function of the run context and the small JSON references the stages before it
returned: that is all Airflow passes through XCom, and all the CLI needs to run a dataset without
Airflow. A stage re-run for the same run gives the same result.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from datashare import faults
from datashare.exceptions import ConfigError, SourceError, ValidationFailed
from datashare.parquet import key_ranges_disjoint
from datashare.pipeline.context import RunContext, local_files, suite_parameters
from datashare.pipeline.refs import Committed, Extracted, Transformed, Validated
from datashare.settings import Settings
from datashare.source.connections import get_connection
from datashare.store import CommitPlan, DataFile, Release, newest_available, sha256_file
from datashare.store.manifest import build_manifest, code_version, content_sha256
from datashare.store.staging import StagedFile
from datashare.store.staging import sweep as sweep_staging

if TYPE_CHECKING:
    from datashare.share.target import ShareTarget

log = logging.getLogger(__name__)

# -- stages ------------------------------------------------------------------------------------


def _source_conn_id(ctx: RunContext) -> str:
    """The connection a source dataset reads; a derived dataset (inputs, no connection) extracts nothing."""
    conn_id = ctx.spec.source.conn_id
    if conn_id is None:
        raise ConfigError(f"{ctx.spec.id}: a derived dataset has no source connection to extract from")
    return conn_id


def stage_plan(ctx: RunContext) -> list[dict[str, Any]]:
    """Key ranges to extract in parallel (one per mapped task), from the spec's ``source.partitions``."""
    from datashare.source.extract import plan_ranges

    ranges = plan_ranges(ctx.spec, get_connection(_source_conn_id(ctx)))
    return [{"index": i, "lo": lo, "hi": hi} for i, (lo, hi) in enumerate(ranges)]


def stage_extract(ctx: RunContext, key_range: dict[str, Any] | None = None) -> Extracted:
    """Stream the source (or one key range of it) into staging, past the latest release's cursor if incremental."""
    from datashare.source.extract import extract

    if key_range is None or key_range["index"] == 0:
        sweep_staging(ctx.store.backend, ctx.settings.scratch_root, dataset_id=ctx.spec.id)
    latest = ctx.base_release()
    with ctx.task_scratch() as scratch:
        if ctx.spec.source.kind == "derived":
            return _extract_derived(ctx, latest, scratch)
        cursor = None
        if ctx.spec.mode.kind == "incremental" and latest is not None:
            from datashare.source.cursor import stored

            cursor = stored(ctx.spec, latest.manifest["datashare"])  # typed by what it recorded, as the spec reads it
        info = get_connection(_source_conn_id(ctx))
        index = key_range["index"] if key_range else 0
        bounds = (key_range["lo"], key_range["hi"]) if key_range else None
        result = extract(ctx.spec, info, scratch / "extract.parquet", cursor=cursor, key_range=bounds)
        key = f"{ctx.staging.output_prefix('extract')}/part-{index:05d}.parquet"
        staged = ctx.staging.put(result.path, key, result.rows)
        faults.point("extract.staged")
    return Extracted(
        files=(staged,),
        rows=result.rows,
        cursor_from=cursor,
        cursor_max=result.cursor_max,
        ignored_columns=tuple(result.ignored_columns),
        base_version=latest.version if latest else None,
    )


def _extract_derived(ctx: RunContext, latest: Release | None, scratch: Path) -> Extracted:
    """Build a derived dataset from the newest release (not withdrawn) of every input."""
    from datashare.parquet import BatchWriter
    from transforms.registry import resolve_builder

    inputs: dict[str, list[Path]] = {}
    versions: dict[str, int] = {}
    for input_id in ctx.spec.source.inputs:
        release = ctx.base_release(input_id)
        if release is None:
            raise SourceError(f"{ctx.spec.id}: input dataset {input_id!r} has no release yet (or all are withdrawn)")
        inputs[input_id] = local_files(ctx, release)
        versions[input_id] = release.version
    table = resolve_builder(ctx.spec.source.builder)(inputs)  # type: ignore[arg-type]
    target = scratch / "derived.parquet"
    with BatchWriter(target, table.schema) as writer:
        for batch in table.to_batches():
            writer.write(batch)
    log.info("%s: built %s rows from %s", ctx.spec.id, table.num_rows, versions)
    staged = ctx.staging.put(target, f"{ctx.staging.output_prefix('extract')}/part-00000.parquet", table.num_rows)
    return Extracted(
        files=(staged,),
        rows=table.num_rows,
        base_version=latest.version if latest else None,
        inputs=versions,
    )


def stage_combine(ctx: RunContext, parts: list[Extracted | dict[str, Any]]) -> Extracted:
    """One extraction reference from the key ranges' references, in range order."""
    from datashare.source.cursor import cursor_column, newest

    refs = [Extracted.of(p) for p in parts]
    cursors = [p.cursor_max for p in refs if p.cursor_max is not None]
    return Extracted(
        files=tuple(f for p in refs for f in p.files),
        rows=sum(p.rows for p in refs),
        cursor_from=refs[0].cursor_from,
        cursor_max=newest(cursor_column(ctx.spec), cursors),  # compared as the cursor's type, not as text
        ignored_columns=tuple(sorted({c for p in refs for c in p.ignored_columns})),
        base_version=refs[0].base_version,
    )


def _nothing_new(ctx: RunContext, extracted: Extracted) -> bool:
    return ctx.spec.mode.kind == "incremental" and extracted.base_version is not None and extracted.rows == 0


def stage_transform(ctx: RunContext, extracted: Extracted | dict[str, Any]) -> Transformed:
    """Apply the transforms and the schema contract."""
    extracted = Extracted.of(extracted)
    if _nothing_new(ctx, extracted):
        return Transformed(file=None, rows=0)
    from datashare.pipeline.transform import transform

    with ctx.task_scratch() as scratch:
        sources = [ctx.local(f) for f in extracted.files]
        result = transform(ctx.spec, sources, scratch / "transform.parquet")
        key = f"{ctx.staging.output_prefix('transform')}/part-00000.parquet"
        staged = ctx.staging.put(result.path, key, result.rows)
        faults.point("transform.staged")
    return Transformed(
        file=staged,
        rows=result.rows,
        duplicates_dropped=result.duplicates_dropped,
        conflicts_dropped=result.conflicts_dropped,
    )


def stage_validate(ctx: RunContext, transformed: Transformed | dict[str, Any]) -> Validated:
    """Run the suite; quarantine rows that break row-level rules within the threshold; store the report either way."""
    transformed = Transformed.of(transformed)
    if transformed.file is None:
        return Validated(skipped=True)
    from datashare.quality.quarantine import quarantine_and_revalidate
    from datashare.quality.validation import validate_parquet

    with ctx.task_scratch() as scratch:
        out_dir = scratch / "validation"
        suite = ctx.settings.expectations_dir / f"{ctx.spec.suite_name}.json"
        args: dict[str, Any] = {
            "dataset_id": ctx.spec.id,
            "run_id": ctx.run_key,
            "out_dir": out_dir,
            "title_vi": ctx.spec.title.vi,
            "title_en": ctx.spec.title.en,
            "parameters": suite_parameters(ctx),
            "personal_data": {
                c.name: c.personal_data.value for c in ctx.spec.columns if c.personal_data.value != "none"
            },
        }
        given = ctx.local(transformed.file)
        threshold = ctx.spec.quarantine.max_share
        outcome = validate_parquet([given], suite, collect_indices=threshold > 0, **args)
        path = given
        if not outcome.success and threshold > 0:
            path, outcome = quarantine_and_revalidate(ctx, given, outcome, threshold, suite, args)
        prefix = ctx.store.save_validation(ctx.spec.id, ctx.run_key, out_dir)
        faults.point("validate.saved")
        evidence = tuple(
            StagedFile(
                key=f"{prefix}/{name}",
                rows=0,
                sha256=sha256_file(out_dir / name),
                bytes=(out_dir / name).stat().st_size,
            )
            for name in ("report.html", "result.json")
            if (out_dir / name).is_file()
        )
        summary = outcome.summary()
        event = "validation_passed" if outcome.success else "validation_failed"
        ctx.ledger.append(
            event, dataset_id=ctx.spec.id, run=ctx.run_key, report=f"{prefix}/report.html", summary=summary
        )
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
        if path == given:
            file = transformed.file
        else:  # rows were set aside: the kept rows are what the release gets
            file = ctx.staging.put(path, f"{ctx.staging.output_prefix('validate')}/part-00000.parquet", outcome.rows)
    return Validated(
        skipped=False,
        file=file,
        rows=outcome.rows,
        summary=summary,
        report=f"{prefix}/report.html",
        evidence=evidence,
    )


def _carry_over(ctx: RunContext, base: Release, delta: Path) -> list[DataFile]:
    """Files of the base release, minus rows whose key the delta replaces (late updates); none left empty."""
    import pyarrow.parquet as pq

    key = list(ctx.spec.key)
    delta_keys = pq.read_table(delta, columns=key)
    backend = ctx.store.backend
    files: list[DataFile] = []
    for f in base.files:
        name = f["path"].removeprefix("data/")
        src_key = base.key(f["path"])
        carried = DataFile(name=name, rows=f["rows"], sha256=f["sha256"], bytes=f["bytes"], key=src_key)
        with backend.open(src_key) as handle:  # the footer only: two small reads on S3
            disjoint = key_ranges_disjoint(handle, delta_keys)
        if disjoint:  # new rows past the cursor: the old file is carried over as it is
            files.append(carried)
            continue
        local = ctx.local(StagedFile(key=src_key, rows=f["rows"], sha256=f["sha256"], bytes=f["bytes"]))
        old = pq.read_table(local, columns=key)
        overlap = old.join(delta_keys, keys=key, join_type="left semi").num_rows
        if not overlap:
            files.append(carried)
            continue
        table = pq.read_table(local)
        kept = table.join(delta_keys, keys=key, join_type="left anti").sort_by([(k, "ascending") for k in key])
        log.info("%s: %s rows of %s replaced by late updates", ctx.spec.id, overlap, name)
        if kept.num_rows == 0:
            continue  # every row replaced: no empty file in a release
        kept = kept.select(table.schema.names).cast(table.schema)
        assert ctx.scratch is not None
        out = ctx.scratch / "merge" / f"v{base.version}-{name}"
        out.parent.mkdir(parents=True, exist_ok=True)
        pq.write_table(kept, out, compression="zstd")
        files.append(DataFile.from_path(out, name, kept.num_rows))
    return files


def _renamed(files: list[DataFile]) -> list[DataFile]:
    """The release's files named ``part-00000.parquet``, ``part-00001.parquet``... in order."""
    from dataclasses import replace

    return [replace(f, name=f"part-{i:05d}.parquet") for i, f in enumerate(files)]


def stage_commit(
    ctx: RunContext,
    extracted: Extracted | dict[str, Any],
    transformed: Transformed | dict[str, Any],
    validated: Validated | dict[str, Any],
) -> Committed:
    """Commit release N (or nothing, when nothing changed), planned against whatever is latest at commit time."""
    extracted, transformed, validated = Extracted.of(extracted), Transformed.of(transformed), Validated.of(validated)
    store = ctx.store
    if transformed.file is None:
        latest = ctx.base_release()
        assert latest is not None
        log.info("%s: no rows past cursor %s; no new version", ctx.spec.id, extracted.cursor_from)
        return _committed(latest, created=False, reason="no new rows past the cursor")
    assert validated.file is not None
    delta = validated.file
    evidence = [
        DataFile(name=f.key.rsplit("/", 1)[-1], rows=0, sha256=f.sha256, bytes=f.bytes, key=f.key)
        for f in validated.evidence
    ]
    code = code_version(ctx.settings.home)

    def plan(_latest: Release | None) -> CommitPlan:
        base = newest_available(store, ctx.spec.id, store.withdrawn(ctx.spec.id))
        incremental = ctx.spec.mode.kind == "incremental" and base is not None
        files = _carry_over(ctx, base, ctx.local(delta)) if incremental else []  # type: ignore[arg-type]
        if delta.rows or not files:
            files.append(DataFile(name="", rows=delta.rows, sha256=delta.sha256, bytes=delta.bytes, key=delta.key))
        files = _renamed(files)
        from datashare.source.cursor import TYPE_FIELD, cursor_column, newest, stored, type_record

        previous_cursor = stored(ctx.spec, base.manifest["datashare"]) if incremental else None  # type: ignore[union-attr]
        cursor = newest(cursor_column(ctx.spec), [extracted.cursor_max, previous_cursor])
        manifest = build_manifest(
            ctx.spec,
            files,
            run_key=ctx.run_key,
            created=datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z"),
            data_interval=ctx.data_interval,
            source_cursor=cursor,
            validation=validated.summary or {},
            stats={
                "extracted_rows": extracted.rows,
                "duplicates_dropped": transformed.duplicates_dropped,
                "conflicts_dropped": transformed.conflicts_dropped,
                "ignored_source_columns": list(extracted.ignored_columns),
                "base_version": base.version if base else None,
                "inputs": extracted.inputs,
            },
            code=code,
        )
        if cursor is not None:
            manifest["datashare"][TYPE_FIELD] = type_record(ctx.spec)  # the cursor's type, so it reads back exactly
        return CommitPlan(
            files=files, manifest=manifest, content_sha256=content_sha256(ctx.spec, files), validation=evidence
        )

    with ctx.task_scratch():
        result = store.commit(ctx.spec.id, run_key=ctx.run_key, plan=plan)
    assert result.release is not None
    reason = None if result.created else "content unchanged"
    withdrawn = store.withdrawn(ctx.spec.id)
    if not result.created and result.version in withdrawn:
        reason = f"content equals withdrawn v{result.version}: not released again"
        log.warning("%s: %s (withdrawn for: %s)", ctx.spec.id, reason, withdrawn[result.version])
    return _committed(result.release, created=result.created, reason=reason)


def _committed(release: Release, *, created: bool, reason: str | None) -> Committed:
    return Committed(
        version=release.version,
        created=created,
        reason=reason,
        rows=release.rows,
        manifest_sha256=release.record["manifest_sha256"],
    )


def _apply_sql_grants(ctx: RunContext, target: ShareTarget) -> None:
    """Make the share's grants match the spec and the recipients registry (SQLite has no roles)."""
    from datashare.access import load_registry
    from datashare.share.sqlroles import apply_grants

    if target.has_roles:
        registry = load_registry(ctx.settings.recipients_file)
        apply_grants(spec=ctx.spec, registry=registry, target=target)


def _sql_readers(ctx: RunContext, target: ShareTarget) -> tuple[str, ...] | None:
    """Where the dataset lives in the share: None (the share's database) or its readers' databases."""
    from datashare.access import load_registry
    from datashare.share.sqlroles import share_readers

    if not target.has_roles:
        return None
    return share_readers(ctx.spec, load_registry(ctx.settings.recipients_file))


def stage_publish_sql(ctx: RunContext, committed: Committed | dict[str, Any]) -> dict[str, Any]:
    """Serve the newest release that is not withdrawn in the SQL share (normally the one just committed)."""
    version = committed.version if isinstance(committed, Committed) else int(committed["version"])
    return sync_sql_share(ctx, committed=version)


def sync_sql_share(ctx: RunContext, *, committed: int | None = None) -> dict[str, Any]:
    """Make the SQL share serve the newest release that is not withdrawn, and nothing withdrawn.

    The view moves to that release in the transaction that drops withdrawn version tables (the
    release is loaded again from the store if retention dropped its table); when every release is
    withdrawn, or nobody may read a restricted dataset, the dataset leaves the share. A restricted
    dataset lives in its readers' own databases, and moves when its audience changes, even without a
    new release. Grants are applied after every change.
    """
    from datashare.share.sqlshare import publish_release, share_state, unpublish

    if not ctx.spec.publish.sql:
        return {"published": False, "reason": "sql publishing is off in the spec"}
    target = ctx.settings.share_target()  # opened once for the whole task
    withdrawn = ctx.store.withdrawn(ctx.spec.id)  # read again: a withdrawal may be minutes old
    if committed in withdrawn:
        log.warning("%s v%s is withdrawn: not published to the SQL share", ctx.spec.id, committed)
    readers = _sql_readers(ctx, target)
    state = share_state(dataset_id=ctx.spec.id, target=target, readers=readers)
    in_share = state.versions
    stale = [v for v in in_share if v in withdrawn]
    base = newest_available(ctx.store, ctx.spec.id, withdrawn) if readers != () else None
    if base is None:
        if not in_share:
            return {"published": False, "reason": "no release to serve"}
        dropped = unpublish(dataset_id=ctx.spec.id, target=target)
        ctx.ledger.append("sql_unpublished", dataset_id=ctx.spec.id, tables=list(dropped), target=target.redacted)
        why = "no active recipient may read it" if readers == () else "every release is withdrawn"
        return {
            "published": False,
            "reason": f"{why}: the view was removed from the share",
            "dropped": list(dropped),
        }
    version = base.version
    if in_share and in_share[-1] == version and not stale and state.in_place:
        _apply_sql_grants(ctx, target)  # a reclassification or registry change applies on the next run
        return {
            "published": False,
            "reason": f"the share already serves v{version}",
            "view": ctx.spec.id,
            "version": version,
        }
    with ctx.task_scratch():
        result = publish_release(
            dataset_id=ctx.spec.id,
            version=version,
            parquet_paths=local_files(ctx, base),
            target=target,
            retention=ctx.spec.retention.sql_versions,
            comment=f"{ctx.spec.title.vi} / {ctx.spec.title.en}",
            withdrawn=stale,
            readers=readers,
        )
    faults.point("publish.loaded")
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
    _apply_sql_grants(ctx, target)
    return {
        "published": True,
        "view": result.view,
        "table": result.table,
        "rows": result.rows,
        "target": result.target,
        "dropped": [*result.dropped, *(f"{ctx.spec.id}__v{v}" for v in stale)],
        "version": version,
    }


def stage_record(ctx: RunContext, committed: Committed | dict[str, Any], published: dict[str, Any]) -> dict[str, Any]:
    """Summarise the run for people (the CLI and the logs); the run is over, so its staging goes."""
    committed = Committed.of(committed)
    release = ctx.store.release(ctx.spec.id, committed.version)
    summary = describe_release(ctx, release)
    summary.update(
        created=committed.created,
        reason=committed.reason,
        sql=published,
        run=ctx.run_key,
        finished_at=datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z"),
    )
    ctx.store.save_run(ctx.spec.id, ctx.run_key, summary)
    faults.point("record.saved")
    ctx.staging.remove()
    if committed.created:
        from datashare.notify.webhooks import notify_release

        summary["webhooks"] = notify_release(ctx.store, ctx.spec, release, settings=ctx.settings)
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
    from datashare.quality.validation import import_in_background

    ctx = RunContext.create(dataset_id, run_id, settings=settings)
    # A full run always validates: load the validation libraries while extracting. An incremental run on
    # a release often finds nothing new, and then must not pay for them; it loads them while transforming.
    incremental = ctx.spec.mode.kind == "incremental" and ctx.base_release() is not None
    if not incremental:
        import_in_background()
    if ctx.spec.source.partitions is not None:
        extracted = stage_combine(ctx, [stage_extract(ctx, r) for r in stage_plan(ctx)])
    else:
        extracted = stage_extract(ctx)
    if incremental and not _nothing_new(ctx, extracted):
        import_in_background()
    transformed = stage_transform(ctx, extracted)
    validated = stage_validate(ctx, transformed)
    committed = stage_commit(ctx, extracted, transformed, validated)
    published = stage_publish_sql(ctx, committed)
    return stage_record(ctx, committed, published)
