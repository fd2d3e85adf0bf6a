"""Personal data never leaves unprotected: keyed pseudonyms, masks, and the key's absence is an error."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pytest

from datashare.exceptions import TransformError
from datashare.pipeline.transform import protect_personal_data
from datashare.spec import load_spec
from transforms.privacy import mask_value, pseudonym_key, pseudonymise_value

REPO = Path(__file__).resolve().parents[2]
KEY = b"a-test-key-of-sufficient-length"


def test_pseudonyms_are_stable_keyed_and_normalised() -> None:
    cid = "001085012345"
    token = pseudonymise_value(cid, KEY)
    assert token == pseudonymise_value(f" {cid} ", KEY)  # same person, same token: joins still work
    assert token != pseudonymise_value(cid, b"another-key-of-sufficient-length")
    assert cid not in token and len(token) == 32
    assert pseudonymise_value("Hà Nội", KEY) == pseudonymise_value("Ha\u0300 Nô\u0323i", KEY)  # NFD == NFC
    assert pseudonymise_value(None, KEY) is None


def test_mask_keeps_initials_only() -> None:
    assert mask_value("Nguyễn Văn An") == "N. V. A."
    assert mask_value(None) is None


def test_key_must_be_configured(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DATASHARE_PSEUDONYM_KEY", raising=False)
    monkeypatch.delenv("AIRFLOW_CONN_DATASHARE_PSEUDONYM_KEY", raising=False)
    monkeypatch.setattr("datashare.source.connections._from_airflow", lambda conn_id: None)
    with pytest.raises(RuntimeError, match="DATASHARE_PSEUDONYM_KEY"):
        pseudonym_key()
    monkeypatch.setenv("DATASHARE_PSEUDONYM_KEY", "short")
    with pytest.raises(RuntimeError, match="16"):
        pseudonym_key()


def _spec_with_personal_columns(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    import yaml

    data = yaml.safe_load((REPO / "dags/datasets/air_quality_hourly.yaml").read_text(encoding="utf-8"))
    data["classification"] = {"sharing": "restricted", "importance": "other"}
    data["recipients"] = ["sotnmt_hanoi"]
    for col in data["columns"]:
        if col["name"] == "station_code":
            col["personal_data"] = "pseudonymise"
        if col["name"] == "station_name":
            col["personal_data"] = "mask"
    path = tmp_path / "air_quality_hourly.yaml"
    path.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    return load_spec(path)


def test_transform_protects_marked_columns(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    spec = _spec_with_personal_columns(tmp_path, monkeypatch)
    batch = pa.RecordBatch.from_pydict({"station_code": ["AQ01001"], "station_name": ["Hà Nội Trạm"], "pm25": [1.0]})
    out = protect_personal_data(batch, spec, KEY)
    assert out.column("station_code").to_pylist() == [pseudonymise_value("AQ01001", KEY)]
    assert out.column("station_name").to_pylist() == ["H. N. T."]
    assert out.column("pm25").to_pylist() == [1.0]


def test_transform_stage_refuses_to_run_without_key(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from datashare.pipeline.transform import transform

    spec = _spec_with_personal_columns(tmp_path, monkeypatch)
    monkeypatch.delenv("DATASHARE_PSEUDONYM_KEY", raising=False)
    monkeypatch.setattr("datashare.source.connections._from_airflow", lambda conn_id: None)
    with pytest.raises(TransformError, match="pseudonymised"):
        transform(spec, tmp_path / "missing.parquet", tmp_path / "out.parquet")
