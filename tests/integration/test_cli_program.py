"""``datashare run`` as a program: what a user without Airflow pays, and what must still hold when it ends fast.

The program ends a run without Python's teardown (:func:`datashare.tools.cli.quick_exit`) and, on a full
run, loads the validation libraries while it extracts (:func:`datashare.quality.validation.import_in_background`).
Neither may cost a line of output, an exit code, a clean-up, or a library load a run does not need.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

from units import monitoring

DATASET = "air_quality_hourly"
CONN = "monre_monitoring"
CLI = Path(sys.executable).with_name("datashare")

PROBE = """
import json, sys
from datashare.pipeline.stages import run_dataset
summary = run_dataset("air_quality_hourly", run_id=sys.argv[1])
print(json.dumps({"created": summary["created"], "version": summary["version"],
                  "gx_loaded": "great_expectations" in sys.modules}))
"""


def _program(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(CLI), *args], env=dict(os.environ), capture_output=True, text=True, timeout=300)


def _probe(run_id: str) -> dict[str, object]:
    import json

    proc = subprocess.run(
        [sys.executable, "-c", PROBE, run_id], env=dict(os.environ), capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_run_prints_its_whole_summary_and_exit_code(project: Callable[..., Path], tmp_path: Path) -> None:
    unit = f"sqlite:///{tmp_path / 'unit.sqlite'}"
    monitoring.generate(unit, stations=2, days=2)
    project(CONN, unit)

    first = _program("run", DATASET)
    assert first.returncode == 0, first.stderr[-2000:]
    lines = first.stdout.rstrip().splitlines()
    assert lines[0] == f"Published a new release of {DATASET}:"
    assert lines[-1].startswith("sql share")  # the last line reached the pipe before the quick exit
    assert (tmp_path / "releases" / DATASET / "v1" / "datapackage.json").is_file()

    again = _program("-v", "run", DATASET)  # an option before the command: still the run's exit
    assert again.returncode == 0, again.stderr[-2000:]
    assert again.stdout.startswith(f"No new version of {DATASET}")
    assert again.stdout.rstrip().splitlines()[-1].startswith("sql share")

    missing = _program("run", "no_such_dataset")
    assert missing.returncode == 2
    assert "no_such_dataset" in missing.stderr and missing.stdout == ""


def test_quick_exit_runs_exit_handlers_and_flushes(tmp_path: Path) -> None:
    script = (
        "import tempfile, sys\n"
        "from datashare.tools.cli import quick_exit\n"
        "folder = tempfile.TemporaryDirectory(dir=sys.argv[1])\n"
        "print(folder.name)\n"
        "sys.stdout.write('unterminated')\n"
        "quick_exit(3)\n"
    )
    proc = subprocess.run([sys.executable, "-c", script, str(tmp_path)], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 3
    name, tail = proc.stdout.splitlines()
    assert tail == "unterminated"  # buffered output is flushed
    assert not Path(name).exists()  # weakref finalizers (temporary folders) ran as at a normal exit


def test_validation_libraries_load_only_for_runs_that_validate(project: Callable[..., Path], tmp_path: Path) -> None:
    unit = f"sqlite:///{tmp_path / 'unit.sqlite'}"
    monitoring.generate(unit, stations=2, days=2)
    project(CONN, unit)

    full = _probe("first")
    assert full == {"created": True, "version": 1, "gx_loaded": True}
    nothing = _probe("nothing-new")  # incremental, nothing past the cursor: no GX, no pandas-sized start-up
    assert nothing == {"created": False, "version": 1, "gx_loaded": False}
    monitoring.append_day(unit)
    more = _probe("next-day")  # new rows: loaded after extraction, validated as usual
    assert more == {"created": True, "version": 2, "gx_loaded": True}
