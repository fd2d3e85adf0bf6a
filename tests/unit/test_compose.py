"""What can be checked of docker-compose.yaml without a Docker engine (none runs here): structure,
secrets only from .env, commands that exist in the project, and, through Debian's ``docker-compose
config`` (a real compose parser), that the resolved stack adds up: every connection a spec uses, every
secret read, every unit generated, workers that share no folder."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from datashare.tools.cli import build_parser

REPO = Path(__file__).resolve().parents[2]
COMPOSE = yaml.safe_load((REPO / "docker-compose.yaml").read_text(encoding="utf-8"))


def test_stack_has_every_part_of_the_design() -> None:
    services = COMPOSE["services"]
    for name in (
        "postgres",
        "redis",
        "minio",
        "airflow-apiserver",
        "airflow-scheduler",
        "airflow-dag-processor",
        "airflow-worker",
        "units-postgres",
        "units-mariadb",
        "catalog",
    ):
        assert name in services, name
    env = services["airflow-worker"]["environment"]
    assert env["AIRFLOW__CORE__EXECUTOR"] == "CeleryExecutor"
    assert env["AIRFLOW__CELERY__BROKER_URL"].startswith("redis://redis:")
    assert env["DATASHARE_RELEASE_ROOT"].startswith("s3://") and env["DATASHARE_S3_ENDPOINT_URL"] == "http://minio:9000"
    assert env["GX_ANALYTICS_ENABLED"] == "false"
    build = services["airflow-worker"]["build"]
    assert (REPO / build["context"] / "Dockerfile").is_file()
    assert "REVISION" in build["args"]  # the revision recorded in manifests is fixed when the image is built


def test_secrets_come_only_from_env_file() -> None:
    text = (REPO / "docker-compose.yaml").read_text(encoding="utf-8")
    required = set(re.findall(r"\$\{([A-Z_]+):\?", text))
    documented = set(re.findall(r"^([A-Z_]+)=", (REPO / ".env.example").read_text(encoding="utf-8"), re.MULTILINE))
    assert required <= documented, required - documented
    for service in COMPOSE["services"].values():
        for key, value in (service.get("environment") or {}).items():
            if any(word in key for word in ("PASSWORD", "SECRET", "FERNET")):
                assert str(value).startswith("${"), f"{key} must come from .env"
    assert ".env" in (REPO / ".gitignore").read_text().split()  # .env itself is never committed


def test_commands_exist_in_the_cli() -> None:
    commands = set(build_parser()._subparsers._group_actions[0].choices)
    text = (REPO / "docker-compose.yaml").read_text(encoding="utf-8")
    for used in re.findall(r"\bdatashare (\w+)", text):
        assert used in commands, f"docker-compose.yaml calls `datashare {used}`, which does not exist"


# -- what adds up only once the compose file is resolved (Debian's docker-compose, no engine needed) -------

DOCKER_COMPOSE = Path("/usr/bin/docker-compose")
AIRFLOW_IMAGE = "datashare-airflow:local"


def _needs_compose() -> None:
    if not DOCKER_COMPOSE.exists():
        message = f"{DOCKER_COMPOSE} is not installed (apt-get install docker-compose)"
        if os.environ.get("DATASHARE_REQUIRE_SERVICES") == "1":
            pytest.fail(f"{message} (DATASHARE_REQUIRE_SERVICES=1: tools are required)")
        pytest.skip(message)


@pytest.fixture(scope="module")
def resolved(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """``docker-compose config`` of a copy of the stack with a dummy .env holding every variable it requires."""
    _needs_compose()
    work = tmp_path_factory.mktemp("compose")
    shutil.copy(REPO / "docker-compose.yaml", work)
    shutil.copy(REPO / "Dockerfile", work)
    shutil.copytree(REPO / "docker", work / "docker")
    text = (REPO / "docker-compose.yaml").read_text(encoding="utf-8")
    names = set(re.findall(r"\$\{([A-Z_]+)", text)) | set(_documented())
    (work / ".env").write_text("".join(f"{name}=dummy{name.lower()}0123456789\n" for name in sorted(names)))
    result = subprocess.run(
        [str(DOCKER_COMPOSE), "config"], cwd=work, capture_output=True, text=True, check=False, timeout=120
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return yaml.safe_load(result.stdout)


def _documented() -> list[str]:
    return re.findall(r"^([A-Z_]+)=", (REPO / ".env.example").read_text(encoding="utf-8"), re.MULTILINE)


def _airflow_services(resolved: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {n: s for n, s in resolved["services"].items() if s.get("image") == AIRFLOW_IMAGE}


def test_compose_config_resolves_without_an_engine(resolved: dict[str, Any]) -> None:
    services = resolved["services"]
    assert {"airflow-init", "airflow-apiserver", "airflow-scheduler", "airflow-dag-processor"} <= set(services)
    assert {"airflow-triggerer", "airflow-worker"} <= set(services)
    assert services["airflow-worker"]["deploy"]["replicas"] == 2
    for name, service in _airflow_services(resolved).items():
        env = service["environment"]
        assert env["AIRFLOW__CORE__EXECUTOR"] == "CeleryExecutor", name
        assert len(env["AIRFLOW__API_AUTH__JWT_SECRET"]) >= 16, name  # interpolated from .env, not empty


def _database_of(resolved: dict[str, Any], service: str, database: str) -> bool:
    """Whether ``service`` creates ``database``: its POSTGRES_DB / MARIADB_DATABASE or an init script."""
    definition = resolved["services"][service]
    env = definition.get("environment") or {}
    if database in (env.get("POSTGRES_DB"), env.get("MARIADB_DATABASE")):
        return True
    for volume in definition.get("volumes") or []:
        source, target = (volume["source"], volume["target"]) if isinstance(volume, dict) else volume.split(":")[:2]
        if target == "/docker-entrypoint-initdb.d" and Path(source).is_dir():
            scripts = " ".join(p.read_text() for p in Path(source).glob("*.sql"))
            if re.search(rf"CREATE DATABASE (IF NOT EXISTS )?{re.escape(database)}\b", scripts):
                return True
    return False


def test_every_connection_a_spec_uses_is_provided(resolved: dict[str, Any]) -> None:
    """Each source conn_id of dags/datasets, and the SQL share, points at a database the stack creates."""
    from sqlalchemy.engine import make_url

    from datashare.settings import Settings
    from datashare.source.connections import get_connection
    from datashare.spec import load_specs

    settings = Settings.from_env()
    specs, errors = load_specs(settings.datasets_dir)
    assert not errors
    used = {s.source.conn_id for s in specs.values() if s.source.kind != "derived"} | {settings.share_conn_id}
    assert len(used) >= 7
    for name, service in _airflow_services(resolved).items():
        env = service["environment"]
        missing = sorted(c for c in used if f"AIRFLOW_CONN_{c.upper()}" not in env)
        assert not missing, f"{name} lacks connections {missing}"
    env = resolved["services"]["airflow-worker"]["environment"]
    for conn_id in sorted(used):
        with pytest.MonkeyPatch.context() as mp:
            mp.setenv(f"AIRFLOW_CONN_{conn_id.upper()}", env[f"AIRFLOW_CONN_{conn_id.upper()}"])
            url = make_url(get_connection(conn_id).sqlalchemy_url().render_as_string(hide_password=False))
        assert url.host in resolved["services"], (conn_id, url.host)
        assert _database_of(resolved, url.host, url.database), f"{conn_id}: {url.host} never creates {url.database}"
        assert url.password and url.password.startswith("dummy"), conn_id  # from .env


def test_every_secret_in_env_example_is_read_by_something(resolved: dict[str, Any]) -> None:
    """A variable of .env.example is interpolated into the stack, and a program reads what it becomes."""
    text = (REPO / "docker-compose.yaml").read_text(encoding="utf-8")
    readers = " ".join(
        p.read_text() for p in [*(REPO / "docker").rglob("*"), *(REPO / "plugins").rglob("*.py")] if p.is_file()
    )
    for name in _documented():
        uses = re.findall(rf"^\s*([A-Z_]+): .*\$\{{{name}\b", text, re.MULTILINE)
        assert uses, f"{name} is documented in .env.example but docker-compose.yaml never uses it"
        # Passed on under its own name, something must read that name; passed into another setting, it is read.
        if all(use == name for use in uses):
            assert name in readers, f"{name} reaches the containers but nothing reads it"
    api = resolved["services"]["airflow-apiserver"]
    assert (
        api["entrypoint"] == ["/opt/datashare/docker/api-server.sh"] and "AIRFLOW_ADMIN_PASSWORD" in api["environment"]
    )
    assert "AIRFLOW_ADMIN_PASSWORD" not in resolved["services"]["airflow-worker"]["environment"]  # only where used
    assert ".env" in (REPO / ".dockerignore").read_text().split()  # the build context never carries the secrets


def test_workers_share_nothing_but_the_databases_and_the_object_store(resolved: dict[str, Any]) -> None:
    worker = resolved["services"]["airflow-worker"]
    assert not worker.get("volumes"), worker.get("volumes")
    env = worker["environment"]
    assert env["DATASHARE_RELEASE_ROOT"].startswith("s3://")
    staging = env["DATASHARE_STAGING_DIR"]
    for name, service in resolved["services"].items():
        for volume in service.get("volumes") or []:
            target = volume["target"] if isinstance(volume, dict) else volume.split(":")[1]
            assert not staging.startswith(target), f"{name} mounts {target}, over the workers' staging {staging}"


def test_init_generates_every_unit_with_data_ending_today(resolved: dict[str, Any]) -> None:
    """The init runs ``datashare seed`` for every unit of units/, keeping units that already exist."""
    import units
    from datashare.tools.seed import UNITS

    command = " ".join(resolved["services"]["airflow-init"]["command"])
    assert re.search(r"datashare seed --keep-existing(\s|$)", command), command
    modules = {p.stem for p in Path(units.__file__).parent.glob("*.py") if "def generate(" in p.read_text()}
    assert set(UNITS.values()) == modules


def test_the_image_installs_the_celery_executor() -> None:
    """The image installs requirements.txt, which pins the Celery provider, celery and redis."""
    pins = dict(re.findall(r"^([a-z0-9-]+)==(\S+)", (REPO / "requirements.txt").read_text(), re.MULTILINE))
    assert {"apache-airflow-providers-celery", "celery", "redis"} <= set(pins)
    assert "-r /opt/datashare/requirements.txt" in (REPO / "Dockerfile").read_text()
