"""The SQL share target: parsed and checked once, never showing its password."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from datashare.exceptions import ConfigError, PublishError
from datashare.share.target import ShareTarget

PG = "postgresql+psycopg://reader:s3cr3t@db.example:5433/share"


def test_a_postgres_target_never_shows_its_password() -> None:
    target = ShareTarget.from_url(PG, schema="share_x")

    assert (target.backend, target.schema, target.has_roles) == ("postgresql", "share_x", True)
    assert target.redacted == "postgresql+psycopg://reader@db.example:5433/share"
    assert str(target) == target.redacted and "s3cr3t" not in repr(target)
    assert target.libpq_uri == "postgresql://reader:s3cr3t@db.example:5433/share"
    assert target.sqlalchemy_url == PG
    assert target.at("share__a1").url.database == "share__a1" and target.at("share__a1").schema == "share_x"
    assert target.qualified("air") == "share_x.air"
    assert ShareTarget.of(target) is target and ShareTarget.of(PG) == ShareTarget.from_url(PG)


def test_sqlite_has_no_roles_and_no_schema_in_names(tmp_path: Path) -> None:
    target = ShareTarget.from_url(f"sqlite:///{tmp_path / 'share.sqlite'}")

    assert (target.backend, target.has_roles, target.qualified("air")) == ("sqlite", False, "air")


@pytest.mark.parametrize(
    ("url", "schema", "message"),
    [
        ("not a url", "datashare", "target_url is not a valid SQLAlchemy URL"),
        ("mysql+pymysql://u:pw@h/db", "datashare", r"backend 'mysql' is not supported \(use postgresql or sqlite\)"),
        (PG, "Public; --", "invalid schema 'Public; --'"),
    ],
)
def test_a_bad_target_is_refused_when_opened(url: str, schema: str, message: str) -> None:
    with pytest.raises(PublishError, match=message) as raised:
        ShareTarget.from_url(url, schema=schema)
    assert "pw" not in str(raised.value) and "s3cr3t" not in str(raised.value)


def test_from_connection_reads_the_environment_and_names_the_connection(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(
        "AIRFLOW_CONN_SHARE_T",
        json.dumps(
            {"conn_type": "postgres", "host": "h", "login": "u", "password": "pw9", "port": 5432, "schema": "d"}
        ),
    )
    target = ShareTarget.from_connection("share_t", schema="s")
    assert (target.redacted, target.schema) == ("postgresql+psycopg://u@h:5432/d", "s")

    monkeypatch.setenv("AIRFLOW_CONN_SHARE_M", json.dumps({"conn_type": "mysql", "host": "h", "password": "pw9"}))
    with pytest.raises(PublishError, match=r"backend 'mysql' \(connection 'share_m'\) is not supported") as raised:
        ShareTarget.from_connection("share_m")
    assert "pw9" not in str(raised.value)


def test_from_connection_falls_back_to_the_default(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("AIRFLOW_CONN_SHARE_NONE", raising=False)
    with pytest.raises(ConfigError, match="connection 'share_none' is not defined"):
        ShareTarget.from_connection("share_none")
    default = f"sqlite:///{tmp_path / 'var' / 'share.sqlite'}"
    target = ShareTarget.from_connection("share_none", default=default)
    assert target.backend == "sqlite" and (tmp_path / "var").is_dir()
