"""``datashare seed``: every simulated unit, generated with data that ends on the day asked (today by default)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
import sqlalchemy as sa

from datashare.exceptions import ConfigError
from datashare.tools.cli import main
from datashare.tools.seed import UNITS, local_today, seed_units

NEWEST = {
    "monre_monitoring": "SELECT max(observed_at) FROM air_observations",
    "monre_water_resources": "SELECT max(observed_at) FROM well_levels",
    "monre_water_quality": "SELECT max(sampled_at) FROM samples",
    "monre_public_services": "SELECT max(received_at) FROM dossiers",
}
"""The time series of each unit that has one: their newest row must fall on the last day asked for."""


def _newest(url: str, sql: str) -> dt.date:
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            value = conn.execute(sa.text(sql)).scalar_one()
    finally:
        engine.dispose()
    return (value if isinstance(value, dt.datetime) else dt.datetime.fromisoformat(value)).date()


def test_every_unit_ends_on_the_day_asked_and_existing_units_can_be_kept(tmp_path: Path) -> None:
    urls = {conn_id: f"sqlite:///{tmp_path / f'{name}.sqlite'}" for conn_id, name in UNITS.items()}
    day = dt.date(2027, 3, 14)
    made = seed_units(resolve=urls.__getitem__, today=day)
    assert set(made) == set(UNITS)
    assert all("kept" not in what for what in made.values())
    for conn_id, sql in NEWEST.items():
        assert _newest(urls[conn_id], sql) == day, conn_id
    again = seed_units(["monre_monitoring", "monre_land"], resolve=urls.__getitem__, keep_existing=True)
    assert again == {"monre_monitoring": "kept (its tables exist)", "monre_land": "kept (its tables exist)"}
    assert _newest(urls["monre_monitoring"], NEWEST["monre_monitoring"]) == day  # untouched


def test_seed_command_resolves_airflow_connections(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    from datashare.source.connections import connection_env_value

    url = f"sqlite:///{tmp_path / 'monitoring.sqlite'}"
    monkeypatch.setenv("AIRFLOW_CONN_MONRE_MONITORING", connection_env_value(url))
    assert main(["seed", "monre_monitoring"]) == 0
    assert "monre_monitoring (monitoring):" in capsys.readouterr().out
    assert _newest(url, NEWEST["monre_monitoring"]) == local_today()


def test_unknown_connection_is_named() -> None:
    with pytest.raises(ConfigError, match="monre_nowhere"):
        seed_units(["monre_nowhere"], resolve=str)
