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
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psycopg
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from sqlalchemy.engine import make_url

from datashare.access import Recipient, Registry, Tokens, can_read
from datashare.exceptions import ConfigError, PublishError
from datashare.share import sqlroles
from datashare.share.sqlshare import publish_release, share_state
from datashare.share.sqlshare_places import agency_database
from datashare.share.target import ShareTarget
from datashare.spec import DatasetSpec, parse_spec

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


def publish(
    url: str, tmp_path: Path, dataset_id: str, version: int = 1, readers: tuple[str, ...] | None = None
) -> None:
    """Publish as the pipeline does: a restricted dataset into its readers' databases (``readers``)."""
    path = tmp_path / f"{dataset_id}-v{version}.parquet"
    pq.write_table(pa.table({"code": [f"{dataset_id}-{version}"], "value": [version]}), path)
    publish_release(dataset_id=dataset_id, version=version, parquet_paths=[path], target=url, readers=readers)


def sync(url: str, tmp_path: Path, s: DatasetSpec, registry: Registry = REGISTRY) -> list[str]:
    """What the pipeline's publish stage does for the newest version: move the dataset if its audience
    changed (``share_state(...).in_place``), then apply the grants."""
    readers = sqlroles.share_readers(s, registry)
    state = share_state(dataset_id=s.id, target=url, readers=readers)
    if not state.in_place:
        publish(url, tmp_path, s.id, state.versions[-1], readers)
    return sqlroles.apply_grants(spec=s, registry=registry, target=url)


def database_of(url: str, code: str) -> str:
    """The URL of a recipient's own database in the share."""
    main = make_url(url).database
    return make_url(url).set(database=agency_database(main, code)).render_as_string(hide_password=False)


def libpq(url: str, *, user: str | None = None, password: str | None = None) -> str:
    u = make_url(url).set(drivername="postgresql")
    if user is not None:
        u = u.set(username=user, password=password)
    return u.render_as_string(hide_password=False)


@pytest.fixture
def roles(
    postgres_db: str, share_databases: Callable[[str], list[str]], monkeypatch: pytest.MonkeyPatch
) -> Iterator[str]:
    """A role prefix of this test's own; every role with it is dropped afterwards (before the database is)."""
    prefix = f"t{secrets.token_hex(3)}_"
    monkeypatch.setattr(sqlroles, "ROLE_PREFIX", prefix)
    try:
        yield prefix
    finally:
        share_databases(postgres_db)  # privileges in them would keep the roles from being dropped
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


def try_read(conn: psycopg.Connection | None, relation: str) -> bool:
    if conn is None:
        return False
    try:
        conn.execute(f'SELECT count(*) FROM "{SCHEMA}"."{relation}"').fetchone()
        return True
    except (psycopg.errors.InsufficientPrivilege, psycopg.errors.UndefinedTable):
        return False


def try_create(conn: psycopg.Connection) -> bool:
    try:
        conn.execute(f'CREATE TABLE "{SCHEMA}"."intruder" (a int)')
        conn.execute(f'DROP TABLE "{SCHEMA}"."intruder"')
        return True
    except (psycopg.errors.InsufficientPrivilege, psycopg.errors.InvalidSchemaName):
        return False


def connect_as(url: str, code: str | None, password: str | None) -> psycopg.Connection | None:
    """A session as a recipient's role (None: the admin as the public group); None if CONNECT is refused."""
    try:
        if code is None:
            conn = psycopg.connect(libpq(url), autocommit=True)
            conn.execute(f'SET ROLE "{sqlroles.public_role()}"')
            return conn
        return psycopg.connect(libpq(url, user=sqlroles.recipient_role(code), password=password), autocommit=True)
    except psycopg.OperationalError as exc:
        if "CONNECT privilege" in str(exc) or "does not exist" in str(exc):
            return None
        raise


def observe(url: str, logins: dict[str, str], objects: list[str]) -> dict[str, dict[str, bool]]:
    """Each recipient role (and the public group) tries every read, in the share's database and in every
    recipient database, and a CREATE in the share's database: an object counts as read if any succeeds."""
    databases = [url, *(database_of(url, code) for code in logins)]
    matrix: dict[str, dict[str, bool]] = {}
    for who, password in [*logins.items(), (None, None)]:
        sessions = [connect_as(db, who, password) for db in databases]
        try:
            row = {o: any(try_read(c, o) for c in sessions) for o in objects}
            matrix[who or "(public)"] = row | {"CREATE TABLE": try_create(sessions[0])}
        finally:
            for c in sessions:
                if c is not None:
                    c.close()
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
        publish(postgres_db, tmp_path, s.id, readers=sqlroles.share_readers(s, REGISTRY))
    for s in specs:
        statements = sqlroles.apply_grants(spec=s, registry=REGISTRY, target=postgres_db)
        assert any(st.startswith(f'GRANT SELECT ON TABLE "{SCHEMA}"."{s.id}"') for st in statements)
        assert not any("__v" in st and st.startswith("GRANT") for st in statements)
    logins = {code: sqlroles.issue_sql_login(recipient=REGISTRY.get(code), target=postgres_db) for code in (A, B, C)}

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
    restricted = spec("land_parcels", "restricted", (A,))
    publish(postgres_db, tmp_path, "land_parcels", readers=(A,))
    first = sqlroles.apply_grants(spec=restricted, registry=REGISTRY, target=postgres_db)
    view = f'"{SCHEMA}"."land_parcels"'
    before = acl(database_of(postgres_db, A), view)
    again = sqlroles.apply_grants(spec=restricted, registry=REGISTRY, target=postgres_db)
    assert acl(database_of(postgres_db, A), view) == before  # idempotent
    assert not any(st.startswith("CREATE ROLE") for st in again) and any(st.startswith("CREATE ROLE") for st in first)
    assert not any("DATABASE" in st for st in again)  # the database's privileges were already right
    logins = {code: sqlroles.issue_sql_login(recipient=REGISTRY.get(code), target=postgres_db) for code in (A, B, C)}
    main = make_url(postgres_db).database

    def readers() -> list[str]:
        return [c for c in logins if observe(postgres_db, {c: logins[c]}, ["land_parcels"])[c]["land_parcels"]]

    def where() -> set[str]:
        return set(share_state(dataset_id="land_parcels", target=postgres_db).databases)

    assert readers() == [A] and where() == {agency_database(main, A)}
    shared = spec("land_parcels", "shared")
    sync(postgres_db, tmp_path, shared)
    assert readers() == [A, B] and where() == {main}  # moved into the share's database
    sync(postgres_db, tmp_path, spec("land_parcels", "restricted", (B,)))
    assert readers() == [B] and where() == {agency_database(main, B)}  # A was removed from the spec

    # A new release keeps the grants (the swap carries them over) and its table stays closed.
    publish(postgres_db, tmp_path, "land_parcels", 2, readers=(B,))
    assert readers() == [B]
    assert observe(postgres_db, {B: logins[B]}, ["land_parcels__v2"])[B]["land_parcels__v2"] is False

    # B made inactive: it reads open data only and may no longer connect to its database; then removed from
    # the registry: it loses its login.
    inactive = Registry(recipients=[recipient(A), recipient(B, active=False), recipient(C, "other")])
    statements = sync(postgres_db, tmp_path, shared, inactive)
    assert f'REVOKE ALL ON DATABASE "{agency_database(main, B)}" FROM PUBLIC' in " ".join(statements)
    assert readers() == [A] and where() == {main}
    assert connect_as(database_of(postgres_db, B), B, logins[B]) is None
    without_b = Registry(recipients=[recipient(A), recipient(C, "other")])
    statements = sync(postgres_db, tmp_path, shared, without_b)
    assert f'ALTER ROLE "{sqlroles.recipient_role(B)}" NOLOGIN' in statements
    with pytest.raises(psycopg.OperationalError, match="not permitted to log in"):
        psycopg.connect(libpq(postgres_db, user=sqlroles.recipient_role(B), password=logins[B]))


# --- restricted means invisible ------------------------------------------------------------------------

SECRET_ID = "secret_parcels"
SECRET_TITLE = "Thửa đất mật / Secret cadastral parcels"
SECRET_COLUMN = "owner_secret_name"
SECRET_NOTE = "Tên chủ sử dụng đất (mật)"
SECRET_ROWS = 2_345
SECRETS = (SECRET_ID, "Thửa đất mật", "Secret cadastral", SECRET_COLUMN, SECRET_NOTE, "secret_parcels__")

# What an attacker logged in as another agency's role asks the catalogs (pg_catalog tables are readable
# by every role for every object of the database; information_schema filters by privilege).
PROBES = {
    "pg_class": "SELECT relname, relkind, reltuples FROM pg_class",
    "pg_namespace": "SELECT nspname FROM pg_namespace",
    "pg_description": "SELECT objoid, description FROM pg_description",
    "obj_description": "SELECT relname, obj_description(oid, 'pg_class') FROM pg_class",
    "col_description": "SELECT attname, col_description(attrelid, attnum) FROM pg_attribute WHERE attnum > 0",
    "pg_attribute": "SELECT attrelid::regclass::text, attname FROM pg_attribute",
    "pg_type": "SELECT typname FROM pg_type",
    "pg_inherits": "SELECT inhrelid::regclass::text, inhparent::regclass::text FROM pg_inherits",
    "pg_rewrite": "SELECT ev_class::regclass::text, pg_get_ruledef(oid) FROM pg_rewrite",
    "pg_views": "SELECT schemaname, viewname, definition FROM pg_views",
    "pg_tables": "SELECT schemaname, tablename FROM pg_tables",
    "pg_get_viewdef(oid)": "SELECT relname, pg_get_viewdef(oid) FROM pg_class WHERE relkind = 'v'",
    "information_schema.tables": "SELECT table_schema, table_name FROM information_schema.tables",
    "information_schema.views": "SELECT table_name, view_definition FROM information_schema.views",
    "information_schema.columns": "SELECT table_name, column_name FROM information_schema.columns",
    "pg_stat_user_tables": "SELECT relname, n_live_tup, n_tup_ins, seq_tup_read FROM pg_stat_user_tables",
    "pg_stat_all_tables": "SELECT relname, n_live_tup, n_tup_ins FROM pg_stat_all_tables",
    "pg_statio_all_tables": "SELECT relname, heap_blks_read, heap_blks_hit FROM pg_statio_all_tables",
    "pg_statio_user_indexes": "SELECT relname, indexrelname FROM pg_statio_user_indexes",
    "pg_stats": "SELECT tablename, attname, most_common_vals::text, n_distinct FROM pg_stats",
    "pg_database": "SELECT datname, datacl::text, shobj_description(oid, 'pg_database') FROM pg_database",
    "pg_stat_database": "SELECT datname, tup_inserted, tup_returned FROM pg_stat_database",
    "pg_shdescription": "SELECT description FROM pg_shdescription",
    "to_regclass(name)": f"SELECT to_regclass('{SCHEMA}.{SECRET_ID}')::text",
    "pg_locks": "SELECT locktype, relation::regclass::text FROM pg_locks",
}


def probe(conn: psycopg.Connection) -> dict[str, str]:
    """Every probe's answer: 'clean (n rows)', 'LEAK: <what>' or the error."""
    found = {}
    for name, query in PROBES.items():
        try:
            rows = conn.execute(query).fetchall()
        except psycopg.Error as exc:
            found[name] = f"error: {str(exc).splitlines()[0]}"
            continue
        text = json.dumps([[str(v) for v in row] for row in rows], ensure_ascii=False)
        leaks = [secret for secret in SECRETS if secret in text]
        found[name] = f"LEAK: {', '.join(leaks)}" if leaks else f"clean ({len(rows)} rows)"
    return found


def publish_secret(url: str, tmp_path: Path, version: int, readers: tuple[str, ...] | None) -> None:
    """The restricted dataset: a distinctive title, a column with a distinctive comment, SECRET_ROWS rows."""
    fields = [
        pa.field("code", pa.string(), nullable=False, metadata={"description": "Mã thửa"}),
        pa.field(SECRET_COLUMN, pa.string(), metadata={"description": SECRET_NOTE}),
    ]
    rows = SECRET_ROWS + version
    table = pa.table({"code": [f"p{i}" for i in range(rows)], SECRET_COLUMN: ["Nguyễn Văn A"] * rows})
    path = tmp_path / f"secret-v{version}.parquet"
    pq.write_table(table.cast(pa.schema(fields)), path)
    publish_release(
        dataset_id=SECRET_ID,
        version=version,
        parquet_paths=[path],
        target=url,
        comment=SECRET_TITLE,
        readers=readers,
        retention=2,
    )


def test_restricted_dataset_is_invisible_to_every_other_role(
    roles: str, postgres_db: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    secret = spec(SECRET_ID, "restricted", (A,))
    others = [spec("open_data", "open"), spec("shared_data", "shared"), spec("b_only", "restricted", (B,))]
    for s in others:
        publish(postgres_db, tmp_path, s.id, readers=sqlroles.share_readers(s, REGISTRY))
        sqlroles.apply_grants(spec=s, registry=REGISTRY, target=postgres_db)
    logins = {code: sqlroles.issue_sql_login(recipient=REGISTRY.get(code), target=postgres_db) for code in (A, B, C)}

    # The layout before this change (everything in the share's database): the probes find it all.
    publish_secret(postgres_db, tmp_path, 1, readers=None)
    b = connect_as(postgres_db, B, logins[B])
    assert b is not None
    with b:
        before = probe(b)
    leaked = {p for p, answer in before.items() if answer.startswith("LEAK")}
    assert {
        "pg_class",
        "pg_description",
        "col_description",
        "pg_attribute",
        "pg_views",
        "pg_stat_user_tables",
    } <= leaked
    assert not share_state(dataset_id=SECRET_ID, target=postgres_db, readers=(A,)).in_place  # moved next sync
    for version in (2, 3):  # v1 leaves the share's database; retention keeps v2 and v3 in A's
        publish_secret(postgres_db, tmp_path, version, readers=(A,))
        sqlroles.apply_grants(spec=secret, registry=REGISTRY, target=postgres_db)
    main = make_url(postgres_db).database
    state = share_state(dataset_id=SECRET_ID, target=postgres_db, readers=(A,))
    assert state.in_place and state.databases == {agency_database(main, A): [2, 3]}
    with psycopg.connect(libpq(postgres_db), autocommit=True) as admin:
        admin.execute("ANALYZE")  # statistics exist for every table the probes could find
        admin.execute("SELECT pg_stat_force_next_flush()")

    # Agency A reads its data, with its title and column comments, in its own database.
    a = connect_as(database_of(postgres_db, A), A, logins[A])
    assert a is not None
    with a:
        assert a.execute(f"SELECT count(*) FROM {SCHEMA}.{SECRET_ID}").fetchone() == (SECRET_ROWS + 3,)
        title = a.execute(f"SELECT obj_description('{SCHEMA}.{SECRET_ID}'::regclass)").fetchone()[0]
        assert title == f"{SECRET_TITLE} (release 3)"
        column = a.execute(
            f"SELECT col_description('{SCHEMA}.{SECRET_ID}'::regclass, 2), "
            f"(SELECT attname FROM pg_attribute WHERE attrelid = '{SCHEMA}.{SECRET_ID}'::regclass AND attnum = 2)"
        ).fetchone()
        assert column == (SECRET_NOTE, SECRET_COLUMN)
        assert not try_read(a, f"{SECRET_ID}__v3") and not try_read(a, "b_only")

    # Everyone else, in every database they may enter, finds nothing of it.
    report = {}
    for who in (B, C, None):
        label = who or "(public)"
        # The public group has no login: the admin's session takes its role, in the share's database only.
        databases = (postgres_db, database_of(postgres_db, B), database_of(postgres_db, A)) if who else (postgres_db,)
        for database in databases:
            conn = connect_as(database, who, logins.get(who or ""))
            name = make_url(database).database
            if conn is None:
                report[f"{label} @ {name}"] = {"CONNECT": "refused"}
                continue
            with conn:
                report[f"{label} @ {name}"] = probe(conn)
                if who is None:
                    continue
                inserted = conn.execute(
                    "SELECT tup_inserted FROM pg_stat_database WHERE datname = %s", (agency_database(main, A),)
                ).fetchone()[0]
                assert inserted < SECRET_ROWS, "pg_stat_database counts the rows loaded into A's database"
    with capsys.disabled():
        print(f"\nRestricted dataset {SECRET_ID} (agency {A}) as other roles see it:")
        print(f"  before: {B} @ the share's database, everything in one database")
        for probe_name, answer in before.items():
            print(f"    {probe_name:28} {answer}")
        for where, answers in report.items():
            print(f"  {where}")
            for probe_name, answer in answers.items():
                print(f"    {probe_name:28} {answer}")
    assert report[f"{B} @ {agency_database(main, A)}"] == {"CONNECT": "refused"}
    assert report[f"{C} @ {agency_database(main, A)}"] == {"CONNECT": "refused"}
    assert "clean" in report[f"{B} @ {agency_database(main, B)}"]["pg_class"]  # B's own restricted data
    for where, answers in report.items():
        assert not [p for p, answer in answers.items() if answer.startswith("LEAK")], (where, answers)
        errors = [a for a in answers.values() if a.startswith("error") and "permission denied" not in a]
        assert not errors, (where, answers)


def test_restricted_dataset_keeps_retention_withdrawal_and_unpublish_in_each_readers_database(
    roles: str, postgres_db: str, tmp_path: Path
) -> None:
    from datashare.share.sqlshare import list_versions, unpublish

    main = make_url(postgres_db).database
    both = (A, B)
    for version in (1, 2, 3):
        publish_secret(postgres_db, tmp_path, version, readers=both)
    state = share_state(dataset_id=SECRET_ID, target=postgres_db, readers=both)
    assert state.in_place and state.databases == {agency_database(main, A): [2, 3], agency_database(main, B): [2, 3]}
    assert not share_state(dataset_id=SECRET_ID, target=postgres_db, readers=(A,)).in_place  # B must go

    # A withdrawal moves every reader's view back to v2 in the transaction that drops v3.
    path = tmp_path / "secret-v2.parquet"
    publish_release(
        dataset_id=SECRET_ID,
        version=2,
        parquet_paths=[path],
        target=postgres_db,
        readers=both,
        withdrawn=[3],
        retention=2,
    )
    for code in both:
        with psycopg.connect(libpq(database_of(postgres_db, code)), autocommit=True) as conn:
            assert conn.execute(f"SELECT count(*) FROM {SCHEMA}.{SECRET_ID}").fetchone() == (SECRET_ROWS + 2,)
            assert conn.execute(f"SELECT to_regclass('{SCHEMA}.{SECRET_ID}__v3')").fetchone() == (None,)
    assert list_versions(dataset_id=SECRET_ID, target=postgres_db) == [2]

    # A recipient dropped from the spec: the dataset leaves its database, the other keeps it.
    publish_release(dataset_id=SECRET_ID, version=2, parquet_paths=[path], target=postgres_db, readers=(A,))
    assert share_state(dataset_id=SECRET_ID, target=postgres_db, readers=(A,)).databases == {
        agency_database(main, A): [2]
    }
    with psycopg.connect(libpq(database_of(postgres_db, B)), autocommit=True) as conn:
        left = conn.execute("SELECT count(*) FROM pg_class WHERE relname LIKE %s", (f"{SECRET_ID}%",)).fetchone()[0]
        assert left == 0  # no view, version table or part of it stays behind

    with pytest.raises(PublishError, match="restricted to no active recipient"):
        publish_release(dataset_id=SECRET_ID, version=2, parquet_paths=[path], target=postgres_db, readers=())
    assert unpublish(dataset_id=SECRET_ID, target=postgres_db) == (f"{SECRET_ID}__v2",)
    assert share_state(dataset_id=SECRET_ID, target=postgres_db).databases == {}


def test_a_move_cut_short_is_never_taken_as_settled(
    roles: str, postgres_db: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from datashare.share import sqlshare_pg

    main = make_url(postgres_db).database
    publish_secret(postgres_db, tmp_path, 1, readers=(B,))
    assert share_state(dataset_id=SECRET_ID, target=postgres_db, readers=(B,)).in_place

    # A is added to the spec; the publish dies after loading A's database, before B's.
    real = sqlshare_pg.publish_postgres

    def dies_at_b(target: ShareTarget, **kwargs: Any) -> Any:
        if target.url.database == agency_database(main, B):
            raise PublishError("killed")
        return real(target, **kwargs)

    monkeypatch.setattr(sqlshare_pg, "publish_postgres", dies_at_b)
    with pytest.raises(PublishError, match="killed"):
        publish_secret(postgres_db, tmp_path, 1, readers=(A, B))
    monkeypatch.setattr(sqlshare_pg, "publish_postgres", real)

    # A is taken out of the spec again before any run completed the move: B's rows, untouched since its
    # last publish for (B,), must not look settled, or A's copy would stay where A may no longer read.
    state = share_state(dataset_id=SECRET_ID, target=postgres_db, readers=(B,))
    assert not state.in_place and set(state.databases) == {agency_database(main, A), agency_database(main, B)}
    publish_secret(postgres_db, tmp_path, 1, readers=(B,))
    state = share_state(dataset_id=SECRET_ID, target=postgres_db, readers=(B,))
    assert state.in_place and state.databases == {agency_database(main, B): [1]}


def test_a_database_datashare_did_not_make_is_never_taken_over(roles: str, postgres_db: str, tmp_path: Path) -> None:
    main = make_url(postgres_db).database
    with psycopg.connect(libpq(postgres_db), autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{agency_database(main, A)}"')
    with pytest.raises(PublishError, match="exists but was not made by datashare"):
        publish_secret(postgres_db, tmp_path, 1, readers=(A,))
    assert share_state(dataset_id=SECRET_ID, target=postgres_db).databases == {}
    with pytest.raises(PublishError, match="invalid recipient code"):
        publish_secret(postgres_db, tmp_path, 1, readers=('x"; DROP DATABASE postgres; --',))


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

    password = sqlroles.issue_sql_login(recipient=agency, target=postgres_db)
    can_login, verifier = stored()
    assert can_login and scram_matches(verifier, password) and password not in verifier
    assert not scram_matches(verifier, password + "x")
    second = sqlroles.issue_sql_login(recipient=agency, target=postgres_db)
    assert second != password and scram_matches(stored()[1], second) and not scram_matches(stored()[1], password)

    session = psycopg.connect(libpq(postgres_db, user=role, password=second), autocommit=True)
    try:
        result = sqlroles.revoke_sql_login(recipient=agency, target=postgres_db)
        assert (result.role, result.existed, result.sessions_ended) == (role, True, 1)
        with pytest.raises(psycopg.OperationalError):
            session.execute("SELECT 1")
    finally:
        session.close()
    can_login, verifier = stored()
    assert not can_login and not scram_matches(verifier, second)
    with pytest.raises(psycopg.OperationalError, match="not permitted to log in"):
        psycopg.connect(libpq(postgres_db, user=role, password=second))
    never = sqlroles.revoke_sql_login(recipient=REGISTRY.get(C), target=postgres_db)
    assert (never.existed, never.sessions_ended) == (False, 0)


def test_sqlite_has_no_roles_and_hostile_codes_never_reach_sql(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'share.sqlite'}"
    assert sqlroles.apply_grants(spec=spec("open_data", "open"), registry=REGISTRY, target=url) == []
    with pytest.raises(ConfigError, match="SQLite, which has no roles"):
        sqlroles.issue_sql_login(recipient=REGISTRY.get(A), target=url)
    hostile = Recipient.model_construct(code='x"; DROP ROLE postgres; --', kind="government", active=True)
    with pytest.raises(ConfigError, match="invalid recipient code"):
        sqlroles.issue_sql_login(recipient=hostile, target="postgresql+psycopg://postgres@127.0.0.1:5432/test")


# --- CLI -------------------------------------------------------------------------------------------


def run_cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    from datashare.tools.cli import main

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
