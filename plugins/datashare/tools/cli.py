"""``datashare``: run, inspect and verify datasets without Airflow, and run the demo through Airflow.

datashare demo [--next-day] [--reset]   generate the monitoring unit, run its DAG in Airflow, show the release
datashare run ID                         run one dataset in this process (no Airflow)
datashare list                           datasets with their latest release
datashare releases ID                    releases of a dataset
datashare show ID [--version N]          one release: files, checksums, validation, SQL view
datashare verify [ID] [--version N] [--anchor SEQ:SHA256]   re-hash files, walk the ledger chain, match releases to it
datashare rules ID                       every rule of the dataset's suite in plain words (vi, en)
datashare history ID [--page-size N]     write the dataset's validation history pages; print the index path
datashare withdraw ID --version N --reason TEXT   hide a release from consumers (files kept, ledger entry)
datashare grant RECIPIENT [--sql] [--http] [--profile FILE] [--expires-days N]
                                             issue an HTTP token (or a Delta Sharing profile) and/or a SQL login
datashare revoke RECIPIENT [--token-id ID]   revoke a recipient's tokens and SQL login (or one token)
datashare specs [FILE ...]               check spec files
datashare pools                          Airflow pools of the source units, for `airflow pools import`
datashare serve [--host H] [--port P]    the data catalog (pages, JSON API, DCAT, downloads) on one address
datashare access-log [--from D] [--to D] [--dataset ID] [--recipient CODE] [--json]   downloads served
"""

from __future__ import annotations

import argparse
import atexit
import contextlib
import json
import logging
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

from datashare.exceptions import DatashareError, ReleaseError
from datashare.settings import Settings
from datashare.spec import load_spec, load_specs

if TYPE_CHECKING:
    from datashare.share.target import ShareTarget

log = logging.getLogger("datashare")


def _print_release(summary: dict[str, Any], out: Any = sys.stdout) -> None:
    lines = [
        f"dataset      {summary['dataset_id']}",
        f"version      v{summary['version']}",
        f"rows         {summary['rows']:,}",
        f"path         {summary['path']}",
    ]
    for f in summary["files"]:
        lines.append(f"file         {f['path']}")
        lines.append(f"  sha256     {f['sha256']}  ({f['bytes']:,} bytes, {f['rows']:,} rows)")
    lines += [
        f"manifest     sha256 {summary['manifest_sha256']}",
        f"validation   {summary['validation']}",
        f"report       {summary['report']}",
        f"sql share    view {summary['sql_view']}",
    ]
    target = (summary.get("sql") or {}).get("target")  # a run's summary names where the view was published
    if target:
        lines[-1] += f" in {target}"
    print("\n".join(lines), file=out)


def _store(settings: Settings) -> Any:
    from datashare.store import ReleaseStore

    return ReleaseStore.open(settings.release_uri)


def cmd_run(args: argparse.Namespace, settings: Settings) -> int:
    from datashare.pipeline.stages import run_dataset

    summary = run_dataset(args.dataset, settings=settings)
    if summary["created"]:
        print(f"Published a new release of {args.dataset}:")
    else:
        print(f"No new version of {args.dataset} ({summary['reason']}); the latest release is:")
    _print_release(summary)
    return 0


def cmd_list(args: argparse.Namespace, settings: Settings) -> int:
    specs, errors = load_specs(settings.datasets_dir)
    store = _store(settings)
    print(f"{'dataset':36} {'sharing':10} {'latest':>7} {'rows':>12}  title")
    damaged = 0
    for dataset_id, spec in specs.items():
        try:
            latest = store.latest(dataset_id)
        except ReleaseError as exc:  # one damaged dataset never hides the others
            damaged += 1
            print(f"{dataset_id:36} {spec.classification.sharing.value:10} {'?':>7} {'?':>12}  unreadable: {exc}")
            continue
        version = f"v{latest.version}" if latest else "-"
        rows = f"{latest.rows:,}" if latest else "-"
        print(f"{dataset_id:36} {spec.classification.sharing.value:10} {version:>7} {rows:>12}  {spec.title.vi}")
    for path, err in errors.items():
        print(f"! {path.name}: invalid spec (run `datashare specs` for details): {str(err).splitlines()[1]}")
    if damaged:
        print(f"! {damaged} dataset(s) could not be read: run `datashare verify` for details")
    return 1 if errors or damaged else 0


def cmd_releases(args: argparse.Namespace, settings: Settings) -> int:
    store = _store(settings)
    versions = store.versions(args.dataset)
    if not versions:
        print(f"{args.dataset} has no release yet")
        return 1
    print(f"{'version':>7}  {'committed_at':22} {'rows':>12}  validation  manifest sha256")
    for v in versions:
        try:
            r = store.release(args.dataset, v)
        except ReleaseError as exc:
            print(f"{'v' + str(v):>7}  unreadable: {exc}")
            continue
        verdict = "passed" if (r.manifest["datashare"].get("validation") or {}).get("success") else "-"
        committed = r.record["committed_at"]
        print(f"{'v' + str(v):>7}  {committed:22} {r.rows:>12,}  {verdict:10}  {r.record['manifest_sha256']}")
    return 0


def cmd_show(args: argparse.Namespace, settings: Settings) -> int:
    from datashare.pipeline.context import RunContext
    from datashare.pipeline.stages import describe_release

    store = _store(settings)
    version = args.version or (store.versions(args.dataset) or [None])[-1]
    if version is None:
        print(f"{args.dataset} has no release yet")
        return 1
    ctx = RunContext.create(args.dataset, "show", settings=settings)
    summary = describe_release(ctx, store.release(args.dataset, version))
    if args.json:
        print(json.dumps(summary, indent=2, ensure_ascii=False))
    else:
        _print_release(summary)
    return 0


def cmd_verify(args: argparse.Namespace, settings: Settings) -> int:
    from datashare.store import Anchor, audit, repair

    try:
        anchors = [Anchor.parse(text, "--anchor") for text in args.anchor]
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    store = _store(settings)
    if args.repair:
        for line in repair(store, args.dataset):
            print(f"REPAIRED {line}")
    datasets = [args.dataset] if args.dataset else store.datasets()
    checked = sum(1 if args.version else len(store.versions(d)) for d in datasets)
    findings = audit(store, dataset_id=args.dataset, version=args.version, anchors=anchors)
    for f in findings:
        print(f"FAIL {f}")
    print(
        f"verified {checked} release(s) of {len(datasets)} dataset(s) and the ledger: "
        + ("all intact" if not findings else f"{len(findings)} finding(s)")
    )
    head = store.ledger.head()
    if head is not None and not findings:
        print(f"ledger head {head} (keep it; --anchor {head} later proves these entries unchanged)")
    return 1 if findings else 0


def cmd_rules(args: argparse.Namespace, settings: Settings) -> int:
    from datashare.quality.validation import render_rules_text

    spec = load_spec(settings.datasets_dir / f"{args.dataset}.yaml")
    suite = settings.expectations_dir / f"{spec.suite_name}.json"
    rules = render_rules_text(suite)
    print(f"{spec.id}: {len(rules)} rules in expectations/{suite.name}")
    print(f"{spec.title.vi} / {spec.title.en}")
    for number, (rule_id, vi, en) in enumerate(rules, start=1):
        print(f"\n{number:>3}. {vi}\n     {en}\n     [{rule_id}]")
    return 0


def cmd_history(args: argparse.Namespace, settings: Settings) -> int:
    from datashare.quality.history import build_history

    store = _store(settings)
    result = build_history(store, args.dataset, page_size=args.page_size)
    print(
        f"{args.dataset}: {result.runs:,} validation run(s) ({result.passed:,} passed, {result.failed:,} failed) "
        f"in {len(result.pages)} page(s)"
    )
    print(store.backend.describe(result.index_key))
    return 0


def cmd_withdraw(args: argparse.Namespace, settings: Settings) -> int:
    from datashare.exceptions import PublishError, SpecError
    from datashare.pipeline.context import RunContext
    from datashare.pipeline.stages import sync_sql_share
    from datashare.store import built_on, withdraw

    store = _store(settings)
    entry = withdraw(store, args.dataset, args.version, args.reason)
    print(f"Withdrew {args.dataset} v{args.version} (ledger entry {entry.seq}): {entry.body['reason']}")
    print("Its files and validation report stay in the store for auditors.")
    specs, _errors = load_specs(settings.datasets_dir)
    for derived in built_on(store, specs.values(), args.dataset, args.version):
        print(
            f"Note: {derived.dataset_id} v{derived.version} was built from {args.dataset} v{args.version} and is "
            f"still served: run {derived.dataset_id} again (it builds on the releases not withdrawn) or withdraw it."
        )
    try:
        ctx = RunContext.create(args.dataset, f"withdraw__{entry.seq}", settings=settings)
    except SpecError as exc:
        print(f"SQL share not changed: the dataset's spec cannot be loaded ({exc}).")
        return 0
    try:
        shared = sync_sql_share(ctx)
    except PublishError as exc:
        print(f"SQL share not changed yet ({exc}); the next run of {args.dataset} moves it.", file=sys.stderr)
        return 1
    if shared.get("published"):
        print(
            f"SQL share: view {shared['view']} now serves v{shared['version']}; dropped {', '.join(shared['dropped'])}."
        )
    else:
        print(f"SQL share: {shared['reason']}.")
    return 0


def _recipient(settings: Settings, code: str) -> Any:
    """The registered recipient with this code; the error names the registry file."""
    from datashare.access import load_registry
    from datashare.exceptions import ConfigError

    registry = load_registry(settings.recipients_file)
    recipient = registry.get(code)
    if recipient is None:
        known = ", ".join(r.code for r in registry.recipients) or "none"
        raise ConfigError(f"{settings.recipients_file}: no recipient {code!r} is registered (registered: {known})")
    return recipient


def _share_with_roles(settings: Settings, required: bool) -> ShareTarget | None:
    """The SQL share, opened once, if it has roles; SQLite has none, which is an error only if SQL was asked for."""
    from datashare.exceptions import ConfigError

    target = settings.share_target()
    if target.has_roles:
        return target
    if required:
        raise ConfigError(
            f"the SQL share is SQLite, which has no logins; define connection {settings.share_conn_id!r} "
            "pointing at the PostgreSQL share"
        )
    print("note: the SQL share is the embedded SQLite file (no roles): no SQL login is involved")
    return None


def cmd_grant(args: argparse.Namespace, settings: Settings) -> int:
    import hashlib
    from datetime import UTC, datetime, timedelta

    from datashare.access import Tokens
    from datashare.exceptions import ConfigError
    from datashare.share.sqlroles import issue_sql_login, recipient_role
    from datashare.share.sqlshare_places import agency_database
    from datashare.store import Ledger

    recipient = _recipient(settings, args.recipient)
    if not recipient.active:
        raise ConfigError(f"{settings.recipients_file}: recipient {recipient.code} is inactive; no credentials issued")
    profile: Path | None = args.profile
    if profile is not None and args.sql and not args.http:
        raise ConfigError("--profile holds an HTTP token: add --http, or leave out --sql")
    if profile is not None and profile.exists():
        raise ConfigError(f"{profile}: already exists; a profile holds a secret, so it is never overwritten")
    days = args.expires_days if args.expires_days is not None else (PROFILE_DAYS if profile is not None else None)
    expires_at = datetime.now(UTC).replace(microsecond=0) + timedelta(days=days) if days is not None else None
    want_http, want_sql = args.http or not args.sql, args.sql or not args.http
    target = _share_with_roles(settings, required=args.sql) if want_sql else None
    store = _store(settings)
    issued: dict[str, Any] = {}
    shown: list[str] = []
    try:  # whatever was issued is recorded, even if the next credential fails
        if target is not None:
            password = issue_sql_login(recipient=recipient, target=target)
            where = f"{target.url.host or 'localhost'}:{target.url.port or 5432}/{target.url.database}"
            issued.update(sql_role=recipient_role(recipient.code), sql_target=where)
            shown += [
                f"SQL login   role {issued['sql_role']} on {where}, schema {settings.share_schema}",
                f"  password  {password}",
                f"  restricted datasets granted to {recipient.code}: database "
                f"{agency_database(target.url.database or '', recipient.code)}, same schema",
            ]
        if want_http:
            token = Tokens(store.backend).issue(recipient, expires_at=expires_at)
            issued["token_id"] = hashlib.sha256(token.encode("utf-8")).hexdigest()[:12]
            if expires_at is not None:
                issued["token_expires_at"] = expires_at.isoformat().replace("+00:00", "Z")
            if profile is not None:
                _write_profile(profile, settings.sharing_endpoint, token, expires_at)
                issued["profile_endpoint"] = settings.sharing_endpoint
                shown += [
                    f"Delta Sharing profile {profile} (endpoint {settings.sharing_endpoint})",
                    f"  token id  {issued['token_id']}"
                    + (f", expires {issued['token_expires_at']}" if expires_at is not None else ""),
                ]
            else:
                shown += [
                    f"HTTP token  {token}",
                    f"  id        {issued['token_id']} (header 'Authorization: Bearer ...')"
                    + (f", expires {issued['token_expires_at']}" if expires_at is not None else ""),
                ]
    finally:
        if issued:
            entry = Ledger(store.backend).append(
                "recipient_granted", dataset_id=None, recipient=recipient.code, kind=recipient.kind, **issued
            )
    if profile is not None:
        print(f"Credentials of {recipient.code} ({recipient.name.en}); hand the profile file over as a secret.")
    else:
        print(f"Credentials of {recipient.code} ({recipient.name.en}), shown once: they are stored nowhere.")
    print("\n".join(shown))
    print(f"Recorded in the ledger (entry {entry.seq}, recipient_granted; no secrets).")
    return 0


PROFILE_DAYS = 90
"""Lifetime of a token issued with ``--profile`` unless ``--expires-days`` says otherwise."""


def _write_profile(path: Path, endpoint: str, token: str, expires_at: Any) -> None:
    """A Delta Sharing profile file (PROTOCOL.md, "Profile File Format"), readable by its owner only."""
    import os

    profile: dict[str, Any] = {"shareCredentialsVersion": 1, "endpoint": endpoint, "bearerToken": token}
    if expires_at is not None:
        profile["expirationTime"] = expires_at.isoformat().replace("+00:00", "Z")
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(json.dumps(profile, indent=2) + "\n")


def cmd_revoke(args: argparse.Namespace, settings: Settings) -> int:
    from datashare.access import Tokens
    from datashare.exceptions import ConfigError
    from datashare.share.sqlroles import revoke_sql_login
    from datashare.store import Ledger

    recipient = _recipient(settings, args.recipient)
    store = _store(settings)
    revoked: dict[str, Any] = {}
    try:  # whatever was revoked is recorded, even if the SQL share then fails
        revoked["tokens_revoked"] = Tokens(store.backend).revoke(recipient.code, args.token_id)
        if args.token_id is not None:
            revoked["token_id"] = args.token_id
            if not revoked["tokens_revoked"]:
                revoked.clear()
                raise ConfigError(f"recipient {recipient.code} has no active token with id {args.token_id!r}")
        else:
            target = _share_with_roles(settings, required=False)
            if target is not None:
                result = revoke_sql_login(recipient=recipient, target=target)
                revoked.update(sql_role=result.role, sql_login_revoked=result.existed)
                revoked["sessions_ended"] = result.sessions_ended
    finally:
        if revoked:
            entry = Ledger(store.backend).append(
                "recipient_revoked", dataset_id=None, recipient=recipient.code, **revoked
            )
    print(f"Revoked {revoked['tokens_revoked']} HTTP token(s) of {recipient.code}.")
    if "sql_role" in revoked:
        state = "login revoked" if revoked["sql_login_revoked"] else "had no login"
        print(f"SQL role {revoked['sql_role']}: {state}; {revoked['sessions_ended']} session(s) ended.")
    print(f"Recorded in the ledger (entry {entry.seq}, recipient_revoked).")
    return 0


def cmd_specs(args: argparse.Namespace, settings: Settings) -> int:
    """Check spec files, each on its own, and list every problem; non-zero when there is one."""
    if args.doc:
        from datashare.spec import fields_markdown

        print(fields_markdown(), end="")
        return 0
    from datashare.spec import load_spec_files, spec_problems

    folder = settings.datasets_dir
    if args.files:
        specs, errors = load_spec_files([Path(p) for p in args.files])
    elif not folder.is_dir():
        print(f"{folder}: no such folder (DATASHARE_HOME is {settings.home})")
        return 1
    else:
        specs, errors = load_specs(folder)
    problems = spec_problems(specs, errors, folder, settings.expectations_dir)
    for dataset_id in specs:
        path = folder / f"{dataset_id}.yaml"
        if path not in problems:
            print(f"{path}: ok")
    for messages in problems.values():
        for message in messages:
            print(message)
    checked = len(specs) + len(errors)
    if not checked:
        print(f"no spec files (*.yaml) in {folder}")
        return 1
    if problems:
        print(f"{len(problems)} of {checked} spec file(s) have problems")
        return 1
    return 0


def cmd_pools(args: argparse.Namespace, settings: Settings) -> int:
    specs, _ = load_specs(settings.datasets_dir)
    pools: dict[str, dict[str, Any]] = {}
    for spec in specs.values():
        if spec.source.kind == "derived":
            continue
        pool = pools.setdefault(spec.pool, {"slots": 0, "description": f"Connections to unit {spec.source.unit}"})
        pool["slots"] = max(pool["slots"], spec.source.max_connections)
    print(json.dumps(pools, indent=2))
    return 0


def cmd_demo(args: argparse.Namespace, settings: Settings) -> int:
    from datashare.tools.demo import run_demo

    return run_demo(settings, next_day=args.next_day, reset=args.reset)


def cmd_seed_units(args: argparse.Namespace, settings: Settings) -> int:
    """Generate the simulated units into the databases their connections point to (docker-compose's init)."""
    from datashare.tools.seed import UNITS, seed_units

    for conn_id, made in seed_units(args.conn_id or None, keep_existing=args.keep_existing).items():
        print(f"{conn_id} ({UNITS[conn_id]}): {made}", flush=True)
    return 0


def cmd_serve(args: argparse.Namespace, settings: Settings) -> int:
    """Serve the catalog standalone (Airflow mounts the same app under /datashare)."""
    import uvicorn

    from datashare.catalog.app import create_app

    log.warning("Datashare catalog on http://%s:%s/ (release store %s)", args.host, args.port, settings.release_uri)
    uvicorn.run(
        create_app(settings),
        host=args.host,
        port=args.port,
        log_level="info" if args.verbose else "warning",
        proxy_headers=False,  # the catalog reads X-Forwarded-For itself, from DATASHARE_CATALOG_TRUSTED_PROXIES only
    )
    return 0


def cmd_access_log(args: argparse.Namespace, settings: Settings) -> int:
    """Print the downloads the catalog recorded between two UTC dates (today by default)."""
    from collections import Counter
    from datetime import UTC, datetime

    from datashare.access.log import read
    from datashare.exceptions import ConfigError

    today = datetime.now(UTC).date()
    start, end = args.start or args.end or today, args.end or args.start or today
    if end < start:
        raise ConfigError(f"--to {end} is before --from {start}")
    if (end - start).days > 366:
        raise ConfigError(f"--from {start} --to {end} spans more than a year: read it in parts")
    entries = [
        e
        for e in read(_store(settings).backend, start, end)
        if (args.dataset is None or e.get("dataset_id") == args.dataset)
        and (args.recipient is None or e.get("recipient") == args.recipient)
    ]
    if args.json:
        for entry in entries:
            print(json.dumps(entry, ensure_ascii=False, sort_keys=True))
        return 0
    for e in entries:
        print(
            f"{e['at']}  {e.get('recipient', '?'):<20} {e.get('dataset_id', '?')} v{e.get('version', '?')} "
            f"{e.get('file', '?')}{'  from ' + e['address'] if e.get('address') else ''}"
        )
    by_dataset = Counter(e.get("dataset_id", "?") for e in entries)
    by_recipient = Counter(e.get("recipient", "?") for e in entries)
    print(f"{len(entries)} download(s) from {start} to {end} (UTC); recorded within about 10 s of serving")
    if entries:
        print("by dataset:   " + ", ".join(f"{k} {v}" for k, v in by_dataset.most_common()))
        print("by recipient: " + ", ".join(f"{k} {v}" for k, v in by_recipient.most_common()))
    return 0


def _date(text: str) -> Any:
    """An argparse type: a calendar date ``YYYY-MM-DD``."""
    from datetime import date

    try:
        return date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a date YYYY-MM-DD, got {text!r}") from None


def cmd_export(args: argparse.Namespace, settings: Settings) -> int:
    """Make (or find cached) the CSV, XLSX and zip of a release, e.g. ahead of the first download."""
    from datashare.releases.exports import FORMATS, Exporter, copy_to
    from datashare.store import newest_available

    store = _store(settings)
    if args.version is not None:
        release = store.release(args.dataset, args.version)
    else:
        release = newest_available(store, args.dataset, store.withdrawn(args.dataset))
        if release is None:
            print(f"error: {args.dataset} has no release to export", file=sys.stderr)
            return 2
    exporter = Exporter(store)
    status = 0
    for fmt in FORMATS if args.format == "all" else [args.format]:
        try:
            made = exporter.get(release, fmt)
        except DatashareError as exc:
            print(f"{fmt:<11} not made: {exc}")
            status = 1
            continue
        where = store.backend.describe(made.key)
        if args.output:
            args.output.mkdir(parents=True, exist_ok=True)
            where = str(copy_to(made, store, args.output / made.filename))
        print(f"{fmt:<11} {where}\n  sha256    {made.sha256}  ({made.bytes:,} bytes)")
    return status


def cmd_webhooks(args: argparse.Namespace, settings: Settings) -> int:
    """Retry due webhook deliveries, or list the subscriptions (no secrets)."""
    from datashare.notify.webhooks import Webhooks

    hooks = Webhooks(_store(settings), settings)
    if args.action == "deliver":
        counts = hooks.deliver_pending()
        print(json.dumps(counts, sort_keys=True) if counts else "No delivery was due.")
        return 0
    for sub in hooks.subscriptions():
        state = f"deleted {sub.deleted_at}" if sub.deleted_at else "active"
        datasets = ",".join(sub.datasets) if sub.datasets is not None else "*"
        print(f"{sub.id}  {sub.recipient:<20} {state:<28} {datasets:<30} {sub.url}")
    return 0


def _positive_int(text: str) -> int:
    """An argparse type: a whole number of at least 1."""
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number of at least 1, got {text!r}")
    return int(text)


def build_parser() -> argparse.ArgumentParser:
    """The argument parser (also used to document the commands)."""
    parser = argparse.ArgumentParser(prog="datashare", description=__doc__.split("\n\n")[0])
    parser.add_argument("-v", "--verbose", action="store_true", help="log at INFO level")
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("demo", help="run the air_quality_hourly DAG through Airflow on embedded defaults")
    p.add_argument("--next-day", action="store_true", help="append the next day of observations to the unit first")
    p.add_argument("--reset", action="store_true", help="delete var/ (unit, releases, share, Airflow) first")
    p.set_defaults(func=cmd_demo)
    p = sub.add_parser("run", help="run one dataset in this process, without Airflow")
    p.add_argument("dataset")
    p.set_defaults(func=cmd_run)
    p = sub.add_parser("list", help="datasets and their latest release")
    p.set_defaults(func=cmd_list)
    p = sub.add_parser("releases", help="releases of a dataset")
    p.add_argument("dataset")
    p.set_defaults(func=cmd_releases)
    p = sub.add_parser("show", help="one release")
    p.add_argument("dataset")
    p.add_argument("--version", type=int)
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_show)
    p = sub.add_parser("verify", help="re-hash releases against manifests and walk the ledger")
    p.add_argument("dataset", nargs="?")
    p.add_argument("--version", type=int)
    p.add_argument(
        "--anchor",
        action="append",
        default=[],
        metavar="SEQ:SHA256",
        help="a ledger head printed by an earlier verify (repeatable): catches an edit of the newest entries",
    )
    p.add_argument(
        "--repair",
        action="store_true",
        help="first complete what killed writers left half-done (ledger entries, heads, markers); prints each repair",
    )
    p.set_defaults(func=cmd_verify)
    p = sub.add_parser("rules", help="every rule of a dataset's suite in plain words (Vietnamese and English)")
    p.add_argument("dataset")
    p.set_defaults(func=cmd_rules)
    p = sub.add_parser("history", help="write a dataset's validation history (paged HTML) and print its path")
    p.add_argument("dataset")
    p.add_argument("--page-size", type=_positive_int, default=50, help="runs per page (default 50)")
    p.set_defaults(func=cmd_history)
    p = sub.add_parser("withdraw", help="withdraw a release: consumers stop seeing it; files and report stay")
    p.add_argument("dataset")
    p.add_argument("--version", type=int, required=True)
    p.add_argument("--reason", required=True, help="why (required, recorded in the ledger)")
    p.set_defaults(func=cmd_withdraw)
    p = sub.add_parser("grant", help="issue credentials to a registered recipient (both kinds unless one is named)")
    p.add_argument("recipient", help="agency code from config/recipients.yaml")
    p.add_argument("--sql", action="store_true", help="issue a login on the PostgreSQL share")
    p.add_argument("--http", action="store_true", help="issue a token for the catalog's API and downloads")
    p.add_argument(
        "--profile",
        type=Path,
        metavar="FILE",
        help="write the HTTP token into a new Delta Sharing profile file (endpoint: DATASHARE_SHARING_ENDPOINT)",
    )
    p.add_argument(
        "--expires-days",
        type=_positive_int,
        metavar="N",
        help=f"the HTTP token expires after N days (default: never; {PROFILE_DAYS} with --profile)",
    )
    p.set_defaults(func=cmd_grant)
    p = sub.add_parser("revoke", help="revoke a recipient's HTTP tokens and SQL login")
    p.add_argument("recipient", help="agency code from config/recipients.yaml")
    p.add_argument("--token-id", help="revoke only this token (its id), leaving the SQL login")
    p.set_defaults(func=cmd_revoke)
    p = sub.add_parser("specs", help="check dataset spec files")
    p.add_argument("files", nargs="*")
    p.add_argument("--doc", action="store_true", help="print the field reference (docs/spec.md) instead")
    p.set_defaults(func=cmd_specs)
    p = sub.add_parser("pools", help="Airflow pools (JSON for `airflow pools import`)")
    p.set_defaults(func=cmd_pools)
    p = sub.add_parser("export", help="make the CSV, XLSX and zip of a release ahead of the first download")
    p.add_argument("dataset")
    p.add_argument("--version", type=_positive_int, help="release number (default: the newest not withdrawn)")
    p.add_argument("--format", choices=["all", "csv", "xlsx", "zip", "provenance"], default="all")
    p.add_argument("--output", type=Path, help="also copy the files into this folder")
    p.set_defaults(func=cmd_export)
    p = sub.add_parser("webhooks", help="retry due webhook deliveries (deliver) or list subscriptions (list)")
    p.add_argument("action", choices=["deliver", "list"])
    p.set_defaults(func=cmd_webhooks)
    p = sub.add_parser(
        "seed", help="generate the simulated units (data ending today) into their connections' databases"
    )
    p.add_argument("conn_id", nargs="*", help="only these connections' units (default: every unit)")
    p.add_argument("--keep-existing", action="store_true", help="leave a unit whose tables already exist as it is")
    p.set_defaults(func=cmd_seed_units)
    p = sub.add_parser("serve", help="serve the data catalog: pages, JSON API, DCAT-AP, checked downloads")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=8765, help="port (default 8765)")
    p.set_defaults(func=cmd_serve)
    p = sub.add_parser("access-log", help="downloads the catalog served (UTC dates; today by default)")
    p.add_argument("--from", dest="start", type=_date, help="first day, YYYY-MM-DD (UTC)")
    p.add_argument("--to", dest="end", type=_date, help="last day, YYYY-MM-DD (UTC), included")
    p.add_argument("--dataset", help="only this dataset")
    p.add_argument("--recipient", help="only this recipient code (or 'anonymous')")
    p.add_argument("--json", action="store_true", help="one JSON object a line")
    p.set_defaults(func=cmd_access_log)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``datashare`` command."""
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    try:
        return args.func(args, Settings.from_env())
    except DatashareError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


QUICK_EXIT_COMMANDS = frozenset({"run"})
"""Commands that end with :func:`quick_exit` when run as a program (see :func:`entry`)."""


def quick_exit(code: int) -> NoReturn:
    """End the process without Python's teardown, once everything the command wrote is out.

    A run imports GX, pandas, DuckDB and Arrow: some 280,000 objects that the interpreter's finalization
    takes apart one by one, about 0.6 s on the bench machine (``python -c "import great_expectations"``:
    3.25 s as a process, 2.6 s of imports; 0.04 s after them with this exit). The operating system frees
    that memory at once. The exit handlers still run first (temporary folders, logging), then the standard
    streams are flushed.
    """
    atexit._run_exitfuncs()
    logging.shutdown()
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(OSError, ValueError):  # a closed or broken pipe: nothing more can be said on it
            stream.flush()
    os._exit(code)


def entry() -> int:
    """The ``datashare`` program: :func:`main`, and for a run a quick exit (see :func:`quick_exit`).

    Tests call :func:`main` in their own process; only the program exits this way.
    """
    argv = sys.argv[1:]
    code = main(argv)
    command = next((a for a in argv if not a.startswith("-")), None)
    if command in QUICK_EXIT_COMMANDS:
        quick_exit(code)
    return code


if __name__ == "__main__":
    sys.exit(entry())
