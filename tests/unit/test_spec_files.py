"""Hostile and careless spec files: each is a SpecError naming the file (and the field or line), never a traceback,
never a hang, and never costs another spec.
"""

from __future__ import annotations

import itertools
import os
import re
import subprocess
import sys
import time
import unicodedata
from pathlib import Path
from typing import Any

import pytest
import yaml

from datashare.exceptions import SpecError
from datashare.share.sqlshare import _Names
from datashare.share.sqlshare_pg import PART_DIGITS
from datashare.spec import (
    MAX_SPEC_BYTES,
    is_dataset_id,
    load_spec,
    load_specs,
    spec_path,
    spec_problems,
)

REPO = Path(__file__).resolve().parents[2]
REAL = REPO / "dags" / "datasets" / "air_quality_hourly.yaml"
SPEC_ID = "air_quality_hourly"


@pytest.fixture(scope="module")
def real_text() -> str:
    return REAL.read_text(encoding="utf-8")


def _refused(path: Path, *parts: str) -> str:
    """Load ``path``, expect a SpecError naming the file and every part; return the message."""
    with pytest.raises(SpecError) as info:
        load_spec(path)
    message = str(info.value)
    assert str(path) in message
    for part in parts:
        assert part in message, f"{part!r} not in {message!r}"
    return message


def _line_of(text: str, fragment: str) -> int:
    """The 1-based line on which `fragment` starts in `text` (so the tests follow edits of the real spec)."""
    return text[: text.index(fragment)].count("\n") + 1


def _with_id(text: str, new_id: str) -> str:
    return text.replace(f"id: {SPEC_ID}\n", f"id: {new_id}\n", 1)


# --- what the file is -------------------------------------------------------------------------------------


def test_invalid_utf8_names_the_line(tmp_path: Path, real_text: str) -> None:
    path = tmp_path / f"{SPEC_ID}.yaml"
    data = real_text.encode("utf-8").replace("Quan trắc".encode(), "Quan tr\xe1c".encode("latin-1"), 1)
    path.write_bytes(data)
    _refused(path, "not UTF-8", "byte 0xe1 at line 5, column 14")


def test_utf16_file_is_not_utf8(tmp_path: Path, real_text: str) -> None:
    path = tmp_path / f"{SPEC_ID}.yaml"
    path.write_bytes(real_text.encode("utf-16"))
    _refused(path, "not UTF-8", "line 1")


def test_utf8_byte_order_mark_is_accepted(tmp_path: Path, real_text: str) -> None:
    path = tmp_path / f"{SPEC_ID}.yaml"
    path.write_bytes(b"\xef\xbb\xbf" + real_text.encode("utf-8"))
    assert load_spec(path) == load_spec(REAL)


def test_file_above_the_limit_is_refused(tmp_path: Path, real_text: str) -> None:
    path = tmp_path / f"{SPEC_ID}.yaml"
    padding = "# " + "x" * 98 + "\n"
    path.write_text(real_text + padding * (MAX_SPEC_BYTES // len(padding) + 1), encoding="utf-8")
    assert path.stat().st_size > MAX_SPEC_BYTES
    _refused(path, "the limit is 262,144 bytes")
    path.write_text(real_text + padding * ((MAX_SPEC_BYTES - len(real_text.encode())) // len(padding)))
    assert path.stat().st_size <= MAX_SPEC_BYTES
    assert load_spec(path).id == SPEC_ID  # just under the limit: read


def test_huge_file_is_refused_before_it_is_read(tmp_path: Path) -> None:
    """A 64 GiB (sparse) file: reading it whole would never end; its size alone refuses it."""
    path = tmp_path / f"{SPEC_ID}.yaml"
    with path.open("wb") as handle:
        handle.truncate(64 * 2**30)
    started = time.perf_counter()
    _refused(path, "68,719,476,736 bytes", "limit")
    assert time.perf_counter() - started < 5


@pytest.mark.timeout(30)
def test_fifo_is_refused_without_blocking(tmp_path: Path) -> None:
    path = tmp_path / f"{SPEC_ID}.yaml"
    os.mkfifo(path)
    _refused(path, "not a regular file")


def test_directory_and_device_are_refused(tmp_path: Path) -> None:
    folder = tmp_path / f"{SPEC_ID}.yaml"
    folder.mkdir()
    _refused(folder, "not a regular file")
    link = tmp_path / "zero.yaml"
    link.symlink_to("/dev/zero")
    _refused(link, "not a regular file")
    loop = tmp_path / "loop.yaml"
    loop.symlink_to(loop)
    _refused(loop, "cannot read spec: Too many levels of symbolic links")


def test_symlink_to_a_spec_is_followed(tmp_path: Path) -> None:
    link = tmp_path / f"{SPEC_ID}.yaml"
    link.symlink_to(REAL)
    assert load_spec(link) == load_spec(REAL)


# --- what the YAML holds ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("old", "new", "field", "first"),
    [
        ("classification:\n  sharing: open", "classification:\n  sharing: shared\n  sharing: open",
         "classification.sharing", 1),
        ("licence: CC-BY-4.0\n", "licence: CC-BY-4.0\nlicence: closed\n", "licence", 0),
        ("  - name: pm25\n    type: number\n", "  - name: pm25\n    type: number\n    type: string\n",
         "columns[4].type", 1),
        ("retention:\n  sql_versions: 3", "retention:\n  sql_versions: 3\n  'sql_versions': 5",
         "retention.sql_versions", 1),
    ],
)  # fmt: skip
def test_duplicate_keys_are_refused_at_any_depth(
    tmp_path: Path, real_text: str, old: str, new: str, field: str, first: int
) -> None:
    """PyYAML keeps the last of two equal keys: `sharing: shared` then `sharing: open` would publish as open.

    `first` is the line of the first key within `new`; the message names it and the line after, counted in the file.
    """
    assert old in real_text
    line = _line_of(real_text, old) + first
    path = tmp_path / f"{SPEC_ID}.yaml"
    path.write_text(real_text.replace(old, new, 1), encoding="utf-8")
    _refused(path, f"{field}: the key", "appears twice", f"lines {line} and {line + 1}")


def test_keys_equal_to_python_are_duplicates(tmp_path: Path) -> None:
    path = tmp_path / "x.yaml"
    path.write_text("tags: {1: a, true: b}\n", encoding="utf-8")
    _refused(path, "tags.True: the key True appears twice")


@pytest.mark.timeout(30)
def test_alias_bomb_is_refused_quickly(tmp_path: Path, real_text: str) -> None:
    """The 'billion laughs': nine levels of nine aliases would expand to 387 million strings."""
    levels = ["l0: &l0 [lol, lol, lol, lol, lol, lol, lol, lol, lol]"]
    for i in range(1, 9):
        levels.append(f"l{i}: &l{i} [" + ", ".join([f"*l{i - 1}"] * 9) + "]")
    path = tmp_path / f"{SPEC_ID}.yaml"
    path.write_text(real_text.replace("tags: [air, qcvn-05-2023]", "tags:\n  " + "\n  ".join(levels)))
    started = time.perf_counter()
    _refused(path, "aliases are not allowed", f"line {_line_of(real_text, 'tags: [air, qcvn-05-2023]') + 1}")
    assert time.perf_counter() - started < 5


@pytest.mark.parametrize(
    ("yaml_text", "expected"),
    [
        ("a: &x 1\nb: *x\n", "aliases are not allowed"),
        ("a: {b: 1}\nc:\n  <<: {b: 2}\n", "merge keys (<<) are not allowed"),
        ("tags: " + "[" * 40 + "]" * 40 + "\n", "nested deeper than 32 levels"),
        ("tags: " + "[" * 5000 + "]" * 5000 + "\n", "exceeded maximum nesting depth"),
        ("".join(" " * i + "k:\n" for i in range(600)) + " " * 600 + "v\n", "nested deeper than 32 levels"),
        ("id: x\n---\nid: y\n", "more than one YAML document"),
        ("id: x\n...\n---\n", "more than one YAML document"),
        ("", "expected a mapping of spec fields at the top level, got NoneType"),
        ("just a string\n", "got str"),
        ("- id: x\n", "got list"),
        ("batch_rows: " + "9" * 5000 + "\n", "not valid YAML"),
        ("when: 2024-02-30\n", "day is out of range"),
        ("a: !!python/object/apply:os.system [echo hi]\n", "tag:yaml.org,2002:python/object/apply:os.system' is not"),
        ("a: !!python/name:os.system ''\n", "could not determine a constructor"),
        ("a: b\nc: d\x00\n", "line 2: character #x0000 is not allowed"),
        ("? [a, b]\n: c\n", "a key must be a plain value"),
        ("a: [1, 2\n", "not valid YAML at line 2"),
        ("tags: !!set {a, b}\n", "the tag 'tag:yaml.org,2002:set' is not allowed"),
        ("tags: !!omap [a: 1]\n", "the tag 'tag:yaml.org,2002:omap' is not allowed"),
    ],
)
def test_malformed_yaml_is_a_spec_error(tmp_path: Path, yaml_text: str, expected: str) -> None:
    path = tmp_path / "x.yaml"
    path.write_text(yaml_text, encoding="utf-8")
    _refused(path, expected)


@pytest.mark.parametrize(
    ("old", "new", "field"),
    [
        ("max_share: 0.01", "max_share: .nan", "quarantine.max_share"),
        ("max_age_hours: 36", "max_age_hours: .inf", "freshness.max_age_hours"),
        ('schedule: "@daily"', "schedule: a b c d e", "schedule"),
        ('schedule: "@daily"', "schedule: 61 * * * *", "schedule"),
        ('schedule: "@daily"', "schedule: 0 0 * * * *", "schedule"),
        ('schedule: "@daily"', f'schedule: "{"1," * 60}2 * * * *"', "schedule"),
        ("tags: [air, qcvn-05-2023]", f"tags: [{'x' * 101}]", "tags"),
        ("tags: [air, qcvn-05-2023]", "tags: [Air Quality]", "tags"),
        ("tags: [air, qcvn-05-2023]", f"tags: [{', '.join(f't{i}' for i in range(21))}]", "tags"),
        ("owner: data-engineering", f"owner: {'o' * 101}", "owner"),
        ("owner: data-engineering", 'owner: "data\\nengineering"', "owner"),
    ],
)
def test_values_airflow_would_refuse_are_spec_errors(
    tmp_path: Path, real_text: str, old: str, new: str, field: str
) -> None:
    """Each of these would otherwise fail inside Airflow (DAG validation, a DB column), for the whole DAG file."""
    assert old in real_text
    path = tmp_path / f"{SPEC_ID}.yaml"
    path.write_text(real_text.replace(old, new, 1), encoding="utf-8")
    _refused(path, f"- {field}")


def test_cron_schedule_is_accepted(tmp_path: Path, real_text: str) -> None:
    path = tmp_path / f"{SPEC_ID}.yaml"
    path.write_text(real_text.replace('schedule: "@daily"', 'schedule: "15 2 * * 1-5"'), encoding="utf-8")
    assert load_spec(path).schedule == "15 2 * * 1-5"


def test_texts_are_stored_in_nfc(tmp_path: Path, real_text: str) -> None:
    path = tmp_path / f"{SPEC_ID}.yaml"
    path.write_text(unicodedata.normalize("NFD", real_text), encoding="utf-8")
    spec = load_spec(path)
    assert spec.title.vi == "Quan trắc chất lượng không khí tự động theo giờ"
    assert unicodedata.is_normalized("NFC", spec.description.vi)


# --- ids: the namespace the SQL share derives from them ----------------------------------------------------


def test_every_real_spec_has_a_valid_id() -> None:
    specs, errors = load_specs(REPO / "dags" / "datasets")
    assert errors == {}
    assert len(specs) == 9
    assert all(is_dataset_id(i) for i in specs)


@pytest.mark.parametrize(
    ("bad", "why"),
    [
        ("air_quality_hourly__v3", "contains '__'"),
        ("air_quality_hourly__p0123456789ab", "contains '__'"),
        ("a__b", "contains '__'"),
        ("air_", "ends with '_'"),
        ("datashare_audit", "reserved"),
        ("datashare", "reserved"),
        ("sqlite_stats", "reserved"),
        ("pg_class", "reserved"),
        ("a" * 49, "at most 48 characters"),
        ("Air", "pattern"),
        ("1air", "pattern"),
        ("air-quality", "pattern"),
        ("_air", "pattern"),
    ],
)
def test_id_that_could_collide_is_refused(tmp_path: Path, real_text: str, bad: str, why: str) -> None:
    path = tmp_path / f"{bad}.yaml"
    path.write_text(_with_id(real_text, bad), encoding="utf-8")
    _refused(path, "- id:", why)
    assert not is_dataset_id(bad)


def test_derived_input_that_could_collide_is_refused(tmp_path: Path) -> None:
    text = (REPO / "dags" / "datasets" / "province_environment_indicators.yaml").read_text(encoding="utf-8")
    path = tmp_path / "province_environment_indicators.yaml"
    path.write_text(text.replace("inputs: [air_quality_hourly,", "inputs: [air_quality_hourly__v3,"), encoding="utf-8")
    _refused(path, "- source.inputs", "contains '__'")


def test_derived_input_listed_twice_is_refused(tmp_path: Path) -> None:
    text = (REPO / "dags" / "datasets" / "province_environment_indicators.yaml").read_text(encoding="utf-8")
    path = tmp_path / "province_environment_indicators.yaml"
    path.write_text(text.replace("inputs: [air_quality_hourly,", "inputs: [air_quality_hourly, air_quality_hourly,"))
    _refused(path, "- source.inputs: ['air_quality_hourly'] listed more than once")


def _share_objects(dataset_id: str) -> set[str]:
    """Every relation name the SQL share derives from an id (sqlshare, sqlshare_pg), for versions 1, 10, 999999."""
    names = {dataset_id}
    for version in (1, 10, 999_999):
        n = _Names(dataset_id, version, "datashare")
        names |= {n.table, n.load}
    names |= {f"{dataset_id}__p{'0' * PART_DIGITS}", f"{dataset_id}__p{'abcdef012345'[:PART_DIGITS]}"}
    return names


def _lock_down_pattern(dataset_id: str) -> re.Pattern[str]:
    """The pattern sqlroles._lock_down matches a dataset's tables by (PostgreSQL ``~``, same syntax here)."""
    return re.compile(f"^{dataset_id}__(v[0-9]+(__load)?|p[0-9a-f]{{{PART_DIGITS}}})$")


def test_no_two_valid_ids_share_or_match_an_object() -> None:
    """Every valid id over a small alphabet that can spell the share's suffixes: names never collide, and the
    lock-down pattern of one dataset never matches another's objects."""
    alphabet = "av1p_"
    tricky = {"air_quality_hourly", "air_quality_hourly_v3", "a_v1_load", "a_p0123456789ab", "a_v1__load"}
    ids = sorted({"".join(c) for n in range(1, 5) for c in itertools.product(alphabet, repeat=n)} | tricky)
    valid = [i for i in ids if is_dataset_id(i)]
    assert len(valid) > 200 and "a_v1" in valid and "a_p" in valid and "a__v1" not in valid
    owner: dict[str, str] = {}
    for dataset_id in valid:
        for name in _share_objects(dataset_id):
            assert owner.setdefault(name, dataset_id) == dataset_id, (name, owner[name], dataset_id)
    for dataset_id in valid:
        pattern = _lock_down_pattern(dataset_id)
        for name, other in owner.items():
            if other != dataset_id:
                assert not pattern.match(name), (dataset_id, name, other)


def test_spec_path_refuses_what_is_not_an_id(tmp_path: Path) -> None:
    assert spec_path(tmp_path, SPEC_ID) == tmp_path / f"{SPEC_ID}.yaml"
    for bad in ("../etc/passwd", "a/b", "", "air_quality_hourly__v3", "/abs"):
        with pytest.raises(SpecError, match="not a dataset id"):
            spec_path(tmp_path, bad)


# --- a folder of specs: each on its own --------------------------------------------------------------------


def _broken_folder(tmp_path: Path, real_text: str) -> dict[str, Any]:
    folder = tmp_path / "datasets"
    folder.mkdir(parents=True)
    (folder / f"{SPEC_ID}.yaml").write_text(real_text, encoding="utf-8")
    broken = {
        "bad_encoding.yaml": _with_id(real_text, "bad_encoding").encode("utf-8").replace("ắ".encode(), b"\xff", 1),
        "dup_key.yaml": _with_id(real_text, "dup_key").replace(
            "  sharing: open", "  sharing: shared\n  sharing: open", 1
        ),
        "air_quality_hourly__v3.yaml": _with_id(real_text, "air_quality_hourly__v3"),
        "wrong_name.yaml": real_text,
        "two_docs.yaml": _with_id(real_text, "two_docs") + "---\nid: other\n",
        "bomb.yaml": "a: &a [x, x]\nb: [*a, *a]\n",
        "not_a_mapping.yaml": "- 1\n",
        "bad_field.yaml": _with_id(real_text, "bad_field").replace("sql_versions: 3", "sql_versions: three"),
        "huge.yaml": b"",
        "legacy.yml": _with_id(real_text, "legacy"),
    }
    for name, content in broken.items():
        path = folder / name
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content, encoding="utf-8")
    with (folder / "huge.yaml").open("wb") as handle:
        handle.truncate(50 * 2**20)
    (folder / ".#air_quality_hourly.yaml").symlink_to("nobody@host.1234")  # an editor's lock: not a spec
    return {"folder": folder, "broken": sorted(broken)}


def test_load_specs_keeps_every_good_spec_and_names_every_bad_one(tmp_path: Path, real_text: str) -> None:
    made = _broken_folder(tmp_path, real_text)
    specs, errors = load_specs(made["folder"])
    assert list(specs) == [SPEC_ID]
    assert sorted(p.name for p in errors) == made["broken"]
    expected = {
        "bad_encoding.yaml": "not UTF-8",
        "dup_key.yaml": "classification.sharing: the key 'sharing' appears twice",
        "air_quality_hourly__v3.yaml": "- id: 'air_quality_hourly__v3' contains '__'",
        "wrong_name.yaml": "must equal the file name 'wrong_name'",
        "two_docs.yaml": "more than one YAML document",
        "bomb.yaml": "aliases are not allowed",
        "not_a_mapping.yaml": "top level",
        "bad_field.yaml": "retention.sql_versions",
        "huge.yaml": "52,428,800 bytes",
        "legacy.yml": "spec files end in .yaml",
    }
    for path, err in errors.items():
        assert str(path) in str(err)
        assert expected[path.name] in str(err), (path.name, str(err))


def test_problems_of_the_whole_set(tmp_path: Path, real_text: str) -> None:
    folder = tmp_path / "datasets"
    folder.mkdir()
    derived = (REPO / "dags" / "datasets" / "province_environment_indicators.yaml").read_text(encoding="utf-8")
    (folder / f"{SPEC_ID}.yaml").write_text(real_text, encoding="utf-8")
    (folder / "province_environment_indicators.yaml").write_text(derived, encoding="utf-8")
    data = yaml.safe_load(derived)
    data["id"], data["source"]["inputs"] = "loop_a", ["loop_b"]
    (folder / "loop_a.yaml").write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    data["id"], data["source"]["inputs"] = "loop_b", ["loop_a", SPEC_ID]
    (folder / "loop_b.yaml").write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    suites = tmp_path / "expectations"
    suites.mkdir()
    (suites / f"{SPEC_ID}.json").write_text("{}", encoding="utf-8")

    specs, errors = load_specs(folder)
    assert errors == {}
    problems = spec_problems(specs, errors, folder, suites)
    text = {p.name: "\n".join(m) for p, m in problems.items()}
    assert sorted(text) == ["loop_a.yaml", "loop_b.yaml", "province_environment_indicators.yaml"]
    pei = text["province_environment_indicators.yaml"]
    assert "source.inputs: no dataset 'surface_water_quality'" in pei
    assert "no dataset 'water_extraction_licences'" in pei
    assert "suite:" in pei and "province_environment_indicators.json does not exist" in pei
    assert "loop_a -> loop_b -> loop_a" in text["loop_a.yaml"]
    assert "loop_b -> loop_a -> loop_b" in text["loop_b.yaml"]


def _cli(*args: str, home: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "DATASHARE_HOME": str(home)}
    datashare = Path(sys.executable).with_name("datashare")
    return subprocess.run([str(datashare), "specs", *args], capture_output=True, text=True, env=env, timeout=120)


def test_cli_lists_every_problem_and_fails_without_a_traceback(tmp_path: Path, real_text: str) -> None:
    made = _broken_folder(tmp_path / "dags", real_text)
    suites = tmp_path / "expectations"
    suites.mkdir()
    (suites / f"{SPEC_ID}.json").write_text("{}", encoding="utf-8")
    result = _cli(home=tmp_path)
    out = result.stdout + result.stderr
    assert result.returncode == 1, out
    assert "Traceback" not in out
    assert f"{made['folder'] / SPEC_ID}.yaml: ok" in out
    for name in made["broken"]:
        assert str(made["folder"] / name) in out, name
    assert f"{len(made['broken'])} of {len(made['broken']) + 1} spec file(s) have problems" in out

    one = _cli(str(made["folder"] / "dup_key.yaml"), home=tmp_path)
    assert one.returncode == 1 and "appears twice" in one.stdout and "Traceback" not in one.stdout + one.stderr
    good = _cli(str(made["folder"] / f"{SPEC_ID}.yaml"), home=tmp_path)
    assert good.returncode == 0, good.stdout + good.stderr


def test_cli_on_the_project_passes() -> None:
    result = _cli(home=REPO)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.count(": ok") == 9
