"""Row-level quarantine: rows that break row-level rules are set aside with the rules they broke.

They are never published. The run may go ahead only while their share stays within the spec's
threshold; the quarantined rows and a per-rule count are kept under ``_quarantine/<id>/<run>/`` for the
data owner to fix at the source.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from datashare.parquet import COMPRESSION


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
