"""The real-scheduler bench measures whole releases of copies of one spec: the copies must be that spec.

``bench/scheduler.py`` runs several first releases on one stack by giving the stack a DATASHARE_HOME whose
specs are copies of ``air_quality_hourly`` under their own ids; if a copy differed (another suite, a spec
error), the median it reports would be of a different release than the stages it is compared with.
"""

from __future__ import annotations

import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path[:0] = [str(REPO / "bench"), str(REPO / "tests" / "scheduler")]

from scheduler import DATASET, release_copies  # noqa: E402  (bench/scheduler.py)

from datashare.spec import load_spec, load_specs  # noqa: E402


def test_release_copies_are_the_air_quality_spec_under_their_own_ids(tmp_path: Path) -> None:
    home, ids = release_copies(tmp_path, 3)
    specs, errors = load_specs(home / "dags" / "datasets")
    assert not errors
    assert ids == [DATASET, f"{DATASET}_r2", f"{DATASET}_r3"] and sorted(specs) == sorted(ids)
    original = load_spec(REPO / "dags" / "datasets" / f"{DATASET}.yaml")
    for dataset_id in ids:
        copy = specs[dataset_id]
        assert copy.suite_name == DATASET
        assert (home / "expectations" / f"{copy.suite_name}.json").is_file()
        assert copy.model_dump(exclude={"id", "suite"}) == original.model_dump(exclude={"id", "suite"})
    assert (home / "config" / "recipients.yaml").is_file()
