"""Withdrawing a release hides it from the SQL share too: the view moves back, nothing withdrawn is served again.

Runs the real pipeline on a SQLite unit and publishes to each share backend (SQLite, and the
machine's PostgreSQL), then withdraws through the CLI as an operator would.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
import sqlalchemy as sa

from datashare.pipeline.context import RunContext
from datashare.pipeline.stages import run_dataset, stage_publish_sql
from datashare.settings import Settings
from datashare.share.sqlshare import list_versions
from datashare.store import ReleaseStore
from datashare.store.ledger import Ledger
from datashare.tools.cli import main
from units import monitoring

DATASET = "air_quality_hourly"
CONN = "monre_monitoring"


class Share:
    """The share under test: where the view lives and how to read it."""

    def __init__(self, url: str, view: str) -> None:
        self.url = url
        self.view = view

    def query(self, statement: str) -> list[tuple]:
        engine = sa.create_engine(self.url)
        try:
            with engine.connect() as conn:
                return [tuple(r) for r in conn.execute(sa.text(statement))]
        finally:
            engine.dispose()

    def rows(self) -> int:
        return int(self.query(f"SELECT count(*) FROM {self.view}")[0][0])

    def newest(self) -> str:
        return str(self.query(f"SELECT max(observed_at) FROM {self.view}")[0][0])

    def versions(self) -> list[int]:
        return list_versions(dataset_id=DATASET, target=self.url)

    def has_view(self) -> bool:
        if self.url.startswith("sqlite"):
            return bool(
                self.query(f"SELECT count(*) FROM sqlite_master WHERE type = 'view' AND name = '{DATASET}'")[0][0]
            )
        return self.query(f"SELECT to_regclass('datashare.{DATASET}') IS NOT NULL")[0][0]

    def tables(self) -> list[str]:
        if self.url.startswith("sqlite"):
            found = self.query("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY 1")
        else:
            found = self.query(
                "SELECT table_name FROM information_schema.tables "
                "WHERE table_schema = 'datashare' AND table_type = 'BASE TABLE' ORDER BY 1"
            )
        return [name for (name,) in found if name.startswith(f"{DATASET}__v")]

    def parts(self) -> list[str]:
        """PostgreSQL's data-file tables (SQLite has none)."""
        if self.url.startswith("sqlite"):
            return []
        found = self.query(
            f"SELECT table_name FROM information_schema.tables WHERE table_schema = 'datashare' "
            f"AND table_name LIKE '{DATASET}\\_\\_p%' ORDER BY 1"
        )
        return [name for (name,) in found]


@pytest.fixture(params=["sqlite", "postgresql"])
def share(request: pytest.FixtureRequest, project: Callable[..., Path], tmp_path: Path, monkeypatch) -> Share:
    from datashare.source.connections import connection_env_value

    unit = f"sqlite:///{tmp_path / 'unit.sqlite'}"
    monitoring.generate(unit, stations=3, days=2)
    project(CONN, unit)
    request.node.unit = unit
    if request.param == "sqlite":
        return Share(f"sqlite:///{tmp_path / 'share.sqlite'}", DATASET)
    url = request.getfixturevalue("postgres_db")
    monkeypatch.setenv("AIRFLOW_CONN_DATASHARE_SHARE", connection_env_value(url))
    return Share(url, f"datashare.{DATASET}")


def _store() -> ReleaseStore:
    return ReleaseStore.open(Settings.from_env().release_uri)


def _entries(event: str) -> list[dict]:
    return [e.body for e in Ledger(_store().backend).entries(DATASET) if e.body["event"] == event]


def _release_days(unit: str, count: int) -> list[dict]:
    """Publish ``count`` releases, one new day of observations before each after the first."""
    out = []
    for i in range(count):
        if i:
            monitoring.append_day(unit)
        out.append(run_dataset(DATASET))
        assert out[-1]["created"] and out[-1]["version"] == i + 1
    return out


def _withdraw(version: int, reason: str, capsys: pytest.CaptureFixture) -> str:
    assert main(["withdraw", DATASET, "--version", str(version), "--reason", reason]) == 0
    return capsys.readouterr().out


def test_withdrawn_release_leaves_the_share_and_is_never_served_again(
    share: Share, request: pytest.FixtureRequest, capsys: pytest.CaptureFixture
) -> None:
    unit = request.node.unit
    v1, v2, v3 = _release_days(unit, 3)
    assert share.versions() == [1, 2, 3] and share.rows() == v3["rows"]
    qualified = f"{DATASET}__v2" if share.url.startswith("sqlite") else f"datashare.{DATASET}__v2"
    newest_v2 = share.query(f"SELECT max(observed_at) FROM {qualified}")[0][0]

    out = _withdraw(3, "Trạm gửi nhầm dữ liệu ngày cuối", capsys)
    assert f"view {DATASET} now serves v2; dropped {DATASET}__v3" in out
    assert share.rows() == v2["rows"] and share.newest() == str(newest_v2)
    assert share.versions() == [1, 2]
    assert f"{DATASET}__v3" not in share.tables()
    published = _entries("sql_published")[-1]
    assert published["version"] == 2 and published["replaces_withdrawn"] == [3]
    assert published["manifest_sha256"] == _store().record(DATASET, 2)["manifest_sha256"]
    assert _store().backend.exists(f"{DATASET}/v3/data/part-00000.parquet")  # files stay for auditors

    # The source still holds the withdrawn day: the run rebuilds on v2 and finds v3's content again.
    again = run_dataset(DATASET)
    assert not again["created"] and again["version"] == 3
    assert again["reason"] == "content equals withdrawn v3: not released again"
    assert share.versions() == [1, 2] and share.rows() == v2["rows"]

    # A retried publish task of the withdrawn release does not bring it back.
    ctx = RunContext.create(DATASET, "late_retry")
    result = stage_publish_sql(ctx, {"version": 3, "manifest_sha256": v3["manifest_sha256"]})
    assert not result["published"] and result["reason"] == "the share already serves v2"
    assert share.versions() == [1, 2]

    # New data: v4 is built on v2 (the cursor and files of v2), chained after v3, and served.
    monitoring.append_day(unit)
    v4 = run_dataset(DATASET)
    assert v4["created"] and v4["version"] == 4 and v4["rows"] > v3["rows"]
    manifest = _store().release(DATASET, 4).manifest["datashare"]
    assert manifest["stats"]["base_version"] == 2 and manifest["previous"]["version"] == 3
    assert v4["files"][0]["sha256"] == v2["files"][0]["sha256"]  # v2's files carried over, not v3's
    assert share.versions() == [1, 2, 4] and share.rows() == v4["rows"]
    assert v1["version"] == 1


def test_share_reloads_a_release_retention_dropped_and_removes_the_view_when_all_are_withdrawn(
    share: Share, request: pytest.FixtureRequest, capsys: pytest.CaptureFixture
) -> None:
    releases = _release_days(request.node.unit, 4)
    assert share.versions() == [2, 3, 4]  # retention keeps 3 version tables
    for version in (4, 3):
        _withdraw(version, f"lỗi hiệu chuẩn đợt {version}", capsys)
    assert share.versions() == [2] and share.rows() == releases[1]["rows"]

    out = _withdraw(2, "lỗi hiệu chuẩn đợt 2", capsys)
    assert f"view {DATASET} now serves v1" in out  # loaded again from the release store
    assert share.versions() == [1] and share.rows() == releases[0]["rows"]
    assert share.tables() == [f"{DATASET}__v1"]

    out = _withdraw(1, "toàn bộ chuỗi đo sai", capsys)
    assert "every release is withdrawn: the view was removed from the share" in out
    assert not share.has_view() and share.versions() == [] and share.tables() == [] and share.parts() == []
    unpublished = _entries("sql_unpublished")
    assert len(unpublished) == 1 and unpublished[0]["tables"] == [f"{DATASET}__v1"]

    monitoring.append_day(request.node.unit)
    fresh = run_dataset(DATASET)
    assert fresh["created"] and fresh["version"] == 5 and fresh["sql"]["published"]
    assert share.has_view() and share.versions() == [5] and share.rows() == fresh["rows"]


def test_withdrawal_keeps_the_grants_on_the_view(
    project: Callable[..., Path], postgres_db: str, tmp_path: Path, monkeypatch, capsys: pytest.CaptureFixture
) -> None:
    from datashare.share.sqlroles import public_role
    from datashare.source.connections import connection_env_value

    unit = f"sqlite:///{tmp_path / 'unit.sqlite'}"
    monitoring.generate(unit, stations=2, days=2)
    project(CONN, unit)
    monkeypatch.setenv("AIRFLOW_CONN_DATASHARE_SHARE", connection_env_value(postgres_db))
    share = Share(postgres_db, f"datashare.{DATASET}")
    _release_days(unit, 2)
    check = f"SELECT has_table_privilege('{public_role()}', 'datashare.{DATASET}', 'SELECT')"
    assert share.query(check)[0][0] is True  # an open dataset: the public group reads the view

    _withdraw(2, "sai múi giờ", capsys)
    assert share.versions() == [1]
    assert share.query(check)[0][0] is True
    tables = share.tables() + share.parts()
    assert len(tables) == 2 and all(
        share.query(f"SELECT has_table_privilege('{public_role()}', 'datashare.\"{t}\"', 'SELECT')")[0][0] is False
        for t in tables
    )


def test_restricted_dataset_lives_in_its_readers_databases_through_runs_withdrawals_and_audience_changes(
    project: Callable[..., Path], postgres_db: str, tmp_path: Path, monkeypatch, capsys: pytest.CaptureFixture
) -> None:
    import shutil

    import psycopg
    import yaml

    from datashare.access import load_registry
    from datashare.share import sqlroles
    from datashare.share.sqlshare import share_state
    from datashare.share.sqlshare_places import agency_database
    from datashare.source.connections import connection_env_value

    repo = Path(__file__).resolve().parents[2]
    home = tmp_path / "home"
    (home / "dags" / "datasets").mkdir(parents=True)
    shutil.copytree(repo / "expectations", home / "expectations")
    shutil.copytree(repo / "config", home / "config")
    spec_file = home / "dags" / "datasets" / f"{DATASET}.yaml"
    base = yaml.safe_load((repo / "dags" / "datasets" / f"{DATASET}.yaml").read_text(encoding="utf-8"))

    def classify(sharing: str, recipients: list[str]) -> None:
        spec = dict(base, classification={"sharing": sharing, "importance": "other"}, recipients=recipients)
        spec_file.write_text(yaml.safe_dump(spec, allow_unicode=True), encoding="utf-8")

    hanoi, hcmc, outsider = "sonnmt_hanoi", "sonnmt_hcmc", "bo_xay_dung"
    classify("restricted", [hanoi, hcmc])
    monkeypatch.setenv("DATASHARE_HOME", str(home))
    unit = f"sqlite:///{tmp_path / 'unit.sqlite'}"
    monitoring.generate(unit, stations=2, days=2)
    project(CONN, unit)
    monkeypatch.setenv("AIRFLOW_CONN_DATASHARE_SHARE", connection_env_value(postgres_db))
    main_url = sa.make_url(postgres_db)
    main_db = main_url.database
    db_of = {code: agency_database(main_db, code) for code in (hanoi, hcmc)}

    def where() -> dict[str, list[int]]:
        return share_state(dataset_id=DATASET, target=postgres_db).databases

    def rows_in(database: str) -> int:
        return Share(main_url.set(database=database).render_as_string(False), f"datashare.{DATASET}").rows()

    v1, v2 = _release_days(unit, 2)
    assert where() == {db_of[hanoi]: [1, 2], db_of[hcmc]: [1, 2]}
    assert rows_in(db_of[hanoi]) == rows_in(db_of[hcmc]) == v2["rows"]
    registry = load_registry(home / "config" / "recipients.yaml")
    password = sqlroles.issue_sql_login(recipient=registry.get(outsider), target=postgres_db)
    outsider_url = main_url.set(drivername="postgresql", username=sqlroles.recipient_role(outsider), password=password)
    with psycopg.connect(outsider_url.render_as_string(False)) as conn:  # another government agency
        names = conn.execute("SELECT relname FROM pg_class WHERE relname LIKE %s", (f"{DATASET}%",)).fetchall()
        notes = conn.execute("SELECT count(*) FROM pg_description WHERE description LIKE '%không khí%'").fetchone()
        assert names == [] and notes == (0,)
    with pytest.raises(psycopg.OperationalError, match="CONNECT privilege"):
        psycopg.connect(outsider_url.set(database=db_of[hanoi]).render_as_string(False))

    # A withdrawal moves the view back in every reader's database.
    out = _withdraw(2, "Trạm gửi nhầm dữ liệu", capsys)
    assert f"view {DATASET} now serves v1" in out
    assert where() == {db_of[hanoi]: [1], db_of[hcmc]: [1]} and rows_in(db_of[hcmc]) == v1["rows"]

    # A recipient leaves the spec: the next run takes the dataset out of its database, without a new release.
    classify("restricted", [hanoi])
    again = run_dataset(DATASET)
    assert not again["created"] and again["sql"]["published"] and again["sql"]["version"] == 1
    assert where() == {db_of[hanoi]: [1]}

    # Reclassified as shared: it moves into the share's own database, read through the government group.
    classify("shared", [])
    shared = run_dataset(DATASET)
    assert shared["sql"]["published"] and where() == {main_db: [1]} and rows_in(main_db) == v1["rows"]
    with psycopg.connect(outsider_url.render_as_string(False)) as conn:
        assert conn.execute(f"SELECT count(*) FROM datashare.{DATASET}").fetchone() == (v1["rows"],)

    # Restricted to a recipient that is not active any more: nobody may read it, so it leaves the share.
    classify("restricted", ["no_such_agency"])
    gone = run_dataset(DATASET)
    assert not gone["sql"]["published"] and "no active recipient" in gone["sql"]["reason"]
    assert where() == {}
