"""Roles and grants of the SQL share on the machine's PostgreSQL: every allowed read works, every other is denied.

Roles are cluster-wide, so each test gets a unique role prefix and drops every role it made. The
test server trusts local connections (pg_hba ``trust``), so passwords are not checked at login here:
the tests prove that the stored SCRAM verifier matches the password issued, and that NOLOGIN keeps
a revoked role out (PostgreSQL enforces NOLOGIN whatever the authentication method).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from sqlalchemy.engine import make_url

from datashare import sqlroles
from datashare.access import Recipient, Registry, Tokens, can_read
from datashare.exceptions import ConfigError
from datashare.spec import DatasetSpec, parse_spec
from datashare.sqlshare import publish_release

pytestmark = pytest.mark.postgres

SCHEMA = "datashare"
A, B, C = "agency_a", "agency_b", "institute_c"


def recipient(code: str, kind: str = "government", *, active: bool = True) -> Recipient:
    return Recipient.model_validate(
        {
            "code": code,
            "name": {"vi": f"Đơn vị {code}", "en": f"Agency {code}"},
            "kind": kind,
            "contact": {"name": "Desk", "email": f"{code}@example.org"},
            "active": active,
        }
    )


REGISTRY = Registry(recipients=[recipient(A), recipient(B), recipient(C, "other")])


def spec(dataset_id: str, sharing: str, recipients: tuple[str, ...] = ()) -> DatasetSpec:
    return parse_spec(
        {
            "id": dataset_id,
            "title": {"vi": f"Bộ dữ liệu {dataset_id}", "en": f"Dataset {dataset_id}"},
            "description": {"vi": "Dữ liệu thử", "en": "Test data"},
            "sector": "testing",
            "owner": "tests",
            "source": {"conn_id": "unit_test", "unit": "testing", "table": "things"},
            "mode": {"kind": "snapshot"},
            "key": ["code"],
            "columns": [
                {"name": "code", "type": "string", "nullable": False, "description": {"vi": "Mã", "en": "Code"}},
                {"name": "value", "type": "integer", "description": {"vi": "Giá trị", "en": "Value"}},
            ],
            "classification": {"sharing": sharing, "importance": "other"},
            "recipients": list(recipients),
            "schedule": None,
            "licence": "CC-BY-4.0",
        },
        source=f"{dataset_id}.yaml",
    )


def publish(url: str, tmp_path: Path, dataset_id: str, version: int = 1) -> None:
    path = tmp_path / f"{dataset_id}-v{version}.parquet"
    pq.write_table(pa.table({"code": [f"{dataset_id}-{version}"], "value": [version]}), path)
    publish_release(dataset_id=dataset_id, version=version, parquet_paths=[path], target_url=url, schema=SCHEMA)


def libpq(url: str, *, user: str | None = None, password: str | None = None) -> str:
    u = make_url(url).set(drivername="postgresql")
    if user is not None:
        u = u.set(username=user, password=password)
    return u.render_as_string(hide_password=False)


@pytest.fixture
def roles(postgres_db: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A role prefix of this test's own; every role with it is dropped afterwards (before the database is)."""
    prefix = f"t{secrets.token_hex(3)}_"
    monkeypatch.setattr(sqlroles, "ROLE_PREFIX", prefix)
    try:
        yield prefix
    finally:
        with psycopg.connect(libpq(postgres_db), autocommit=True) as conn:
            names = [
                r for (r,) in conn.execute("SELECT rolname FROM pg_roles WHERE starts_with(rolname, %s)", (prefix,))
            ]
            conn.execute(
                "SELECT pg_terminate_backend(pid, 5000) FROM pg_stat_activity WHERE usename = ANY(%s)", (names,)
            )
            for name in names:
                conn.execute(f'DROP OWNED BY "{name}"')  # privileges in this database
            for name in names:
                conn.execute(f'DROP ROLE "{name}"')
            left = conn.execute("SELECT count(*) FROM pg_roles WHERE starts_with(rolname, %s)", (prefix,)).fetchone()
            assert left == (0,)


def try_read(conn: psycopg.Connection, relation: str) -> bool:
    try:
        conn.execute(f'SELECT count(*) FROM "{SCHEMA}"."{relation}"').fetchone()
        return True
    except psycopg.errors.InsufficientPrivilege:
        return False


def try_create(conn: psycopg.Connection) -> bool:
    try:
        conn.execute(f'CREATE TABLE "{SCHEMA}"."intruder" (a int)')
        conn.execute(f'DROP TABLE "{SCHEMA}"."intruder"')
        return True
    except psycopg.errors.InsufficientPrivilege:
        return False


def observe(url: str, logins: dict[str, str], objects: list[str]) -> dict[str, dict[str, bool]]:
    """Connect as each recipient role (and as the public group) and try every read and a CREATE."""
    matrix: dict[str, dict[str, bool]] = {}
    for code, password in logins.items():
        with psycopg.connect(libpq(url, user=sqlroles.recipient_role(code), password=password), autocommit=True) as c:
            matrix[code] = {o: try_read(c, o) for o in objects} | {"CREATE TABLE": try_create(c)}
    with psycopg.connect(libpq(url), autocommit=True) as c:  # anonymous consumers: the public group
        c.execute(f'SET ROLE "{sqlroles.public_role()}"')
        matrix["(public)"] = {o: try_read(c, o) for o in objects} | {"CREATE TABLE": try_create(c)}
    return matrix


def render(matrix: dict[str, dict[str, bool]], title: str) -> str:
    columns = list(next(iter(matrix.values())))
    width = max(len(c) for c in columns)
    lines = [title, f"{'object':{width}}  " + "  ".join(f"{r:>11}" for r in matrix)]
    for col in columns:
        lines.append(f"{col:{width}}  " + "  ".join(f"{'read' if matrix[r][col] else 'DENIED':>11}" for r in matrix))
    return "\n".join(lines)


def test_each_role_reads_exactly_what_the_access_rule_allows(
    roles: str, postgres_db: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    specs = [spec("open_data", "open"), spec("shared_data", "shared"), spec("restricted_data", "restricted", (A,))]
    publish(postgres_db, tmp_path, "open_data", 1)
    publish(postgres_db, tmp_path, "open_data", 2)  # v1 is now an older version table, still in the share
    for s in specs[1:]:
        publish(postgres_db, tmp_path, s.id)
    for s in specs:
        statements = sqlroles.apply_grants(spec=s, registry=REGISTRY, target_url=postgres_db, schema=SCHEMA)
        assert any(st.startswith(f'GRANT SELECT ON TABLE "{SCHEMA}"."{s.id}"') for st in statements)
        assert not any("__v" in st and st.startswith("GRANT") for st in statements)
    logins = {
        code: sqlroles.issue_sql_login(recipient=REGISTRY.get(code), target_url=postgres_db) for code in (A, B, C)
    }

    tables = ["open_data__v1", "open_data__v2", "shared_data__v1", "restricted_data__v1", "_datashare_versions"]
    matrix = observe(postgres_db, logins, [s.id for s in specs] + tables)
    with capsys.disabled():
        print(
            "\n" + render(matrix, f"SQL share role matrix (roles prefixed {roles}; {A}, {B}: government; {C}: other)")
        )

    for code in (A, B, C):
        assert {s.id: matrix[code][s.id] for s in specs} == {s.id: can_read(REGISTRY.get(code), s) for s in specs}
    assert {s.id: matrix["(public)"][s.id] for s in specs} == {s.id: can_read(None, s) for s in specs}
    assert [matrix[r]["open_data"] for r in (A, B, C)] == [True, True, True]
    assert [matrix[r]["shared_data"] for r in (A, B, C)] == [True, True, False]
    assert [matrix[r]["restricted_data"] for r in (A, B, C)] == [True, False, False]
    for role, row in matrix.items():
        assert not any(row[t] for t in tables), f"{role} reads a version or bookkeeping table: {row}"
        assert not row["CREATE TABLE"], f"{role} can create tables in the share"


def acl(url: str, relation: str) -> str:
    with psycopg.connect(libpq(url)) as conn:
        return conn.execute("SELECT relacl::text FROM pg_class WHERE oid = to_regclass(%s)", (relation,)).fetchone()[0]


def test_grants_follow_reclassification_and_registry_changes(roles: str, postgres_db: str, tmp_path: Path) -> None:
    publish(postgres_db, tmp_path, "land_parcels")
    restricted = spec("land_parcels", "restricted", (A,))
    first = sqlroles.apply_grants(spec=restricted, registry=REGISTRY, target_url=postgres_db, schema=SCHEMA)
    view = f'"{SCHEMA}"."land_parcels"'
    before = acl(postgres_db, view)
    again = sqlroles.apply_grants(spec=restricted, registry=REGISTRY, target_url=postgres_db, schema=SCHEMA)
    assert acl(postgres_db, view) == before  # idempotent
    assert not any(st.startswith("CREATE ROLE") for st in again) and any(st.startswith("CREATE ROLE") for st in first)
    logins = {
        code: sqlroles.issue_sql_login(recipient=REGISTRY.get(code), target_url=postgres_db) for code in (A, B, C)
    }

    def readers() -> list[str]:
        return [c for c in logins if observe(postgres_db, {c: logins[c]}, ["land_parcels"])[c]["land_parcels"]]

    assert readers() == [A]
    shared = spec("land_parcels", "shared")
    sqlroles.apply_grants(spec=shared, registry=REGISTRY, target_url=postgres_db, schema=SCHEMA)
    assert readers() == [A, B]
    sqlroles.apply_grants(spec=spec("land_parcels", "restricted", (B,)), registry=REGISTRY, target_url=postgres_db)
    assert readers() == [B]  # A was removed from the spec

    # A new release keeps the grants (sqlshare re-applies them) and its table stays closed.
    publish(postgres_db, tmp_path, "land_parcels", 2)
    assert readers() == [B]
    assert observe(postgres_db, {B: logins[B]}, ["land_parcels__v2"])[B]["land_parcels__v2"] is False

    # B made inactive: it reads open data only; then removed from the registry: it loses its login.
    inactive = Registry(recipients=[recipient(A), recipient(B, active=False), recipient(C, "other")])
    sqlroles.apply_grants(spec=shared, registry=inactive, target_url=postgres_db, schema=SCHEMA)
    assert readers() == [A]
    without_b = Registry(recipients=[recipient(A), recipient(C, "other")])
    statements = sqlroles.apply_grants(spec=shared, registry=without_b, target_url=postgres_db, schema=SCHEMA)
    assert f'ALTER ROLE "{sqlroles.recipient_role(B)}" NOLOGIN' in statements
    with pytest.raises(psycopg.OperationalError, match="not permitted to log in"):
        psycopg.connect(libpq(postgres_db, user=sqlroles.recipient_role(B), password=logins[B]))


def scram_matches(verifier: str, password: str) -> bool:
    """Check a password against a PostgreSQL SCRAM-SHA-256 verifier (RFC 5802 / 7677)."""
    method, rest = verifier.split("$", 1)
    assert method == "SCRAM-SHA-256"
    iter_salt, keys = rest.split("$")
    iterations, salt = iter_salt.split(":")
    stored_key = base64.b64decode(keys.split(":")[0])
    salted = hashlib.pbkdf2_hmac("sha256", password.encode(), base64.b64decode(salt), int(iterations))
    client_key = hmac.new(salted, b"Client Key", "sha256").digest()
    return hmac.compare_digest(hashlib.sha256(client_key).digest(), stored_key)


def test_revoked_login_loses_its_password_its_sessions_and_the_right_to_connect(roles: str, postgres_db: str) -> None:
    agency = REGISTRY.get(A)
    role = sqlroles.recipient_role(A)

    def stored() -> tuple[bool, str]:
        with psycopg.connect(libpq(postgres_db)) as conn:
            return conn.execute("SELECT rolcanlogin, rolpassword FROM pg_authid WHERE rolname = %s", (role,)).fetchone()

    password = sqlroles.issue_sql_login(recipient=agency, target_url=postgres_db)
    can_login, verifier = stored()
    assert can_login and scram_matches(verifier, password) and password not in verifier
    assert not scram_matches(verifier, password + "x")
    second = sqlroles.issue_sql_login(recipient=agency, target_url=postgres_db)
    assert second != password and scram_matches(stored()[1], second) and not scram_matches(stored()[1], password)

    session = psycopg.connect(libpq(postgres_db, user=role, password=second), autocommit=True)
    try:
        result = sqlroles.revoke_sql_login(recipient=agency, target_url=postgres_db)
        assert (result.role, result.existed, result.sessions_ended) == (role, True, 1)
        with pytest.raises(psycopg.OperationalError):
            session.execute("SELECT 1")
    finally:
        session.close()
    can_login, verifier = stored()
    assert not can_login and not scram_matches(verifier, second)
    with pytest.raises(psycopg.OperationalError, match="not permitted to log in"):
        psycopg.connect(libpq(postgres_db, user=role, password=second))
    never = sqlroles.revoke_sql_login(recipient=REGISTRY.get(C), target_url=postgres_db)
    assert (never.existed, never.sessions_ended) == (False, 0)


def test_sqlite_has_no_roles_and_hostile_codes_never_reach_sql(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'share.sqlite'}"
    assert sqlroles.apply_grants(spec=spec("open_data", "open"), registry=REGISTRY, target_url=url) == []
    with pytest.raises(ConfigError, match="SQLite, which has no roles"):
        sqlroles.issue_sql_login(recipient=REGISTRY.get(A), target_url=url)
    hostile = Recipient.model_construct(code='x"; DROP ROLE postgres; --', kind="government", active=True)
    with pytest.raises(ConfigError, match="invalid recipient code"):
        sqlroles.issue_sql_login(recipient=hostile, target_url="postgresql+psycopg://postgres@127.0.0.1:5432/test")


# --- CLI -------------------------------------------------------------------------------------------


def run_cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    from datashare.cli import main

    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def value_after(out: str, label: str) -> str:
    found = re.search(rf"^\s*{label}\s+(\S+)", out, re.MULTILINE)
    assert found, f"no {label!r} in the output:\n{out}"
    return found.group(1)


def ledger_bodies(root: Path) -> list[dict[str, Any]]:
    return [json.loads(p.read_text(encoding="utf-8")) for p in sorted((root / "_ledger").glob("[0-9]*.json"))]


def test_cli_grant_and_revoke_issue_record_and_withdraw_credentials(
    roles: str, postgres_db: str, project: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    from datashare.store import ReleaseStore

    root = project("datashare_share", postgres_db) / "releases"
    code, out, _ = run_cli(capsys, "grant", "sonnmt_hanoi")
    assert code == 0, out
    token, password = value_after(out, "HTTP token"), value_after(out, "password")
    role = sqlroles.recipient_role("sonnmt_hanoi")
    assert f"role {role}" in out
    tokens = Tokens(ReleaseStore.open(str(root)).backend)
    assert tokens.lookup(token) == "sonnmt_hanoi"
    psycopg.connect(libpq(postgres_db, user=role, password=password)).close()

    code, out, _ = run_cli(capsys, "grant", "sonnmt_hanoi", "--http")
    assert code == 0 and "SQL login" not in out
    second, second_id = value_after(out, "HTTP token"), value_after(out, "id")
    code, out, _ = run_cli(capsys, "revoke", "sonnmt_hanoi", "--token-id", second_id)
    assert code == 0 and "Revoked 1 HTTP token(s)" in out and "SQL role" not in out
    assert tokens.lookup(second) is None and tokens.lookup(token) == "sonnmt_hanoi"
    psycopg.connect(libpq(postgres_db, user=role, password=password)).close()  # one token revoked, login kept

    code, out, _ = run_cli(capsys, "revoke", "sonnmt_hanoi")
    assert code == 0 and "Revoked 1 HTTP token(s)" in out and f"SQL role {role}: login revoked" in out
    assert tokens.lookup(token) is None
    with pytest.raises(psycopg.OperationalError, match="not permitted to log in"):
        psycopg.connect(libpq(postgres_db, user=role, password=password))

    code, _, err = run_cli(capsys, "revoke", "nobody_known")
    assert code == 2 and "recipients.yaml" in err and "no recipient 'nobody_known'" in err

    events = [(b["event"], b.get("recipient")) for b in ledger_bodies(root)]
    assert events == [("recipient_granted", "sonnmt_hanoi")] * 2 + [("recipient_revoked", "sonnmt_hanoi")] * 2
    granted, http_only, one_token, revoked = ledger_bodies(root)
    assert granted["sql_role"] == role and len(granted["token_id"]) == 12 and "sql_role" not in http_only
    assert (one_token["token_id"], one_token["tokens_revoked"], "sql_role" in one_token) == (second_id, 1, False)
    assert (revoked["tokens_revoked"], revoked["sql_login_revoked"], revoked["sql_role"]) == (1, True, role)
    raw = b"".join(p.read_bytes() for p in (root / "_ledger").glob("*.json"))
    for secret in (token, second, password):
        assert secret.encode() not in raw


def test_cli_on_the_embedded_sqlite_share_issues_tokens_only(project: Any, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run_cli(capsys, "grant", "bo_xay_dung", "--sql")
    assert code == 2 and "SQLite, which has no logins" in err
    code, out, _ = run_cli(capsys, "grant", "bo_xay_dung")
    assert code == 0 and "no SQL login is involved" in out and "HTTP token" in out and "SQL login   role" not in out
