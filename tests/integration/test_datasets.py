"""The sector datasets run without Airflow (``run_dataset``) against their simulated units.

SQLite units where the engine does not matter; the issue's engines (PostgreSQL for land, MariaDB for
water resources and public services) where it does: schema drift, legacy text, dialect queries.
Every kind of bad input the issue lists ends in a clear error naming the thing at fault, or in
quarantine with the rule and the problem, and never loses what was already published.
"""

from __future__ import annotations

import datetime as dt
import json
import re
import shutil
import unicodedata
from pathlib import Path

import pyarrow.parquet as pq
import pytest
import sqlalchemy as sa
import yaml

from datashare.exceptions import ContractError, SourceError, TransformError, ValidationFailed
from datashare.pipeline.stages import run_dataset
from datashare.settings import Settings
from datashare.store import ReleaseStore
from transforms.indices import wqi_class
from transforms.privacy import pseudonymise_value
from units import catalogues, land, public_services, water_quality, water_resources
from units.codes import ADMIN_UNITS, LAND_USE_CODES, map_to_2025

REPO = Path(__file__).resolve().parents[2]
KEY = "test-pseudonym-key-0123456789"
START = dt.date(2026, 11, 1)
HOLDER_PREFIXES = ("Công ty ", "Ban Quản lý ", "Trung tâm ")
PROBLEM_RULE = "expect_column_values_to_be_null:input_problems"


@pytest.fixture
def units(project, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """Make a SQLite unit and point its connection at it: ``units(conn_id, generate, **kwargs) -> url``."""
    monkeypatch.setenv("DATASHARE_PSEUDONYM_KEY", KEY)

    def make(conn_id: str, generate, **kwargs) -> str:
        url = f"sqlite:///{tmp_path / f'{conn_id}.sqlite'}"
        generate(url, **kwargs)
        project(conn_id, url)
        return url

    return make


def _store() -> ReleaseStore:
    return ReleaseStore.open(Settings.from_env().release_uri)


def _published(dataset_id: str, version: int):
    """The release's data as one table, files in order."""
    store = _store()
    release = store.release(dataset_id, version)
    paths = [Path(store.backend.describe(f"{release.prefix}/{f['path']}")) for f in release.files]
    return pq.ParquetDataset(paths).read() if len(paths) > 1 else pq.read_table(paths[0])


def _quarantined(dataset_id: str, run: str):
    return pq.read_table(Path(_store().backend.describe(f"_quarantine/{dataset_id}/{run}/rows.parquet")))


def _rows(url: str, sql: str) -> list:
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            return conn.execute(sa.text(sql)).all()
    finally:
        engine.dispose()


def _execute(url: str, *statements: str) -> None:
    engine = sa.create_engine(url)
    try:
        with engine.begin() as conn:
            for statement in statements:
                conn.execute(sa.text(statement))
    finally:
        engine.dispose()


# -- land parcels --------------------------------------------------------------------------------------


def test_land_parcels_protect_personal_data_resolve_codes_and_quarantine_bad_ids(units) -> None:
    url = units("monre_land", land.generate, scale=0.01)
    result = run_dataset("land_parcels", run_id="first")
    assert result["created"] and result["validation"] == "passed"

    source = {r[0]: r for r in _rows(url, "SELECT parcel_id, citizen_id, land_use_code, commune_code FROM parcels")}
    bad_ids = {p for p, (_, cid, _, _) in source.items() if cid is not None and len(cid) != 12}
    unknown_uses = {p for p, (*_, use, _) in source.items() if use in land.UNKNOWN_LAND_USE_CODES}
    assert bad_ids and unknown_uses  # the register's planted dirt is there to be caught

    quarantined = _quarantined("land_parcels", "first")
    assert set(quarantined["parcel_id"].to_pylist()) == bad_ids | unknown_uses
    for row in quarantined.to_pylist():
        if row["parcel_id"] in bad_ids:
            assert PROBLEM_RULE in row["_rules"]
            assert re.fullmatch(
                r"check_citizen_id: column 'citizen_id': '\d{3}\*+\d{2}' has (9|11) characters, expected 12 digits",
                row["input_problems"],
            )
            assert source[row["parcel_id"]][1] not in row["input_problems"]  # the ID is never quoted whole
            assert re.fullmatch(r"[0-9a-f]{32}", row["citizen_id"])  # and quarantine holds only its pseudonym
        else:
            assert row["_rules"] == "expect_column_values_to_be_in_set:land_use_code"

    table = _published("land_parcels", 1)
    assert table.num_rows == len(source) - len(bad_ids | unknown_uses) == result["rows"]
    for row in table.to_pylist():
        original = source[row["parcel_id"]][1]
        assert row["citizen_id"] == pseudonymise_value(original, KEY.encode())  # same input, same token
        assert row["user_name"] and re.fullmatch(r"(?:\w\. )*\w\.", row["user_name"])  # initials only
        assert row["commune_code_2025"] == map_to_2025(row["commune_code"], "commune").new_code
        assert row["input_problems"] is None
    assert not any(re.fullmatch(r"\d{9,12}", v or "") for v in table["citizen_id"].to_pylist())
    validation = _store().release("land_parcels", 1).manifest["datashare"]["validation"]
    assert validation["quarantine"]["by_rule"] == {
        "expect_column_values_to_be_in_set:land_use_code": len(unknown_uses),
        PROBLEM_RULE: len(bad_ids),
    }


def test_land_parcels_late_update_replaces_the_older_row_without_duplicates(units) -> None:
    url = units("monre_land", land.generate, scale=0.01)
    first = run_dataset("land_parcels")
    touched = land.touch_parcels(url, 12)
    second = run_dataset("land_parcels")
    assert second["created"] and second["version"] == 2
    assert second["rows"] == first["rows"]  # replaced, not added

    table = _published("land_parcels", 2)
    ids = table["parcel_id"].to_pylist()
    assert len(ids) == len(set(ids))
    now = {r[0]: (r[1], r[2]) for r in _rows(url, "SELECT parcel_id, area_m2, updated_at FROM parcels")}
    published = {r["parcel_id"]: r for r in table.to_pylist()}
    clean = [p for p in touched.parcel_ids if p in published]
    assert clean
    for parcel in clean:
        assert published[parcel]["area_m2"] == now[parcel][0]
        assert published[parcel]["updated_at"] == touched.updated_at
    manifest = _store().release("land_parcels", 2).manifest["datashare"]
    assert manifest["source_cursor"] == touched.updated_at.isoformat()
    assert not run_dataset("land_parcels")["created"]  # nothing past the cursor: no version


def _home_without_partitions(tmp_path: Path) -> Path:
    """A project home whose land_parcels spec reads the register in one range."""
    home = tmp_path / "one-range"
    for folder in ("expectations", "config"):
        shutil.copytree(REPO / folder, home / folder)
    (home / "dags" / "datasets").mkdir(parents=True)
    spec = yaml.safe_load((REPO / "dags" / "datasets" / "land_parcels.yaml").read_text(encoding="utf-8"))
    del spec["source"]["partitions"]
    (home / "dags" / "datasets" / "land_parcels.yaml").write_text(yaml.safe_dump(spec, allow_unicode=True))
    return home


def test_land_parcels_key_ranges_give_the_same_release_as_one_range(units, tmp_path, monkeypatch) -> None:
    units("monre_land", land.generate, scale=0.01)
    ranged = run_dataset("land_parcels")
    monkeypatch.setenv("DATASHARE_HOME", str(_home_without_partitions(tmp_path)))
    monkeypatch.setenv("DATASHARE_RELEASE_ROOT", str(tmp_path / "one-range-releases"))
    single = run_dataset("land_parcels")
    assert single["rows"] == ranged["rows"]
    assert [f["sha256"] for f in single["files"]] == [f["sha256"] for f in ranged["files"]]


def test_admin_code_that_never_existed_fails_naming_it_and_publishes_nothing(units) -> None:
    url = units("monre_land", land.generate, scale=0.005)
    first = run_dataset("land_parcels")
    _execute(
        url,
        "UPDATE parcels SET commune_code = '99999', updated_at = '2026-01-01 00:00:00' WHERE parcel_id = 7",
    )
    with pytest.raises(TransformError) as info:
        run_dataset("land_parcels")
    message = str(info.value)
    assert "resolve_admin_code" in message and "'commune_code'" in message
    assert "'99999'" in message and "never existed" in message
    assert _store().versions("land_parcels") == [first["version"]]


def test_schema_drift_in_the_land_register(project, postgres_db: str, monkeypatch) -> None:
    monkeypatch.setenv("DATASHARE_PSEUDONYM_KEY", KEY)
    land.generate(postgres_db, scale=0.005)
    project("monre_land", postgres_db)

    _execute(postgres_db, "ALTER TABLE parcels ADD COLUMN owner_phone varchar(20)")  # added: reported, ignored
    first = run_dataset("land_parcels")
    stats = _store().release("land_parcels", 1).manifest["datashare"]["stats"]
    assert stats["ignored_source_columns"] == ["owner_phone"]
    assert "owner_phone" not in _published("land_parcels", 1).column_names

    _execute(postgres_db, "ALTER TABLE parcels ALTER COLUMN area_m2 TYPE text USING area_m2::text")  # retyped
    _execute(postgres_db, "UPDATE parcels SET updated_at = updated_at + interval '1 year' WHERE parcel_id < 5")
    with pytest.raises(ContractError, match="'area_m2'"):
        run_dataset("land_parcels")

    _execute(postgres_db, "ALTER TABLE parcels ALTER COLUMN area_m2 TYPE double precision USING area_m2::float8")
    _execute(postgres_db, "ALTER TABLE parcels DROP COLUMN certificate_no")  # removed
    with pytest.raises((ContractError, SourceError), match="certificate_no") as info:
        run_dataset("land_parcels")  # the database itself names it: the read orders by every contract column
    assert not info.value.retryable
    assert _store().versions("land_parcels") == [first["version"]]


# -- water resources -----------------------------------------------------------------------------------


def _bad_flow(text: str | None) -> bool:
    from transforms.parse import parse_vn_number

    if text is None or not text.strip():
        return False  # blank is a missing value, not an error
    try:
        return parse_vn_number(text) < 0
    except ValueError:
        return True


def _bad_date(text: str | None) -> bool:
    from transforms.parse import parse_dmy

    try:
        parse_dmy(text or "")
    except ValueError:
        return bool(text)
    return False


def test_water_extraction_licences_on_mariadb(project, mariadb_db: str) -> None:
    water_resources.generate(mariadb_db, scale=0.1, days=2, start=START)
    project("monre_water_resources", mariadb_db)
    result = run_dataset("water_extraction_licences", run_id="licences")

    source = _rows(mariadb_db, "SELECT licence_no, holder, max_flow, issued_on, expires_on FROM licences")
    bad = {r[0] for r in source if _bad_flow(r[2]) or _bad_date(r[3]) or _bad_date(r[4])}
    legacy = [r[1] for r in source if not r[1].startswith(HOLDER_PREFIXES)]
    assert bad and legacy  # TCVN3/VNI holders and bad flows or dates are planted in every 200 licences

    quarantined = _quarantined("water_extraction_licences", "licences")
    assert set(quarantined["licence_no"].to_pylist()) == bad
    raw = {r[0]: r for r in source}
    for row in quarantined.to_pylist():
        assert PROBLEM_RULE in row["_rules"]
        column = re.match(r"\w+: column '(\w+)': ", row["input_problems"]).group(1)
        value = raw[row["licence_no"]][{"max_flow": 2, "issued_on": 3, "expires_on": 4}[column]]
        assert repr(value) in row["input_problems"] or repr(float(value.replace(",", "."))) in row["input_problems"]

    table = _published("water_extraction_licences", 1)
    assert result["rows"] == table.num_rows == len(source) - len(bad)
    holders = table["holder"].to_pylist()
    assert all(h.startswith(HOLDER_PREFIXES) and unicodedata.is_normalized("NFC", h) for h in holders)
    assert all(f is None or f >= 0 for f in table["max_flow"].to_pylist())
    assert str(table.schema.field("issued_on").type) == "date32[day]"
    for row in table.to_pylist():
        expected_flow = raw[row["licence_no"]][2]
        if expected_flow and expected_flow.strip():
            assert row["max_flow"] == float(expected_flow.replace(".", "").replace(",", "."))


def test_impossible_date_and_negative_flow_are_quarantined_with_the_problem(units) -> None:
    url = units("monre_water_resources", water_resources.generate, scale=0.1, days=1, start=START)
    first = run_dataset("water_extraction_licences")
    clean = _published("water_extraction_licences", 1)["licence_no"].to_pylist()
    date_row, flow_row = clean[10], clean[11]
    _execute(
        url,
        f"UPDATE licences SET issued_on = '31/02/2024' WHERE licence_no = '{date_row}'",
        f"UPDATE licences SET max_flow = '-120,5' WHERE licence_no = '{flow_row}'",
    )
    run_dataset("water_extraction_licences", run_id="dirty")
    rows = {r["licence_no"]: r for r in _quarantined("water_extraction_licences", "dirty").to_pylist()}
    assert rows[date_row]["input_problems"] == (
        "parse_date_dmy: column 'issued_on': '31/02/2024' is not a real date (day is out of range for month)"
    )
    assert "expect_column_values_to_not_be_null:issued_on" in rows[date_row]["_rules"]
    assert rows[flow_row]["input_problems"] == "non_negative: column 'max_flow': -120.5 is negative"
    assert rows[flow_row]["max_flow"] == -120.5  # kept as found, for the unit to correct
    assert rows[flow_row]["_rules"] == f"expect_column_values_to_be_between:max_flow; {PROBLEM_RULE}"
    assert date_row not in _published("water_extraction_licences", 2)["licence_no"].to_pylist()

    # Too many bad rows: the run fails naming the rule and the threshold, and nothing new is published.
    _execute(url, "UPDATE licences SET expires_on = '30/02/2030' WHERE licence_no LIKE '1%'")
    with pytest.raises(ValidationFailed) as info:
        run_dataset("water_extraction_licences")
    assert PROBLEM_RULE in str(info.value) and "exceed the quarantine threshold 3.00%" in str(info.value)
    assert _store().versions("water_extraction_licences") == [first["version"], 2]


def test_undecodable_legacy_text_fails_naming_column_row_and_value(units) -> None:
    url = units("monre_water_resources", water_resources.generate, scale=0.05, days=1, start=START)
    first = run_dataset("water_extraction_licences")
    _execute(url, "UPDATE licences SET holder = 'C\ufffdng ty Nước sạch' WHERE licence_no = '3/GP-BTNMT'")
    with pytest.raises(TransformError) as info:
        run_dataset("water_extraction_licences")
    message = str(info.value)
    assert "decode_legacy_text: column 'holder', row " in message
    assert "'C\ufffdng ty Nước sạch'" in message and "neither valid Unicode nor TCVN3/VNI" in message
    assert _store().versions("water_extraction_licences") == [first["version"]]


def test_source_table_that_disappeared_fails_naming_it_and_keeps_the_release(units, tmp_path: Path) -> None:
    url = units("monre_water_resources", water_resources.generate, scale=0.05, days=1, start=START)
    first = run_dataset("water_extraction_licences")
    _execute(url, "DROP TABLE licences")
    with pytest.raises(SourceError, match="licences") as info:
        run_dataset("water_extraction_licences")
    assert "monre_water_resources" in str(info.value) and not info.value.retryable
    assert _store().versions("water_extraction_licences") == [first["version"]]
    served = _rows(f"sqlite:///{tmp_path / 'share.sqlite'}", "SELECT count(*) FROM water_extraction_licences")
    assert served[0][0] == first["rows"]


def test_groundwater_levels_incremental_with_late_entries(units) -> None:
    url = units("monre_water_resources", water_resources.generate, scale=0.1, days=20, start=START)
    first = run_dataset("groundwater_levels")
    assert first["rows"] == _rows(url, "SELECT count(*) FROM well_levels")[0][0]
    day = water_resources.append_day(url)
    second = run_dataset("groundwater_levels")
    assert second["created"] and second["rows"] == _rows(url, "SELECT count(*) FROM well_levels")[0][0]
    table = _published("groundwater_levels", 2)
    keys = list(zip(table["well_code"].to_pylist(), table["observed_at"].to_pylist(), strict=True))
    assert len(keys) == len(set(keys))
    assert max(table["observed_at"].to_pylist()).date() == day
    late = [r for r in table.to_pylist() if r["updated_at"] - r["observed_at"] > dt.timedelta(days=1)]
    assert late  # readings entered days late are in the release
    kinds = {r["well_code"][:2]: r["well_kind"] for r in table.to_pylist()}
    assert kinds == {"QT": "monitoring", "KT": "production"}


# -- water quality -------------------------------------------------------------------------------------


def test_surface_water_quality_keeps_detection_limits_and_classifies_the_reported_wqi(units) -> None:
    url = units("monre_water_quality", water_quality.generate, scale=0.1, days=10, start=START)
    first = run_dataset("surface_water_quality")
    table = {r["sample_id"]: r for r in _published("surface_water_quality", 1).to_pylist()}
    names = {"as_": "arsenic", "cd": "cadmium", "pb": "lead", "hg": "mercury", "fe": "iron"}
    columns = ", ".join(water_quality.PARAMETERS)
    below = decimals = 0
    for sample_id, wqi, *values in _rows(url, f"SELECT sample_id, wqi, {columns} FROM samples"):
        row = table[sample_id]
        assert row["wqi"] == wqi and row["wqi_class"] == wqi_class(wqi)
        for param, text in zip(water_quality.PARAMETERS, values, strict=True):
            name = names.get(param, param)
            if text is None:
                assert row[name] is None and row[f"{name}_below_dl"] is None
            elif text.startswith("<"):
                below += 1
                assert row[name] is None and row[f"{name}_below_dl"] is True
                assert row[f"{name}_dl"] == float(text[1:].replace(",", "."))
            else:
                decimals += "." in text  # a decimal point is a decimal point here, never a thousands mark
                assert row[name] == float(text.replace(",", ".")) and row[f"{name}_below_dl"] is False
    assert below and decimals
    water_quality.append_day(url)
    second = run_dataset("surface_water_quality")
    assert second["version"] == 2 and second["rows"] == first["rows"] + (second["rows"] - first["rows"]) > 0
    assert second["rows"] == _rows(url, "SELECT count(*) FROM samples")[0][0]


# -- public services -----------------------------------------------------------------------------------


def test_dossier_stats_are_the_same_on_sqlite_and_mariadb(project, mariadb_db: str, tmp_path, monkeypatch) -> None:
    kwargs = {"scale": 0.05, "days": 150, "start": dt.date(2022, 6, 1)}
    public_services.generate(mariadb_db, **kwargs)
    project("monre_public_services", mariadb_db)
    on_mariadb = run_dataset("public_service_dossier_stats")
    maria = _published("public_service_dossier_stats", 1)

    lite = f"sqlite:///{tmp_path / 'dvc.sqlite'}"
    public_services.generate(lite, **kwargs)
    project("monre_public_services", lite)
    monkeypatch.setenv("DATASHARE_RELEASE_ROOT", str(tmp_path / "sqlite-releases"))
    on_sqlite = run_dataset("public_service_dossier_stats")
    assert on_sqlite["rows"] == on_mariadb["rows"] > 0
    assert _published("public_service_dossier_stats", 1).equals(maria)
    assert [f["sha256"] for f in on_sqlite["files"]] == [f["sha256"] for f in on_mariadb["files"]]

    total = _rows(lite, "SELECT count(*) FROM dossiers")[0][0]
    assert sum(maria["received"].to_pylist()) == total
    for row in maria.to_pylist():
        assert re.fullmatch(r"2022-(?:0[6-9]|1[0-2])", row["month"])
        assert row["early"] + row["on_time"] + row["late"] <= row["processed"] <= row["received"]
        if row["processed"]:
            assert row["early_rate"] == round(row["early"] / row["processed"], 4)
            assert row["late_rate"] == round(row["late"] / row["processed"], 4)
        else:
            assert row["early_rate"] is None
    levels = {r["procedure_code"]: r["online_level"] for r in maria.to_pylist()}
    assert set(levels.values()) <= {3, 4} and len(levels) <= 82


# -- shared catalogues ---------------------------------------------------------------------------------


def test_catalogues_publish_admin_units_and_land_use_codes(units) -> None:
    units("monre_catalogues", catalogues.generate)
    admin = run_dataset("admin_units")
    codes = run_dataset("land_use_codes")
    assert admin["rows"] == len(ADMIN_UNITS) and codes["rows"] == len(LAND_USE_CODES)
    rows = _published("admin_units", 1).to_pylist()
    yen_bai = next(r for r in rows if r["code"] == "15" and r["valid_to"] is not None)
    lao_cai = next(r for r in rows if r["code"] == "15" and r["valid_to"] is None)
    assert (yen_bai["valid_to"], lao_cai["valid_from"]) == (dt.date(2025, 6, 30), dt.date(2025, 7, 1))
    assert (yen_bai["successor_code"], yen_bai["successor_confirmed"]) == ("15", True)
    old_lao_cai = next(r for r in rows if r["code"] == "10" and r["level"] == "province")
    assert old_lao_cai["successor_code"] == "15" and old_lao_cai["successor_confirmed"] is True
    retired = [r for r in _published("land_use_codes", 1).to_pylist() if r["retired"]]
    assert retired and all(r["valid_to"] is not None and r["confirmed"] is False for r in retired)


def test_pools_bound_every_unit_to_its_specs_connections(capsys: pytest.CaptureFixture[str]) -> None:
    from datashare.spec import load_specs
    from datashare.tools.cli import main

    assert main(["pools"]) == 0
    pools = json.loads(capsys.readouterr().out)
    specs, errors = load_specs(REPO / "dags" / "datasets")
    assert not errors
    expected: dict[str, int] = {}
    for spec in specs.values():
        if spec.source.kind == "database":
            expected[spec.pool] = max(expected.get(spec.pool, 0), spec.source.max_connections)
    assert {name: pool["slots"] for name, pool in pools.items()} == expected
    assert {"unit_land", "unit_water_resources", "unit_water_quality", "unit_public_services"} <= set(pools)
    assert pools["unit_land"]["slots"] == 2  # four key ranges, at most two connections at once
