"""Drive the real-scheduler suite: trigger every DAG through the REST API v2, wait, read back what Airflow did.

Kept apart from the fixtures so that the tests (and ``bench/scheduler.py``) import it by a name that no
installed package uses (``outcome`` is trio's).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from stack import Stack

SECOND_TRIGGER = ("air_quality_hourly", "land_use_codes")
"""Source DAGs triggered a second time: an incremental one (nothing past the cursor) and a snapshot (unchanged)."""
TERMINAL = {"success", "failed"}


@dataclass
class Outcome:
    """What the suite triggered and what Airflow did, read back through the REST API."""

    stack: Stack
    sources: list[str]
    derived: list[str]
    first: dict[str, str] = field(default_factory=dict)
    """DAG id -> run id of its first trigger."""
    second: dict[str, str] = field(default_factory=dict)
    """DAG id -> run id of its second trigger."""
    runs: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    """DAG id -> every run of it."""
    tis: dict[tuple[str, str], list[dict[str, Any]]] = field(default_factory=dict)
    """(DAG id, run id) -> its task instances."""
    timings: dict[str, float] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    """What the driver could not wait for (a run that never ended, a derived run never triggered)."""

    def run(self, dag_id: str, run_id: str) -> dict[str, Any]:
        """One run as the API described it."""
        return next(r for r in self.runs[dag_id] if r["dag_run_id"] == run_id)


def wait_runs(stack: Stack, pending: dict[str, str], timeout_s: float) -> dict[str, str]:
    """Wait until every (DAG id -> run id) run has ended; returns those still unfinished at the timeout."""
    deadline = time.monotonic() + timeout_s
    left = dict(pending)
    while left:
        if time.monotonic() > deadline:
            return left
        stack.check_alive()
        for run in stack.runs():
            if left.get(run["dag_id"]) == run["dag_run_id"] and run["state"] in TERMINAL:
                del left[run["dag_id"]]
        time.sleep(2)
    return left


def wait_derived(stack: Stack, derived: list[str], timeout_s: float) -> str | None:
    """Wait until each derived DAG has run, no Asset event is queued for it and no run of it is active.

    Returns None once settled, or what was left at the timeout.
    """
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        stack.check_alive()
        settled = True
        for dag_id in derived:
            runs = stack.runs(dag_id)
            queued = stack.api("GET", f"/dags/{dag_id}/assets/queuedEvents")["total_entries"]
            if not runs or any(r["state"] not in TERMINAL for r in runs) or queued:
                settled = False
        if settled:
            return None
        time.sleep(2)
    states = {d: [r["state"] for r in stack.runs(d)] for d in derived}
    return f"derived DAGs did not settle in {timeout_s:.0f} s: {states}"


def run_everything(stack: Stack, specs: dict[str, Any], timeout_s: float) -> Outcome:
    """Trigger every source DAG (land_parcels first), then two of them again; the derived DAGs run on Assets."""
    derived = sorted(i for i, s in specs.items() if s.source.kind == "derived")
    sources = sorted((i for i in specs if i not in derived), key=lambda i: (i != "land_parcels", i))
    result = Outcome(stack=stack, sources=sources, derived=derived)
    dags = stack.wait_for_dags(set(specs))
    started = time.perf_counter()
    for dag_id in derived:
        stack.unpause(dag_id)  # runs on its inputs' Asset events, never triggered by hand
    for dag_id in sources:
        # The run takes the slot of the interval the scheduler would run next, so unpausing adds no run.
        result.first[dag_id] = stack.trigger(dags[dag_id], take_scheduled_slot=True)
        stack.unpause(dag_id)
    if left := wait_runs(stack, result.first, timeout_s):
        result.notes.append(f"first runs not finished after {timeout_s:.0f} s: {left}")
    result.timings["first runs of every source DAG"] = round(time.perf_counter() - started, 1)

    t = time.perf_counter()
    for dag_id in SECOND_TRIGGER:
        result.second[dag_id] = stack.trigger(dags[dag_id], take_scheduled_slot=False)
    if left := wait_runs(stack, result.second, timeout_s):
        result.notes.append(f"second runs not finished after {timeout_s:.0f} s: {left}")
    result.timings["second runs"] = round(time.perf_counter() - t, 1)

    t = time.perf_counter()
    states = {r["dag_id"]: r["state"] for r in stack.runs() if r["dag_run_id"] == result.first.get(r["dag_id"])}
    failed_inputs = {d: [i for i in specs[d].source.inputs if states.get(i) != "success"] for d in derived}
    waiting = [d for d in derived if not failed_inputs[d]]
    for dag_id in derived:
        if failed_inputs[dag_id]:
            result.notes.append(f"{dag_id} cannot run on its Assets: its inputs {failed_inputs[dag_id]} failed")
    if waiting and (late := wait_derived(stack, waiting, timeout_s)):
        result.notes.append(late)
    result.timings["derived runs settled after that"] = round(time.perf_counter() - t, 1)

    for dag_id in [*sources, *derived]:
        result.runs[dag_id] = stack.runs(dag_id)
        for run in result.runs[dag_id]:
            result.tis[(dag_id, run["dag_run_id"])] = stack.task_instances(dag_id, run["dag_run_id"])
    return result


def seconds_between(a: str | None, b: str | None) -> float | None:
    """Seconds from one API timestamp to another (None when either is missing)."""
    if not a or not b:
        return None
    return (datetime.fromisoformat(b) - datetime.fromisoformat(a)).total_seconds()


def where(ti: dict[str, Any]) -> str:
    """A task instance's name, with its map index when mapped."""
    return f"{ti['task_id']}[{ti['map_index']}]" if ti["map_index"] >= 0 else ti["task_id"]


def report(result: Outcome, say: Callable[[str], None]) -> None:
    """Where the time went: the stack's phases, each run's wall time against its tasks' own, who ran what."""
    for note in result.notes:
        say(f"  ! {note}")
    say("where the time went (s):")
    for phase, secs in {**result.stack.timings, **result.timings}.items():
        say(f"  {phase:<66} {secs:8.1f}")
    say(f"  {'run':<50} {'state':<8} {'wall':>6} {'tasks':>6} {'queued':>7}  workers")
    for dag_id, runs in result.runs.items():
        for run in sorted(runs, key=lambda r: r.get("start_date") or ""):
            tis = result.tis[(dag_id, run["dag_run_id"])]
            wall = seconds_between(run.get("start_date"), run.get("end_date")) or 0.0
            busy = sum(ti.get("duration") or 0.0 for ti in tis)
            queued = sum(seconds_between(ti.get("queued_when"), ti.get("start_date")) or 0.0 for ti in tis)
            hosts = sorted({ti["hostname"] for ti in tis if ti.get("hostname")})
            name = f"{dag_id} [{run['run_type']}]"
            say(f"  {name:<50} {run['state']:<8} {wall:6.1f} {busy:6.1f} {queued:7.1f}  {', '.join(hosts)}")
    for (dag_id, _run_id), tis in result.tis.items():
        for ti in tis:
            if ti.get("state") not in ("success", "skipped") or (ti.get("try_number") or 1) > 1:
                tried = f"try {ti.get('try_number')} on {ti.get('hostname')}"
                say(f"  ! {dag_id}.{where(ti)}: {ti.get('state')} after {tried}")
    land = result.tis.get(("land_parcels", result.first.get("land_parcels", "")), [])
    for ti in sorted(land, key=lambda t: (t.get("start_date") or "", t["map_index"])):
        say(f"  land_parcels {where(ti):<18} {ti.get('state')!s:<8} on {ti.get('hostname')}")
