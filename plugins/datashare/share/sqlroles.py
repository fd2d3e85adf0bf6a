"""Per-recipient PostgreSQL roles and the grants of the SQL share.

The roles follow the access rule of :func:`datashare.access.can_read`:

| role | logs in | member of | reads |
|---|---|---|---|
| ``datashare_public`` | never | | ``open`` datasets; meant for anonymous, public consumers |
| ``datashare_government`` | never | ``datashare_public`` | ``shared`` (and open) datasets |
| ``ds_<code>`` | once issued | see below | ``restricted`` datasets naming it |

``ds_<code>`` is a member of ``datashare_government`` for an active government recipient, else of
``datashare_public`` only (an inactive recipient reads open data only, as over HTTP).

Open and shared datasets live in the share's database; a restricted dataset lives in the database of
each recipient named (:mod:`datashare.share.sqlshare_places`), on which only that recipient's role has
CONNECT, so no other role sees even its catalog entries. Grants go on the view ``<id>`` only. A
PostgreSQL view reads its table with its owner's rights, so the
version tables ``<id>__v<N>`` and the bookkeeping table stay closed to everyone but the publisher: an
older version cannot be read by name. :func:`apply_grants` makes the share match the spec and the
registry on every run: PUBLIC loses everything on the schema, the view and the tables; the view is
granted to exactly the roles due; roles that lost their right (a recipient removed from a spec, a
dataset reclassified, a recipient made inactive or removed from the registry) lose their grant or
membership. Recipient roles are created ``NOLOGIN`` until a login is issued.

Role names are cluster-wide. The two group roles and every role whose name starts with ``ds_`` (after
:data:`ROLE_PREFIX`) belong to this module: it revokes what they should not have. Grants to any other role are left
alone and logged as warnings. A prefix (:data:`ROLE_PREFIX`, or the environment variable
``DATASHARE_SQL_ROLE_PREFIX``) keeps apart the roles of tests, or of two shares in one cluster.

Passwords are random, returned once and never stored here. They are hashed on the client into a
SCRAM verifier (libpq's ``PQencryptPasswordConn``), so the plain password never reaches the server
or its statement log; the verifier is sent as a quoted literal (``psycopg.sql.Literal``).

SQLite, the embedded share, has no roles: it is for local use by whoever can read the file.
:func:`apply_grants` does nothing there, and issuing a login is refused.
"""

from __future__ import annotations

import logging
import os
import re
import secrets
from dataclasses import dataclass
from typing import TYPE_CHECKING

from datashare.access import Recipient, Registry
from datashare.exceptions import ConfigError, PublishBusy, PublishError
from datashare.share.sqlshare import BOOKKEEPING, DATASET_ID, _check_name
from datashare.share.sqlshare_pg import PART_DIGITS, one
from datashare.share.target import ShareTarget
from datashare.spec import IDENTIFIER, DatasetSpec, Sharing

if TYPE_CHECKING:
    import psycopg
    from psycopg import sql

log = logging.getLogger(__name__)

ROLE_PREFIX: str | None = None
"""Prepended to every role name. None: ``$DATASHARE_SQL_ROLE_PREFIX``, by default empty."""
PUBLIC_GROUP = "datashare_public"
GOVERNMENT_GROUP = "datashare_government"
RECIPIENT_PREFIX = "ds_"
RECIPIENT_CODE = re.compile(IDENTIFIER)
_PREFIX = re.compile(r"^([a-z][a-z0-9_]{0,11})?$")
_LOCK_KEY = "datashare:sqlroles"
_TERMINATE_WAIT_MS = 5000


@dataclass(frozen=True)
class LoginRevocation:
    """What revoking a SQL login did."""

    role: str
    existed: bool
    """False when the recipient never had a role in this cluster: nothing to revoke."""
    sessions_ended: int


def _prefix() -> str:
    prefix = ROLE_PREFIX if ROLE_PREFIX is not None else os.environ.get("DATASHARE_SQL_ROLE_PREFIX", "")
    if not _PREFIX.fullmatch(prefix):
        raise ConfigError(
            f"invalid SQL role prefix {prefix!r} (DATASHARE_SQL_ROLE_PREFIX): it must match {_PREFIX.pattern}"
        )
    return prefix


def public_role() -> str:
    """The group role that reads open datasets."""
    return f"{_prefix()}{PUBLIC_GROUP}"


def government_role() -> str:
    """The group role that reads shared datasets."""
    return f"{_prefix()}{GOVERNMENT_GROUP}"


def recipient_role(code: str) -> str:
    """The login role of a recipient; the code is checked before it can reach SQL."""
    if not isinstance(code, str) or not RECIPIENT_CODE.fullmatch(code):
        raise ConfigError(f"invalid recipient code {code!r}: it must match {RECIPIENT_CODE.pattern}")
    return f"{_prefix()}{RECIPIENT_PREFIX}{code}"


def _group_of(recipient: Recipient) -> str:
    """The one group a recipient role belongs to directly: inactive recipients read open data only."""
    return government_role() if recipient.kind == "government" and recipient.active else public_role()


def share_readers(spec: DatasetSpec, registry: Registry) -> tuple[str, ...] | None:
    """Where a dataset lives in a PostgreSQL share, as :func:`datashare.share.sqlshare.publish_release` takes it.

    None for an open or shared dataset (the share's own database, read through the group roles); for a
    restricted one, the codes of the active, registered recipients its spec names (each one's database).
    An empty tuple means nobody may read it: it must not be in the share at all.
    """
    if spec.classification.sharing != Sharing.restricted:
        return None
    codes = []
    for code in spec.recipients:
        recipient = registry.get(code)
        if recipient is None:
            log.warning("Dataset %s names recipient %r, which the registry does not list: not granted", spec.id, code)
        elif not recipient.active:
            log.info("Dataset %s names inactive recipient %s: not granted", spec.id, code)
        else:
            codes.append(code)
    return tuple(sorted(set(codes)))


def _readers(spec: DatasetSpec, registry: Registry) -> list[str]:
    """Roles granted SELECT on the dataset's view."""
    sharing = spec.classification.sharing
    if sharing == Sharing.open:
        return [public_role()]
    if sharing == Sharing.shared:
        return [government_role()]
    return [recipient_role(code) for code in share_readers(spec, registry) or ()]


class _Run:
    """Runs statements on one connection and keeps their text for the log."""

    def __init__(self, conn: psycopg.Connection) -> None:
        self.conn = conn
        self.statements: list[str] = []

    def __call__(self, statement: sql.Composed | sql.SQL) -> None:
        text = statement.as_string(self.conn)
        self.conn.execute(statement)
        self.statements.append(text)
        log.debug("%s", text)


_ROLES_SQL = """
SELECT rolname, rolcanlogin, rolsuper OR rolcreaterole OR rolcreatedb OR rolreplication OR rolbypassrls
FROM pg_roles WHERE rolname = ANY(%s) OR starts_with(rolname, %s)
"""
_MEMBERS_SQL = """
SELECT g.rolname, m.rolname FROM pg_auth_members a
JOIN pg_roles g ON g.oid = a.roleid JOIN pg_roles m ON m.oid = a.member
WHERE g.rolname = ANY(%s)
"""


def _sync_roles(run: _Run, recipients: list[Recipient], *, prune: bool) -> list[str]:
    """Create the group roles and the recipients' roles, and set each one's group membership.

    With ``prune`` (the whole registry is given), datashare roles of recipients no longer registered
    lose their memberships and their login.

    Returns:
        Every datashare role now in the cluster, sorted.
    """
    from psycopg import errors, sql

    conn = run.conn
    groups = [public_role(), government_role()]
    wanted = {recipient_role(r.code): r for r in recipients}
    found = {
        name: (login, elevated)
        for name, login, elevated in conn.execute(
            _ROLES_SQL, ([*groups, *wanted], f"{_prefix()}{RECIPIENT_PREFIX}")
        ).fetchall()
    }
    for name in [*groups, *wanted]:
        if name in found:
            if found[name][1]:
                raise PublishError(
                    f"role {name} exists with elevated attributes (superuser, createrole, createdb, replication "
                    "or bypassrls): it is not a datashare role; rename it or choose another ROLE_PREFIX"
                )
            continue
        try:
            with conn.transaction():  # a savepoint: another share in this cluster may create it at the same time
                run(sql.SQL("CREATE ROLE {} NOLOGIN").format(sql.Identifier(name)))
        except errors.DuplicateObject:
            log.debug("Role %s was created concurrently", name)
    members: dict[str, set[str]] = {}
    for group, member in conn.execute(_MEMBERS_SQL, (groups,)).fetchall():
        members.setdefault(member, set()).add(group)
    desired = {government_role(): {public_role()}, **{name: {_group_of(r)} for name, r in wanted.items()}}
    if prune:
        for name, (login, _) in sorted(found.items()):
            if name in desired or name in groups:
                continue
            log.warning("Role %s has no recipient in the registry: it loses its groups and its login", name)
            desired[name] = set()
            if login:
                run(sql.SQL("ALTER ROLE {} NOLOGIN").format(sql.Identifier(name)))
    for name, groups_due in sorted(desired.items()):
        have = members.get(name, set())
        for group in sorted(groups_due - have):
            run(sql.SQL("GRANT {} TO {}").format(sql.Identifier(group), sql.Identifier(name)))
        for group in sorted(have - groups_due):
            run(sql.SQL("REVOKE {} FROM {}").format(sql.Identifier(group), sql.Identifier(name)))
    return sorted({*found, *groups, *wanted})


_TABLES_SQL = """
SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE n.nspname = %s AND c.relkind IN ('r', 'p') AND (c.relname = %s OR c.relname ~ %s) ORDER BY 1
"""
_FOREIGN_GRANTS_SQL = """
SELECT c.relname, r.rolname, a.privilege_type
FROM pg_class c CROSS JOIN LATERAL aclexplode(c.relacl) a JOIN pg_roles r ON r.oid = a.grantee
WHERE c.oid = ANY(%s::regclass[]) AND a.grantee <> c.relowner AND NOT (r.rolname = ANY(%s)) ORDER BY 1, 2, 3
"""


def _idents(names: list[str]) -> sql.Composable:
    from psycopg import sql

    return sql.SQL(", ").join(map(sql.Identifier, names))


def _lock_down(
    run: _Run, dataset_id: str, schema: str, readers: list[str], managed: list[str], usage: list[str]
) -> None:
    """Set the grants of the schema, the view and the tables of one dataset, in the running transaction.

    Every privilege of PUBLIC and of the datashare roles is revoked, then what is due is granted:
    the transaction commits the end state only, so no reader sees a gap. ``usage`` gets USAGE on the
    schema (it only lets a role resolve names; what it may read is the view's grant).
    """
    from psycopg import sql

    conn = run.conn
    s = sql.Identifier(schema)
    view = sql.Identifier(schema, dataset_id)
    kind = conn.execute("SELECT relkind FROM pg_class WHERE oid = to_regclass(%s)", (view.as_string(conn),)).fetchone()
    if kind is None or kind[0] != "v":
        raise PublishError(f"view {schema}.{dataset_id} does not exist in the SQL share: publish the dataset first")
    everyone = sql.SQL(", ").join([sql.SQL("PUBLIC"), _idents(managed)])

    run(sql.SQL("REVOKE ALL ON SCHEMA {} FROM PUBLIC").format(s))
    run(sql.SQL("REVOKE CREATE ON SCHEMA {} FROM {}").format(s, _idents(managed)))
    run(sql.SQL("GRANT USAGE ON SCHEMA {} TO {}").format(s, _idents(usage)))

    run(sql.SQL("REVOKE ALL ON TABLE {} FROM {}").format(view, everyone))
    if readers:
        run(sql.SQL("GRANT SELECT ON TABLE {} TO {}").format(view, _idents(readers)))
    else:
        log.warning("View %s.%s is readable by nobody: none of its named recipients is active", schema, dataset_id)

    # Version tables, leftover load tables and data-file parts: the id matched DATASET_ID (no regex metacharacters).
    pattern = f"^{dataset_id}__(v[0-9]+(__load)?|p[0-9a-f]{{{PART_DIGITS}}})$"
    tables = [name for (name,) in conn.execute(_TABLES_SQL, (schema, BOOKKEEPING, pattern)).fetchall()]
    relations = [view] + [sql.Identifier(schema, t) for t in tables]
    if tables:
        run(sql.SQL("REVOKE ALL ON TABLE {} FROM {}").format(sql.SQL(", ").join(relations[1:]), everyone))
    for relation, role, privilege in conn.execute(
        _FOREIGN_GRANTS_SQL, ([r.as_string(conn) for r in relations], managed)
    ).fetchall():
        log.warning(
            "%s.%s: %s is also granted to role %s, which datashare does not manage", schema, relation, privilege, role
        )


_DATABASE_ACL_SQL = """
SELECT CASE WHEN a.grantee = 0 THEN 'PUBLIC' ELSE pg_get_userbyid(a.grantee) END, a.privilege_type
FROM pg_database d CROSS JOIN LATERAL aclexplode(coalesce(d.datacl, acldefault('d', d.datdba))) a
WHERE d.datname = %s AND a.grantee <> d.datdba ORDER BY 1, 2
"""


def _lock_databases(run: _Run, main: str, registry: Registry, managed: list[str]) -> dict[str, str]:
    """Give each recipient database of the share CONNECT for its recipient only (none if inactive or gone).

    Database privileges are cluster-wide, so this runs from the share's database. A database already
    right is left untouched (no needless rewrite of ``pg_database``).

    Returns:
        The share's recipient databases, by recipient code.
    """
    from psycopg import sql

    from datashare.share.sqlshare_places import ours

    databases = ours(run.conn, main)
    for code, name in sorted(databases.items()):
        recipient = registry.get(code)
        role = recipient_role(code)
        due = [(role, "CONNECT")] if recipient and recipient.active else []
        if run.conn.execute(_DATABASE_ACL_SQL, (name,)).fetchall() == due:
            continue
        database = sql.Identifier(name)
        everyone = sql.SQL(", ").join([sql.SQL("PUBLIC"), _idents(managed)])
        run(sql.SQL("REVOKE ALL ON DATABASE {} FROM {}").format(database, everyone))
        if due:
            run(sql.SQL("GRANT CONNECT ON DATABASE {} TO {}").format(database, sql.Identifier(role)))
        else:
            log.warning("Recipient %s is inactive or unregistered: its role may no longer connect to %s", code, name)
    return databases


def apply_grants(*, spec: DatasetSpec, registry: Registry, target: ShareTarget | str) -> list[str]:
    """Make the grants on a published dataset match its classification and the registry.

    Idempotent: run after every publish, and on runs that publish nothing, so a reclassified
    dataset or a changed registry takes effect on the next run. Roles, database privileges and an open
    or shared dataset's grants change in one transaction in the share's database; a restricted
    dataset's grants then change in one transaction in each reader's database (it is published there,
    see :mod:`datashare.share.sqlshare_places`). On SQLite (no roles) nothing is done and ``[]`` is returned.

    Returns:
        The statements run, for the log (they hold no secrets).
    """
    _check_name("dataset_id", spec.id, DATASET_ID)
    target = ShareTarget.of(target)
    if not target.has_roles:
        log.debug("SQL share %s is SQLite: no roles, no grants", target.redacted)
        return []
    from datashare.share.sqlshare_places import main_database

    schema = target.schema
    codes = share_readers(spec, registry)
    readers = _readers(spec, registry)
    import psycopg

    statements: list[str] = []
    try:
        with psycopg.connect(target.libpq_uri) as conn:  # one transaction, committed when the block ends
            run = _Run(conn)
            conn.execute("SELECT pg_advisory_xact_lock(hashtextextended(%s, 0))", (_LOCK_KEY,))
            managed = _sync_roles(run, list(registry.recipients), prune=True)
            databases = _lock_databases(run, main_database(target), registry, managed)
            if codes is None:
                groups = [public_role(), government_role()]
                _lock_down(run, spec.id, schema, readers, managed, usage=groups)
            statements += run.statements
        for code in codes or ():
            if code not in databases:
                raise PublishError(f"{schema}.{spec.id} is not in the database of {code}: publish the dataset first")
            with psycopg.connect(target.at(databases[code]).libpq_uri) as conn:
                run = _Run(conn)
                role = recipient_role(code)
                _lock_down(run, spec.id, schema, [role], managed, usage=[role])
                statements += run.statements
    except psycopg.OperationalError as exc:
        raise PublishBusy(
            f"SQL share unavailable while granting {schema}.{spec.id} at {target.redacted}: {exc}"
        ) from exc
    except psycopg.Error as exc:
        raise PublishError(f"granting {schema}.{spec.id} at {target.redacted} failed: {exc}") from exc
    log.info(
        "Grants on %s.%s (%s): readers %s%s; %s statements",
        schema,
        spec.id,
        spec.classification.sharing.value,
        readers,
        f" in their own databases {[databases[c] for c in codes]}" if codes else "",
        len(statements),
    )
    return statements


def _postgres_only(target: ShareTarget | str, action: str) -> str:
    """The libpq URI of a PostgreSQL share; SQLite has no logins to issue or revoke."""
    target = ShareTarget.of(target)
    if not target.has_roles:
        raise ConfigError(
            f"cannot {action}: the SQL share {target.redacted} is SQLite, which has no roles or logins "
            "(it is for local use); point the share connection at PostgreSQL"
        )
    return target.libpq_uri


def _new_password(conn: psycopg.Connection, role: str) -> tuple[str, str]:
    """A random password and its verifier, hashed on the client with the server's password_encryption."""
    password = secrets.token_urlsafe(24)
    verifier = conn.pgconn.encrypt_password(password.encode(), role.encode(), None).decode("ascii")
    return password, verifier


def issue_sql_login(*, recipient: Recipient, target: ShareTarget | str) -> str:
    """Create or update the recipient's login role with a new random password.

    Any password issued before stops working. The role keeps (or gets) its group membership.

    Returns:
        The password: show it once; it is stored nowhere.
    """
    role = recipient_role(recipient.code)
    if not recipient.active:
        raise ConfigError(f"recipient {recipient.code} is inactive: no SQL login is issued to it")
    uri = _postgres_only(target, f"issue a SQL login to {recipient.code}")
    import psycopg
    from psycopg import sql

    try:
        with psycopg.connect(uri) as conn:
            run = _Run(conn)
            conn.execute("SELECT pg_advisory_xact_lock(hashtextextended(%s, 0))", (_LOCK_KEY,))
            _sync_roles(run, [recipient], prune=False)
            password, verifier = _new_password(conn, role)
            conn.execute(  # not through run: the verifier stays out of the statement log
                sql.SQL("ALTER ROLE {} WITH LOGIN PASSWORD {}").format(sql.Identifier(role), sql.Literal(verifier))
            )
    except psycopg.OperationalError as exc:
        raise PublishBusy(f"SQL share unavailable while issuing a login to {role}: {exc}") from exc
    except psycopg.Error as exc:
        raise PublishError(f"issuing a SQL login to {role} failed: {exc}") from exc
    log.info("Issued SQL login %s (statements: %s)", role, run.statements)
    return password


def revoke_sql_login(*, recipient: Recipient, target: ShareTarget | str) -> LoginRevocation:
    """Take away the recipient's login: NOLOGIN, an unknown random password, its sessions ended.

    The role and its grants stay (it is NOLOGIN, like a role never issued), so issuing again restores
    access without re-granting.
    """
    role = recipient_role(recipient.code)
    uri = _postgres_only(target, f"revoke the SQL login of {recipient.code}")
    import psycopg
    from psycopg import sql

    try:
        with psycopg.connect(uri, autocommit=True) as conn:
            if conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (role,)).fetchone() is None:
                log.info("Role %s does not exist: no SQL login to revoke", role)
                return LoginRevocation(role=role, existed=False, sessions_ended=0)
            _, verifier = _new_password(conn, role)
            conn.execute(
                sql.SQL("ALTER ROLE {} WITH NOLOGIN PASSWORD {}").format(sql.Identifier(role), sql.Literal(verifier))
            )
            # After NOLOGIN is committed, so a terminated session cannot log in again.
            ended = one(
                conn.execute(
                    "SELECT count(*) FILTER (WHERE pg_terminate_backend(pid, %s)) "
                    "FROM pg_stat_activity WHERE usename = %s",
                    (_TERMINATE_WAIT_MS, role),
                )
            )[0]
    except psycopg.OperationalError as exc:
        raise PublishBusy(f"SQL share unavailable while revoking the login of {role}: {exc}") from exc
    except psycopg.Error as exc:
        raise PublishError(f"revoking the SQL login of {role} failed: {exc}") from exc
    log.info("Revoked SQL login %s; %s session(s) ended", role, ended)
    return LoginRevocation(role=role, existed=True, sessions_ended=int(ended))
