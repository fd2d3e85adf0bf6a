"""Row-level quarantine: rows that break row-level rules are set aside with the rules they broke.

They are never published. The run may go ahead only while their share stays within the spec's
threshold; the quarantined rows and a per-rule count are kept under ``_quarantine/<id>/<run>/`` for the
data owner to fix at the source.
"""

from __future__ import annotations

import logging
import shutil
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from datashare.parquet import COMPRESSION

if TYPE_CHECKING:
    from datashare.pipeline.context import RunContext

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Split:
    """What the quarantine split produced."""

    kept: Path
    rejected: Path
    kept_rows: int
    rejected_rows: int
    by_rule: dict[str, int]


def split_rows(source: Path, indices_by_rule: Mapping[str, Sequence[int]], kept: Path, rejected: Path) -> Split:
    """Rows listed under no rule go to ``kept``; the others to ``rejected``, with a ``_rules`` column naming why."""
    table = pq.read_table(source)
    reasons: list[list[str]] = [[] for _ in range(table.num_rows)]
    for rule, indices in sorted(indices_by_rule.items()):
        for i in indices:
            if 0 <= i < table.num_rows:
                reasons[i].append(rule)
    bad = pa.array([bool(r) for r in reasons])
    kept_table = table.filter(pc.invert(bad))
    rejected_table = table.filter(bad).append_column(
        pa.field("_rules", pa.string()), pa.array(["; ".join(r) for r in reasons if r], pa.string())
    )
    pq.write_table(kept_table, kept, compression=COMPRESSION)
    pq.write_table(rejected_table, rejected, compression=COMPRESSION)
    by_rule = {rule: len(set(idx)) for rule, idx in indices_by_rule.items() if idx}
    return Split(kept, rejected, kept_table.num_rows, rejected_table.num_rows, by_rule)


def quarantine_and_revalidate(
    ctx: RunContext, path: Path, outcome: Any, threshold: float, suite: Path, args: dict[str, Any]
) -> tuple[Path, Any]:
    """Set aside rows failing row-level rules if the share allows, then validate what is left.

    Returns the file to publish and the final outcome; a table-level failure, or a share over the
    threshold, returns the original file and the failed outcome (with the quarantine figures).
    """
    from datashare.quality.quarantine import split_rows
    from datashare.quality.validation import is_row_level, validate_parquet

    failed = [r for r in outcome.rules if not r.success]
    row_level = all(is_row_level(r.expectation_type) and r.unexpected_index is not None and not r.error for r in failed)
    if not row_level:
        return path, outcome  # a table-level failure always fails the run
    indices = {r.rule: r.unexpected_index for r in failed}
    bad_rows = len({i for idx in indices.values() for i in idx})
    share = bad_rows / outcome.rows if outcome.rows else 1.0
    info: dict[str, Any] = {
        "rows": bad_rows,
        "share": share,
        "threshold": threshold,
        "by_rule": {rule: len(set(idx)) for rule, idx in indices.items()},
        "over_threshold": share > threshold,
    }
    if share > threshold:
        from dataclasses import replace

        from datashare.quality.validation import _write_text

        failed_outcome = replace(outcome, quarantine=info)
        from datashare.quality.report import render_report

        _write_text(failed_outcome.report_path, render_report(failed_outcome))  # the report shows the figures
        return path, failed_outcome
    assert ctx.scratch is not None, "quarantine runs inside the validate stage's scratch"
    folder = ctx.scratch / "quarantine"
    folder.mkdir(parents=True, exist_ok=True)
    split = split_rows(path, indices, folder / "kept.parquet", folder / "rows.parquet")
    key = f"_quarantine/{ctx.spec.id}/{ctx.run_key}"
    ctx.store.backend.put_file(f"{key}/rows.parquet", split.rejected)
    info["key"] = f"{key}/rows.parquet"  # a store key, never a server path: the report and manifest travel
    log.warning(
        "%s: quarantined %s rows (%.3f%%, threshold %.3f%%): %s",
        ctx.spec.id, bad_rows, 100 * share, 100 * threshold, info["by_rule"],
    )  # fmt: skip
    from datashare.notify.alerts import deliver_quietly, quarantine_message, quarantine_needs_alert

    if quarantine_needs_alert(bad_rows, outcome.rows, threshold):
        message = quarantine_message(
            ctx.spec.id, quarantined=bad_rows, total=outcome.rows, threshold=threshold, by_rule=info["by_rule"]
        )
        deliver_quietly(message)
    shutil.rmtree(args["out_dir"], ignore_errors=True)
    personal = {c.name: c.personal_data.value for c in ctx.spec.columns if c.personal_data.value != "none"}
    rerun_args = {**args, "personal_data": args.get("personal_data") or personal}
    return split.kept, validate_parquet([split.kept], suite, quarantine=info, prior=outcome, **rerun_args)
