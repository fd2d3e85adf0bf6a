"""The benchmark's verdicts against the issue's targets, its chart and its Markdown table.

.venv/bin/python bench/report.py bench/results/<date>.json   # redraw both from a results file
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

RSS_LIMIT_MIB = 512
NOTHING_NEW_S = 2.0
"""Issue #11: a run with nothing new, the whole `datashare run` process, at 5 M and 20 M rows."""
ONE_PROCESS_RATIO = 1.2
"""Issue #10: `datashare run` of a full release against the stages' own time."""
ORDER = ("extract", "transform", "validate", "commit", "publish_sql", "record")


def _wall(run: dict[str, Any], stage: str | None = None) -> float:
    return float(run["stages"][stage]["wall_s"] if stage else run["wall_s"])


def _copy_out(floors: dict[str, Any]) -> float:
    return min(_wall(floors["copy_out_psycopg"]), _wall(floors["copy_out_psql"]))


def _floor_sum(floors: dict[str, Any]) -> float:
    return _copy_out(floors) + _wall(floors["parquet_write"]) + _wall(floors["copy_in_psql"])


def _target(name: str, value: float, limit: float, *, at_least: bool = False, note: str = "") -> dict[str, Any]:
    met = value >= limit if at_least else value <= limit
    return {"target": name, "value": round(value, 3), "limit": limit, "at_least": at_least, "met": met, "note": note}


def targets(results: dict[str, Any]) -> list[dict[str, Any]]:
    """Every target of the issue that the run measured, as ratios or limits with a verdict."""
    out = []
    pg = results["postgresql"]
    for scale, r in _by_size(pg):
        full, floors = r["ours"]["full"], r["floors"]
        out += [
            _target(f"{scale}: extraction / COPY-binary floor", _wall(full, "extract") / _copy_out(floors), 1.25),
            _target(
                f"{scale}: SQL share load / COPY FROM floor",
                _wall(full, "publish_sql") / _wall(floors["copy_in_psql"]),
                1.25,
            ),
            _target(f"{scale}: validation / extraction", _wall(full, "validate") / _wall(full, "extract"), 0.5),
            _target(f"{scale}: whole release / sum of floors", _wall(full) / _floor_sum(floors), 3.0),
            _target(f"{scale}: peak memory of the whole release (MiB)", full["peak_rss_mib"], RSS_LIMIT_MIB),
            _target(f"{scale}: incremental (+1%) / full run", _wall(r["ours"]["incremental"]) / _wall(full), 0.10),
            _target(
                f"{scale}: nothing new, one process, imports included (s)",
                _wall(r["cli"]["nothing_new"]),
                NOTHING_NEW_S,
                note=f"the stages alone {_wall(r['ours']['nothing_new']):.2f} s",
            ),
        ]
        if "full" in r["cli"]:
            out.append(
                _target(
                    f"{scale}: `datashare run` in one process / the stages' own time",
                    _wall(r["cli"]["full"]) / _wall(full),
                    ONE_PROCESS_RATIO,
                    note=f"{_wall(r['cli']['full']):.2f} s, imports and exit included, against {_wall(full):.2f} s",
                )
            )
        if "naive" in r:
            out.append(_target(f"{scale}: naive / whole release", _wall(r["naive"]) / _wall(full), 10.0, at_least=True))
    if "5m" in pg and "20m" in pg:
        small, large = pg["5m"]["ours"]["full"]["peak_rss_mib"], pg["20m"]["ours"]["full"]["peak_rss_mib"]
        out.append(_target("peak memory 20M / 5M", large / small, 1.10, note="flat: within 10%"))
    sharing = results.get("sharing")
    if sharing:
        out.append(
            _target(
                f"{sharing['scale']}: Delta Sharing load_as_pandas / direct pyarrow read",
                sharing["delta_sharing"]["wall_s"] / sharing["direct_pyarrow"]["wall_s"],
                sharing["target"]["limit"],
            )
        )
    m = results.get("mariadb")
    if m:
        floor = min(_wall(m["floors"]["connectorx"]), _wall(m["floors"]["mariadb_client"]))
        out.append(
            _target("MariaDB: extraction / fastest bare streaming read", _wall(m["ours"]["extract"]) / floor, 1.25)
        )
    s = results.get("scheduler")
    if s and s.get("run_wall_s") and "5m" in pg:
        whole = _wall(pg["5m"]["ours"]["full"])
        runs = ", ".join(f"{w:.2f}" for w in s.get("run_walls_s", [s["run_wall_s"]]))
        note = (
            f"{s['run_wall_s']:.2f} s (the median of {s.get('median_of', 1)} whole releases on one stack: {runs} s)"
            f" against the whole release's {whole:.2f} s above; the scheduler bench's own"
            f" measure of the stages {s['stages_own_s']} s ({s['ratio_to_stages_own']} x); median Airflow overhead"
            f" per task {s['overhead_per_task_median_s']} s; {s['staging']} staging on S3"
        )
        out.append(
            _target("5m: through the real scheduler / the stages' own time", s["run_wall_s"] / whole, 1.5, note=note)
        )
    elif s and s.get("ratio_to_stages_own") is not None:
        note = f"median Airflow overhead per task {s['overhead_per_task_median_s']} s; {s['staging']} staging"
        out.append(
            _target("5m: through the real scheduler / the stages' own time", s["ratio_to_stages_own"], 1.5, note=note)
        )
    out += results.get("dag_parsing", {}).get("targets", [])  # measured and judged by bench/parse_bench.py
    return out


def _by_size(pg: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    return sorted(pg.items(), key=lambda item: item[1]["rows_source"])


def _rows(result: dict[str, Any], key: str = "rows") -> int:
    return int(result.get(key) or 0)


def write_markdown(results: dict[str, Any], path: Path) -> str:
    """The stage table and the targets, as Markdown; written to ``path`` and returned."""
    lines = ["| scale | stage | path | seconds | rows/s | peak MiB | × floor |", "|---|---|---|---:|---:|---:|---:|"]

    def row(scale: str, stage: str, path: str, wall: float, rows: int, rss: float | None, floor: float | None) -> None:
        rate = f"{rows / wall:,.0f}" if wall and rows else ""
        ratio = f"{wall / floor:.2f}" if floor else ""
        mem = f"{rss:,.0f}" if rss is not None else ""
        lines.append(f"| {scale} | {stage} | {path} | {wall:.2f} | {rate} | {mem} | {ratio} |")

    for scale, r in _by_size(results["postgresql"]):
        full, floors, n = r["ours"]["full"], r["floors"], r["rows_source"]
        floor_of = {"extract": _copy_out(floors), "publish_sql": _wall(floors["copy_in_psql"])}
        for stage in ORDER:
            s = full["stages"][stage]
            row(scale, stage, "ours", s["wall_s"], n, s["peak_rss_mib"], floor_of.get(stage))
        row(scale, "whole release", "ours", _wall(full), n, full["peak_rss_mib"], _floor_sum(floors))
        for name in ("incremental", "nothing_new"):
            run = r["ours"][name]
            row(
                scale,
                name.replace("_", " "),
                "ours",
                _wall(run),
                _rows(run, "extracted_rows"),
                run["peak_rss_mib"],
                None,
            )
        one = r["cli"]["full"]
        row(scale, "whole release", "ours, `datashare run` (one process)", _wall(one), n, one["peak_rss_mib"], None)
        row(
            scale,
            "extract",
            "floor: COPY binary (psycopg)",
            _wall(floors["copy_out_psycopg"]),
            n,
            floors["copy_out_psycopg"]["peak_rss_mib"],
            None,
        )
        row(
            scale,
            "extract",
            "floor: COPY binary (psql)",
            _wall(floors["copy_out_psql"]),
            n,
            floors["copy_out_psql"]["peak_rss_mib"],
            None,
        )
        row(scale, "parquet write", "floor: pyarrow", _wall(floors["parquet_write"]), n, None, None)
        row(
            scale,
            "publish_sql",
            "floor: COPY FROM (psql)",
            _wall(floors["copy_in_psql"]),
            n,
            floors["copy_in_psql"]["peak_rss_mib"],
            None,
        )
        row(scale, "whole release", "floors summed", _floor_sum(floors), n, None, None)
        if "naive" in r:
            for stage in ("extract", "validate", "parquet_write", "publish_sql"):
                s = r["naive"]["stages"][stage]
                label = "naive" + (" (to_sql extrapolated)" if stage == "publish_sql" else "")
                row(scale, stage, label, s["wall_s"], n, s["peak_rss_mib"], floor_of.get(stage))
            row(scale, "whole release", "naive", _wall(r["naive"]), n, r["naive"]["peak_rss_mib"], _floor_sum(floors))
    m = results.get("mariadb")
    if m:
        n = m["rows_source"]
        floor = min(_wall(m["floors"]["connectorx"]), _wall(m["floors"]["mariadb_client"]))
        row(
            "MariaDB 1M", "extract", "ours", _wall(m["ours"]["extract"]), n, m["ours"]["extract"]["peak_rss_mib"], floor
        )
        row(
            "MariaDB 1M",
            "extract",
            "plain (SQLAlchemy)",
            _wall(m["ours"]["extract_plain"]),
            n,
            m["ours"]["extract_plain"]["peak_rss_mib"],
            floor,
        )
        row(
            "MariaDB 1M",
            "extract",
            "floor: connectorx",
            _wall(m["floors"]["connectorx"]),
            n,
            m["floors"]["connectorx"]["peak_rss_mib"],
            None,
        )
        row(
            "MariaDB 1M",
            "extract",
            "floor: mariadb --quick",
            _wall(m["floors"]["mariadb_client"]),
            n,
            m["floors"]["mariadb_client"]["peak_rss_mib"],
            None,
        )
        if "naive" in m:
            row("MariaDB 1M", "extract", "naive: read_sql", _wall(m["naive"]), n, m["naive"]["peak_rss_mib"], floor)
    if "dag_parsing" in results:
        from parse_bench import table as parse_table

        lines += parse_table(results["dag_parsing"], with_targets=False)
    lines += ["", "| target | measured | limit | met |", "|---|---:|---:|---|"]
    for t in results["targets"]:
        sign = "≥" if t["at_least"] else "≤"
        note = f" ({t['note']})" if t["note"] else ""
        lines.append(
            f"| {t['target']}{note} | {t['value']:.2f} | {sign} {t['limit']} | {'yes' if t['met'] else 'NO'} |"
        )
    text = "\n".join(lines) + "\n"
    path.write_text(text)
    return text


def write_chart(results: dict[str, Any], path: Path) -> None:
    """Time and memory against rows for ours, the floors and the naive path, and the stages side by side."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    pg = results["postgresql"]
    scales = sorted(pg, key=lambda s: pg[s]["rows_source"])
    millions = [pg[s]["rows_source"] / 1e6 for s in scales]
    fig, (ax_time, ax_mem, ax_stage) = plt.subplots(1, 3, figsize=(16, 4.8))

    ax_time.plot(millions, [_wall(pg[s]["ours"]["full"]) for s in scales], "o-", label="our pipeline")
    ax_time.plot(millions, [_floor_sum(pg[s]["floors"]) for s in scales], "s--", label="sum of the floors")
    ax_time.plot(millions, [3 * _floor_sum(pg[s]["floors"]) for s in scales], ":", color="grey", label="3 × floors")
    naive = [(pg[s]["rows_source"] / 1e6, _wall(pg[s]["naive"])) for s in scales if "naive" in pg[s]]
    if naive:
        ax_time.plot(*zip(*naive, strict=True), "x", markersize=10, color="red", label="naive path")
    ax_time.set(title="Whole release: time", xlabel="rows (millions)", ylabel="seconds")
    ax_time.legend(loc="upper center")

    staged = [pg[s]["ours"]["full"]["peak_rss_mib"] for s in scales]
    ax_mem.plot(millions, staged, "o-", label="our pipeline (a process per stage)")
    if all("cli" in pg[s] for s in scales):
        cli = [pg[s]["cli"]["full"]["peak_rss_mib"] for s in scales]
        ax_mem.plot(millions, cli, "^--", label="ours, every stage in one process (CLI)")
    if naive:
        ax_mem.plot(
            [x for x, _ in naive],
            [pg[s]["naive"]["peak_rss_mib"] for s in scales if "naive" in pg[s]],
            "x",
            markersize=10,
            color="red",
            label="naive path",
        )
    ax_mem.axhline(RSS_LIMIT_MIB, color="grey", linestyle=":", label=f"{RSS_LIMIT_MIB} MiB target")
    ax_mem.set(title="Whole release: peak memory", xlabel="rows (millions)", ylabel="MiB", yscale="log")
    ax_mem.legend()

    scale = scales[0]
    r = pg[scale]
    labels = ["extract", "transform\n(floor, naive: Parquet write)", "validate", "SQL share load"]
    ours = [_wall(r["ours"]["full"], s) for s in ("extract", "transform", "validate", "publish_sql")]
    floor = [_copy_out(r["floors"]), _wall(r["floors"]["parquet_write"]), 0, _wall(r["floors"]["copy_in_psql"])]
    width = 0.28
    xs = range(len(labels))
    ax_stage.bar([x - width for x in xs], ours, width, label="our pipeline")
    ax_stage.bar(list(xs), floor, width, label="floor")
    if "naive" in r:
        naive_bars = [_wall(r["naive"], s) for s in ("extract", "parquet_write", "validate", "publish_sql")]
        ax_stage.bar([x + width for x in xs], naive_bars, width, color="red", label="naive (to_sql extrapolated)")
    ax_stage.set_xticks(list(xs), labels)
    ax_stage.set(title=f"Stages at {r['rows_source'] / 1e6:.1f} M rows", ylabel="seconds (log)", yscale="log")
    ax_stage.legend()
    fig.suptitle("Air-quality unit, PostgreSQL 15, 2 cores: our release pipeline against the floors and the naive path")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


if __name__ == "__main__":
    import json
    import shutil
    import sys

    source = Path(sys.argv[1])  # redraw the chart and the table of a results file: report.py results/<date>.json
    data = json.loads(source.read_text())
    data["targets"] = targets(data)
    write_chart(data, source.with_suffix(".png"))
    shutil.copyfile(source.with_suffix(".png"), source.with_name("performance.png"))
    print(write_markdown(data, source.with_suffix(".md")))
