"""Airflow's real services on loopback, started from the project's own virtual environment.

What docker-compose deploys, on one machine without Docker: the metadata database in a database of its
own on the machine's PostgreSQL, Redis as the Celery broker on a database number of its own, a loopback
S3 server (``moto_server``) as the release store, and ``airflow api-server``, ``scheduler``,
``dag-processor``, ``triggerer`` and N ``airflow celery worker`` processes. Each worker has its own
HOME, AIRFLOW_HOME, staging folder, log-server port and hostname (Airflow's ``hostname_callable`` points
at :func:`scheduler_hostname.worker_hostname`), as separate machines would. Both workers see their staging
at the same path (``DATASHARE_STAGING_DIR``), each in a mount namespace of its own showing its own folder
there, so an absolute path one worker hands the other leads nowhere, as between two containers (on one
machine, two plain folders would not show that: any process could read the other's absolute paths).
``shared_staging=True`` gives every worker one staging folder instead: what a single host has.

Used by the real-scheduler suite (``tests/scheduler``) and by ``bench/scheduler.py``. Every process is
started in a process group of its own and stopped by that group's id, so :meth:`Stack.stop` ends
exactly what this stack started (callers register it as a fixture finalizer and with ``atexit``), and
drops the databases and the Redis database it made.

Timings of each phase are kept in :attr:`Stack.timings` (seconds), to print where the time goes.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

log = logging.getLogger("datashare.stack")

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
POSTGRES_ADMIN = os.environ.get("DATASHARE_TEST_POSTGRES", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres")
MARIADB_ADMIN = os.environ.get("DATASHARE_TEST_MARIADB", "mysql+pymysql://root@127.0.0.1:3306/mysql")
REDIS = os.environ.get("DATASHARE_TEST_REDIS", "redis://127.0.0.1:6379")
BUCKET = "datashare"
S3_PREFIX = "releases"
SCHEDULER_IDLE_SLEEP_S = "0.25"
"""The scheduler's pause between loops with nothing to do (Airflow's default 1 s), as docker-compose.yaml sets it:
each hand-off from a finished task to the next waited half of it on average (bench/scheduler.py)."""
REDIS_CLAIM_KEY = "datashare:stack-claim"
STOP_GRACE_S = 15.0
HEARTBEAT_TIMEOUT_S = 60
"""``[scheduler] task_instance_heartbeat_timeout``: how long a running task may go unheard before the scheduler
fails it (Airflow's default, 300 s, would make the worker-kill test wait five minutes). A task's supervisor
heartbeats every 5 s, and a heartbeat on a loaded machine can take up to the 30 s execution API timeout set
below: 60 s leaves room for that without failing a live task."""

# The variables a service must not inherit from the calling process (a test session sets its own Airflow home,
# a pinned clock and SQLite metadata; a developer's shell may hold real cloud credentials).
_INHERITED_PREFIXES = ("AIRFLOW", "DATASHARE_", "AWS_", "GX_", "PYTHONPATH")


class StackError(RuntimeError):
    """A service did not start, stopped early or did not answer: the message names it and its log."""


def free_port() -> int:
    """A TCP port free on loopback now (the kernel's choice)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _libpq(url: str) -> str:
    import sqlalchemy as sa

    return sa.make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


@dataclass
class Service:
    """One process this stack started, the leader of its own process group."""

    name: str
    proc: subprocess.Popen
    log_path: Path
    home: Path
    stopped: bool = False

    def tail(self, lines: int = 40) -> str:
        """The end of the service's log, for error messages."""
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"


@dataclass
class Worker:
    """Where one Celery worker keeps its things."""

    name: str
    hostname: str
    home: Path
    staging: Path
    log_port: int


@dataclass
class Stack:
    """Airflow's services, Redis, PostgreSQL metadata and a loopback S3 store; see the module docstring."""

    base: Path
    shared_staging: bool = False
    workers: int = 2
    concurrency: int = 2
    preload: bool = True
    """Workers import the engine's libraries once before forking (``orchestration.celery_preload``), as compose does."""
    heartbeat_timeout_s: int = HEARTBEAT_TIMEOUT_S
    """Seconds without a heartbeat after which the scheduler fails a running task (see HEARTBEAT_TIMEOUT_S)."""
    timings: dict[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.base.mkdir(parents=True, exist_ok=True)
        self.tag = uuid.uuid4().hex[:8]
        self.services: list[Service] = []
        self.worker_info: list[Worker] = []
        self._pg_dbs: list[str] = []
        self._maria_dbs: list[str] = []
        self._redis_db: int | None = None
        self._stopped = False
        self._token: str | None = None
        self.api_port = free_port()
        self.api_url = f"http://127.0.0.1:{self.api_port}"
        self.s3_url = ""
        self.password = secrets.token_urlsafe(18)
        self.role_prefix = f"s{secrets.token_hex(3)}_"
        self.env: dict[str, str] = {}
        self.connections: dict[str, str] = {}
        self.pause_dir = self.base / "pauses"
        """Where a test arms a pause point of :mod:`datashare.faults` (every worker sees this folder)."""

    # -- databases of our own --------------------------------------------------------------------

    def postgres_database(self, purpose: str) -> str:
        """URL of a new, empty PostgreSQL database of this stack's (dropped by :meth:`stop`)."""
        import sqlalchemy as sa

        name = f"dsstack_{self.tag}_{purpose}"
        engine = sa.create_engine(POSTGRES_ADMIN, isolation_level="AUTOCOMMIT")
        try:
            with engine.connect() as conn:
                conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
        finally:
            engine.dispose()
        self._pg_dbs.append(name)
        return sa.make_url(POSTGRES_ADMIN).set(database=name).render_as_string(hide_password=False)

    def mariadb_database(self, purpose: str) -> str:
        """URL of a new, empty MariaDB database of this stack's (dropped by :meth:`stop`)."""
        import sqlalchemy as sa

        name = f"dsstack_{self.tag}_{purpose}"
        engine = sa.create_engine(MARIADB_ADMIN, isolation_level="AUTOCOMMIT")
        try:
            with engine.connect() as conn:
                conn.execute(sa.text(f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4 COLLATE utf8mb4_bin"))
        finally:
            engine.dispose()
        self._maria_dbs.append(name)
        return sa.make_url(MARIADB_ADMIN).set(database=name).render_as_string(hide_password=False)

    def _claim_redis_db(self) -> int:
        """A Redis database number nobody uses (empty), claimed with a key of ours so two stacks never share one."""
        import random

        import redis

        numbers = list(range(1, 16))
        random.shuffle(numbers)
        for n in numbers:
            client = redis.Redis.from_url(f"{REDIS}/{n}")
            try:
                if client.set(REDIS_CLAIM_KEY, self.tag, nx=True, ex=6 * 3600):
                    if client.dbsize() == 1:
                        return n
                    client.delete(REDIS_CLAIM_KEY)  # someone else's keys are there
            finally:
                client.close()
        raise StackError(f"no empty Redis database at {REDIS} (1-15 are all in use)")

    # -- start -----------------------------------------------------------------------------------

    def _timed(self, phase: str, started: float) -> None:
        self.timings[phase] = round(time.perf_counter() - started, 2)
        log.info("stack: %s took %.1f s", phase, self.timings[phase])

    def base_env(self, connections: dict[str, str], extra: dict[str, str] | None = None) -> dict[str, str]:
        """The environment every service shares (workers add their own HOME, staging and hostname)."""
        from cryptography.fernet import Fernet

        from datashare.source.connections import connection_env_value

        inherited = {k: v for k, v in os.environ.items() if not k.startswith(_INHERITED_PREFIXES)}
        metadata = self.postgres_database("airflow")
        meta = metadata.replace("postgresql+psycopg://", "postgresql+psycopg2://", 1)
        secret = secrets.token_hex(48)  # 96 characters: the JWT secret must be at least 64 bytes
        env = {
            **inherited,
            "PYTHONPATH": str(REPO / "tests" / "scheduler"),  # the hostname callable
            "AIRFLOW__CORE__DAGS_FOLDER": str(REPO / "dags"),
            "AIRFLOW__CORE__PLUGINS_FOLDER": str(REPO / "plugins"),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__CORE__EXECUTOR": "CeleryExecutor",
            "AIRFLOW__CORE__PARALLELISM": str(max(4, self.workers * self.concurrency)),
            "AIRFLOW__CORE__FERNET_KEY": Fernet.generate_key().decode(),
            "AIRFLOW__CORE__HOSTNAME_CALLABLE": "scheduler_hostname.worker_hostname",
            "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"{self.api_url}/execution/",
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": "admin:admin",
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(self.base / "passwords.json"),
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": meta,
            "AIRFLOW__CELERY__BROKER_URL": f"{REDIS}/{self._redis_db}",
            "AIRFLOW__CELERY__RESULT_BACKEND": "db+" + meta,
            "AIRFLOW__CELERY__WORKER_CONCURRENCY": str(self.concurrency),
            "AIRFLOW__CELERY__WORKER_PREFETCH_MULTIPLIER": "1",
            "AIRFLOW__API__BASE_URL": self.api_url,
            "AIRFLOW__API__PORT": str(self.api_port),
            "AIRFLOW__API__SECRET_KEY": secrets.token_hex(32),
            "AIRFLOW__API_AUTH__JWT_SECRET": secret,
            "AIRFLOW__DAG_PROCESSOR__MIN_FILE_PROCESS_INTERVAL": "120",
            # A loaded 2-core machine answers the execution API in more than the default 5 s at times; a task
            # whose start-up calls time out five times is killed before it runs (seen at load 18).
            "AIRFLOW__WORKERS__EXECUTION_API_TIMEOUT": "30",
            # A worker that dies (a lost host) stops its tasks' heartbeats; the scheduler fails them after this
            # and retries them elsewhere. Checked every 5 s rather than 10.
            "AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT": str(self.heartbeat_timeout_s),
            "AIRFLOW__SCHEDULER__SCHEDULER_IDLE_SLEEP_TIME": SCHEDULER_IDLE_SLEEP_S,  # as docker-compose.yaml
            "AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT_DETECTION_INTERVAL": "5",
            "AIRFLOW__LOGGING__LOGGING_LEVEL": "INFO",
            "AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT": str(free_port()),
            "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": str(free_port()),
            "GX_ANALYTICS_ENABLED": "false",
            "DATASHARE_HOME": str(REPO),
            "DATASHARE_RELEASE_ROOT": f"s3://{BUCKET}/{S3_PREFIX}",
            "DATASHARE_S3_ENDPOINT_URL": self.s3_url,
            "DATASHARE_RETRIES": "1",
            "DATASHARE_RETRY_DELAY_S": "3",
            "DATASHARE_SQL_ROLE_PREFIX": self.role_prefix,
            "DATASHARE_PAUSE_DIR": str(self.pause_dir),  # unarmed unless a test puts a file there
            "AWS_ACCESS_KEY_ID": "test",
            "AWS_SECRET_ACCESS_KEY": "test",
            "AWS_DEFAULT_REGION": "us-east-1",
            "AWS_CONFIG_FILE": os.devnull,
            "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
            "AWS_EC2_METADATA_DISABLED": "true",
            "NO_PROXY": ",".join(filter(None, [os.environ.get("NO_PROXY"), "127.0.0.1", "localhost"])),
        }
        for conn_id, url in connections.items():
            env[f"AIRFLOW_CONN_{conn_id.upper()}"] = connection_env_value(url)
        env.update(extra or {})
        return env

    def start(self, connections: dict[str, str], extra_env: dict[str, str] | None = None) -> Stack:
        """Start everything and wait until the API answers and the scheduler, dag-processor and workers are up."""
        started = time.perf_counter()
        self._redis_db = self._claim_redis_db()
        self._start_s3()
        self.connections = dict(connections)
        self.pause_dir.mkdir(parents=True, exist_ok=True)
        self.env = self.base_env(connections, extra_env)
        (self.base / "passwords.json").write_text(json.dumps({"admin": self.password}))
        (self.base / "passwords.json").chmod(0o600)
        self._timed("databases, redis and s3", started)

        t = time.perf_counter()
        home = self.base / "services" / "init"
        self._run_once(["airflow", "db", "migrate"], home)
        pools = self.base / "pools.json"
        pools.write_text(self._run_once(["datashare", "pools"], home, quiet=True))
        self._run_once(["airflow", "pools", "import", str(pools)], home)
        self._timed("airflow db migrate and pools", t)

        t = time.perf_counter()
        api = ["airflow", "api-server", "--host", "127.0.0.1", "--port", str(self.api_port), "--workers", "1"]
        self._spawn("api-server", api)
        self._spawn("scheduler", ["airflow", "scheduler"])
        self._spawn("dag-processor", ["airflow", "dag-processor"])
        self._spawn("triggerer", ["airflow", "triggerer"])
        for i in range(self.workers):
            self._spawn_worker(i)
        self.wait_healthy()
        self._timed("services up (api, scheduler, dag-processor, triggerer, workers)", t)
        self.timings["start total"] = round(time.perf_counter() - started, 2)
        return self

    def _start_s3(self) -> None:
        import boto3

        port = free_port()
        self.s3_url = f"http://127.0.0.1:{port}"
        self._spawn("moto_server", [str(BIN / "moto_server"), "-H", "127.0.0.1", "-p", str(port)], env=os.environ)
        deadline = time.monotonic() + 30
        while True:
            try:
                urllib.request.urlopen(self.s3_url + "/", timeout=0.5).close()
                break
            except urllib.error.HTTPError:
                break  # it answered
            except OSError:
                self.check_alive("moto_server")
                if time.monotonic() > deadline:
                    raise StackError(f"moto_server did not answer on {self.s3_url}") from None
                time.sleep(0.1)
        client = boto3.session.Session(
            aws_access_key_id="test", aws_secret_access_key="test", region_name="us-east-1"
        ).client("s3", endpoint_url=self.s3_url)
        client.create_bucket(Bucket=BUCKET)

    def s3_client(self) -> Any:
        """A boto3 client on the stack's S3 server (what tests read behind the store's back)."""
        import boto3

        session = boto3.session.Session(aws_access_key_id="test", aws_secret_access_key="test", region_name="us-east-1")
        return session.client("s3", endpoint_url=self.s3_url)

    def _service_env(self, home: Path, extra: dict[str, str] | None = None) -> dict[str, str]:
        (home / "home").mkdir(parents=True, exist_ok=True)
        (home / "airflow").mkdir(parents=True, exist_ok=True)
        return {**self.env, "HOME": str(home / "home"), "AIRFLOW_HOME": str(home / "airflow"), **(extra or {})}

    def _run_once(self, cmd: list[str], home: Path, *, quiet: bool = False) -> str:
        result = subprocess.run(
            [str(BIN / cmd[0]), *cmd[1:]],
            env=self._service_env(home),
            cwd=REPO,
            capture_output=True,
            text=True,
            check=False,
            timeout=300,
        )
        if result.returncode != 0:
            raise StackError(f"{' '.join(cmd)} failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}")
        return result.stdout

    def _spawn(self, name: str, cmd: list[str], *, env: Any = None, extra: dict[str, str] | None = None) -> Service:
        home = self.base / "services" / name
        home.mkdir(parents=True, exist_ok=True)
        log_path = self.base / "logs" / f"{name}.log"
        log_path.parent.mkdir(parents=True, exist_ok=True)
        program = str(BIN / cmd[0]) if (BIN / cmd[0]).is_file() else cmd[0]  # the venv's, else from PATH
        with log_path.open("ab") as out:
            proc = subprocess.Popen(
                [program, *cmd[1:]],
                env=dict(env) if env is not None else self._service_env(home, extra),
                cwd=REPO,
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,  # its own process group: stop() ends it and everything it forked
            )
        service = Service(name=name, proc=proc, log_path=log_path, home=home)
        self.services.append(service)
        log.info("stack: started %s (pid %s), log %s", name, proc.pid, log_path)
        return service

    def _spawn_worker(self, index: int) -> None:
        name = f"worker-{'abcdefgh'[index]}"
        home = self.base / "services" / name
        # Every worker sees its staging at the same path, as containers do; with private_staging (the default)
        # that path shows each worker its own folder only (a mount namespace), so a task that opens another
        # worker's files fails here as it would on another machine.
        staging = self.base / "staging"
        staging.mkdir(parents=True, exist_ok=True)
        worker = Worker(name=name, hostname=name, home=home, staging=staging, log_port=free_port())
        self.worker_info.append(worker)
        extra = {
            "DATASHARE_STAGING_DIR": str(staging),
            "DATASHARE_WORKER_HOSTNAME": worker.hostname,
            "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": str(worker.log_port),
        }
        if self.preload:
            extra["AIRFLOW__CELERY__CELERY_CONFIG_OPTIONS"] = "datashare.orchestration.celery_preload.CELERY_CONFIG"
        command = [str(BIN / "airflow"), "celery", "worker", "--celery-hostname", f"{name}@%h"]
        if not self.shared_staging:
            private = home / "staging"
            private.mkdir(parents=True, exist_ok=True)
            worker.staging = private
            command = [*private_mount_prefix(private, staging), *command]
        self._spawn(name, command, extra=extra)

    def service(self, name: str) -> Service:
        """The service of that name (``worker-a``, ``scheduler``...)."""
        found = [s for s in self.services if s.name == name]
        if not found:
            raise StackError(f"no service {name!r}: {[s.name for s in self.services]}")
        return found[0]

    def kill_service(self, name: str) -> list[int]:
        """SIGKILL every process of a service at once, as a lost host: no SIGTERM, no grace, no cleanup.

        "Every process" is the service's session (it was started with one of its own): its process group
        and also the groups it made inside it; Airflow puts each task process in a group of its own, which
        a kill of the worker's group alone would leave running. Returns the pids killed. The service counts
        as stopped from then on (:meth:`check_alive` and :meth:`stop` pass it by).
        """
        service = self.service(name)
        sid = service.proc.pid
        killed: set[int] = set()
        deadline = time.monotonic() + 15
        while members := _session_members(sid):
            if time.monotonic() > deadline:
                raise StackError(f"{name}: processes {members} of session {sid} outlived SIGKILL")
            with contextlib.suppress(ProcessLookupError):
                os.killpg(sid, signal.SIGKILL)
            for pid in members:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            killed.update(members)
            time.sleep(0.1)  # until none is left: a fork between the listing and the kill is caught next round
        with contextlib.suppress(subprocess.TimeoutExpired):
            service.proc.wait(timeout=5)
        service.stopped = True
        log.info("stack: killed %s (session %s): pids %s", name, sid, sorted(killed))
        return sorted(killed)

    # -- pause points (datashare.faults) ---------------------------------------------------------

    def arm_pause(self, point: str, run_id: str) -> None:
        """Make the first task of ``run_id`` that reaches ``point`` wait there until it is killed."""
        (self.pause_dir / f"{point}.armed").write_text(run_id)

    def disarm_pause(self, point: str) -> None:
        """Remove the arming and the paused marker of ``point`` (whether or not a task took it)."""
        for name in (f"{point}.armed", f"{point}.paused"):
            (self.pause_dir / name).unlink(missing_ok=True)

    def wait_paused(self, point: str, timeout_s: float) -> dict[str, Any]:
        """Wait until a task has paused at ``point``; returns what it wrote (pid, run_id, task_id, try_number)."""
        marker = self.pause_dir / f"{point}.paused"
        deadline = time.monotonic() + timeout_s
        while not marker.exists():
            if time.monotonic() > deadline:
                raise StackError(f"no task paused at {point} within {timeout_s:.0f} s; logs in {self.base / 'logs'}")
            self.check_alive()
            time.sleep(0.5)
        return dict(json.loads(marker.read_text()))

    def check_alive(self, name: str | None = None) -> None:
        for service in self.services:
            if service.stopped:
                continue  # stopped or killed on purpose
            if (name is None or service.name == name) and service.proc.poll() is not None:
                raise StackError(
                    f"{service.name} exited with code {service.proc.returncode}; log {service.log_path}:\n"
                    + service.tail()
                )

    def wait_healthy(self, timeout_s: float = 240.0) -> None:
        """Wait for the API's health answer (scheduler, dag-processor, triggerer) and every worker's 'ready'."""
        deadline = time.monotonic() + timeout_s
        waiting: list[str] = []
        while time.monotonic() < deadline:
            self.check_alive()
            waiting = []
            try:
                with urllib.request.urlopen(f"{self.api_url}/api/v2/monitor/health", timeout=5) as r:
                    health = json.load(r)
                for part in ("metadatabase", "scheduler", "triggerer", "dag_processor"):
                    if (health.get(part) or {}).get("status") != "healthy":
                        waiting.append(part)
            except (OSError, ValueError):
                waiting.append("api-server")
            for service in self.services:
                if service.name.startswith("worker-") and " ready." not in service.tail(400):
                    waiting.append(service.name)
            if not waiting:
                return
            time.sleep(1)
        raise StackError(f"not healthy after {timeout_s:.0f} s: {', '.join(waiting)}; logs in {self.base / 'logs'}")

    # -- the REST API v2 ---------------------------------------------------------------------------

    def token(self) -> str:
        """A JWT from ``POST /auth/token`` for the simple auth manager's admin user."""
        if self._token is None:
            body = json.dumps({"username": "admin", "password": self.password}).encode()
            request = urllib.request.Request(
                f"{self.api_url}/auth/token", data=body, headers={"Content-Type": "application/json"}
            )
            with urllib.request.urlopen(request, timeout=30) as r:
                self._token = json.load(r)["access_token"]
        return self._token

    def api(self, method: str, path: str, body: Any = None, *, timeout: float = 60.0) -> Any:
        """Call the REST API v2 (``path`` after ``/api/v2``) with the JWT; returns the decoded JSON answer."""
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(
            f"{self.api_url}/api/v2{path}",
            data=data,
            method=method,
            headers={"Authorization": f"Bearer {self.token()}", "Content-Type": "application/json"},
        )
        try:
            with urllib.request.urlopen(request, timeout=timeout) as r:
                return json.load(r)
        except urllib.error.HTTPError as exc:
            raise StackError(f"{method} /api/v2{path}: HTTP {exc.code} {exc.read()[:2000]!r}") from exc

    def get_url(self, path: str) -> tuple[int, bytes]:
        """GET any path of the api-server without credentials (the mounted catalog): (status, body)."""
        try:
            with urllib.request.urlopen(f"{self.api_url}{path}", timeout=60) as r:
                return r.status, r.read()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read()

    def wait_for_dags(self, dag_ids: set[str], timeout_s: float = 180.0) -> dict[str, dict[str, Any]]:
        """Wait until the dag-processor has serialized every DAG; returns them by id."""
        deadline = time.monotonic() + timeout_s
        started = time.perf_counter()
        seen: dict[str, dict[str, Any]] = {}
        while time.monotonic() < deadline:
            self.check_alive()
            seen = {d["dag_id"]: d for d in self.api("GET", "/dags?limit=200")["dags"]}
            if dag_ids <= set(seen):
                self._timed("DAGs parsed and serialized", started)
                return seen
            time.sleep(1)
        errors = self.api("GET", "/importErrors")
        raise StackError(f"DAGs missing after {timeout_s:.0f} s: {sorted(dag_ids - set(seen))}; import errors {errors}")

    def trigger(self, dag: dict[str, Any], *, take_scheduled_slot: bool) -> str:
        """Trigger a DAG run through ``POST /dags/{id}/dagRuns``; returns its run id.

        With ``take_scheduled_slot`` the run takes the logical date and data interval of the run the
        scheduler would create next, so unpausing the DAG afterwards creates no second run; without it the
        run has no logical date (a plain manual run).
        """
        if take_scheduled_slot:
            body = {
                "logical_date": dag["next_dagrun_logical_date"],
                "data_interval_start": dag["next_dagrun_data_interval_start"],
                "data_interval_end": dag["next_dagrun_data_interval_end"],
            }
        else:
            body = {"logical_date": None}
        return str(self.api("POST", f"/dags/{dag['dag_id']}/dagRuns", body)["dag_run_id"])

    def unpause(self, dag_id: str) -> None:
        """``PATCH /dags/{id}`` with ``is_paused: false``."""
        self.api("PATCH", f"/dags/{dag_id}", {"is_paused": False})

    def runs(self, dag_id: str = "~") -> list[dict[str, Any]]:
        """Every DAG run of one DAG (or of all, ``~``)."""
        return list(self.api("GET", f"/dags/{dag_id}/dagRuns?limit=500")["dag_runs"])

    def task_instances(self, dag_id: str, run_id: str) -> list[dict[str, Any]]:
        """Every task instance of a run, mapped ones included."""
        path = f"/dags/{dag_id}/dagRuns/{quote(run_id, safe='')}/taskInstances?limit=500"
        return list(self.api("GET", path)["task_instances"])

    def task_log_files(self, dag_id: str, run_id: str, task_id: str) -> list[Path]:
        """The task's log files, wherever a worker wrote them (each worker logs under its own AIRFLOW_HOME)."""
        found: list[Path] = []
        for worker in self.worker_info:
            folder = worker.home / "airflow" / "logs" / f"dag_id={dag_id}" / f"run_id={run_id}" / f"task_id={task_id}"
            found.extend(sorted(folder.rglob("*.log")) if folder.exists() else [])
        return found

    def task_log_text(self, dag_id: str, run_id: str, task_id: str) -> str:
        """Every log file the workers wrote for a task, joined."""
        return "\n".join(p.read_text(errors="replace") for p in self.task_log_files(dag_id, run_id, task_id))

    # -- stop --------------------------------------------------------------------------------------

    def stop(self) -> None:
        """End every process group this stack started (by pid), then drop its databases; safe to call twice.

        Resumable: a stop interrupted part-way (Ctrl-C in a test) is finished by the next call, which
        ``atexit`` makes.
        """
        if self._stopped:
            return
        started = time.perf_counter()
        for service in reversed(self.services):
            if not service.stopped:
                _stop_group(service)
                service.stopped = True
        self._drop_databases()
        self._stopped = True
        self.timings["stop"] = round(time.perf_counter() - started, 2)
        log.info("stack: stopped in %.1f s", self.timings["stop"])

    def _drop_databases(self) -> None:
        import sqlalchemy as sa

        with contextlib.suppress(Exception):
            engine = sa.create_engine(POSTGRES_ADMIN, isolation_level="AUTOCOMMIT")
            with engine.connect() as conn:
                for name in self._pg_dbs:
                    conn.execute(
                        sa.text(
                            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                            " WHERE datname = :n AND pid <> pg_backend_pid()"
                        ),
                        {"n": name},
                    )
                    conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}"'))
                roles = conn.execute(
                    sa.text("SELECT rolname FROM pg_roles WHERE starts_with(rolname, :p)"), {"p": self.role_prefix}
                ).scalars()
                for role in list(roles):
                    conn.execute(sa.text(f'DROP OWNED BY "{role}"'))
                    conn.execute(sa.text(f'DROP ROLE IF EXISTS "{role}"'))
            engine.dispose()
        with contextlib.suppress(Exception):
            engine = sa.create_engine(MARIADB_ADMIN, isolation_level="AUTOCOMMIT")
            with engine.connect() as conn:
                for name in self._maria_dbs:
                    conn.execute(sa.text(f"DROP DATABASE IF EXISTS `{name}`"))
            engine.dispose()
        if self._redis_db is not None:
            with contextlib.suppress(Exception):
                import redis

                client = redis.Redis.from_url(f"{REDIS}/{self._redis_db}")
                if client.get(REDIS_CLAIM_KEY) == self.tag.encode():
                    client.flushdb()  # only our broker's keys: we claimed it empty
                client.close()

    def __enter__(self) -> Stack:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


_MOUNT_SCRIPT = 'mount --bind "$0" "$1" && shift && exec "$@"'


def private_mount_prefix(private: Path, seen_as: Path) -> list[str]:
    """A command prefix that runs the rest in a mount namespace of its own where ``seen_as`` shows ``private``.

    As root (CI, this machine) ``unshare --mount``; otherwise an unprivileged user namespace. The command
    is exec'd, so the pid (and the process group) stays the one this stack started.
    """
    unshare = ["unshare", "--mount", "--propagation", "private"]
    if os.geteuid() != 0:
        unshare = ["unshare", "--user", "--map-root-user", "--mount", "--propagation", "private"]
    prefix = [*unshare, "/bin/sh", "-c", _MOUNT_SCRIPT, str(private), str(seen_as)]
    probe = subprocess.run([*prefix, "true"], capture_output=True, text=True, check=False)
    if probe.returncode != 0:
        raise StackError(
            "cannot give each worker a staging folder of its own (a mount namespace): "
            f"{' '.join(unshare)} failed: {probe.stderr.strip()[:500]}; "
            "set DATASHARE_SCHEDULER_STAGING=shared to run with one staging folder"
        )
    return prefix


def _live_with(field: int, value: int) -> list[int]:
    """Pids of the live processes whose /proc stat field ``field`` (after the name) is ``value``: no guessing by name.

    Field 2 is the process group, field 3 the session; field 0 is the state (Z: a zombie, not live).
    """
    members = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[1].split()
        if int(fields[field]) == value and fields[0] != "Z":
            members.append(int(entry.name))
    return members


def _group_members(pgid: int) -> list[int]:
    """Pids of the live processes in a process group."""
    return _live_with(2, pgid)


def _session_members(sid: int) -> list[int]:
    """Pids of the live processes in a session, whatever process group each is in."""
    return _live_with(3, sid)


def _stop_group(service: Service) -> None:
    """SIGTERM the service's process group, wait for its leader, then SIGKILL whatever is left of its session.

    The session, not only the group: a Celery worker's task processes each have a group of their own.
    """
    pgid = service.proc.pid
    if _group_members(pgid):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pgid, signal.SIGTERM)
    try:
        service.proc.wait(timeout=STOP_GRACE_S)
    except subprocess.TimeoutExpired:
        log.warning("stack: %s (pid %s) did not stop in %.0f s; killing its group", service.name, pgid, STOP_GRACE_S)
    deadline = time.monotonic() + 5
    while _group_members(pgid) and time.monotonic() < deadline:
        time.sleep(0.2)
    if _group_members(pgid):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pgid, signal.SIGKILL)
    for pid in _session_members(pgid):  # started with a session of its own: its id is the leader's pid
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    with contextlib.suppress(subprocess.TimeoutExpired):
        service.proc.wait(timeout=5)
