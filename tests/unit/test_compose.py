"""What can be checked of docker-compose.yaml without a Docker engine (none runs here): structure,
secrets only from .env, and commands that exist in the project."""

from __future__ import annotations

import re
from pathlib import Path

import yaml

from datashare.cli import build_parser

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
    assert (REPO / services["airflow-worker"]["build"] / "Dockerfile").is_file()


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
