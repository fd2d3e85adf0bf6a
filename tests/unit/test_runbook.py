"""docs/runbook.md stays true: every ``airflow`` and ``datashare`` command it gives parses with the real CLIs."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest

from datashare.tools.cli import build_parser

REPO = Path(__file__).resolve().parents[2]
RUNBOOK = (REPO / "docs" / "runbook.md").read_text(encoding="utf-8")
SECTIONS = (
    "First start",
    "Adding a unit",
    "Backfilling a date range",
    "Re-running a failed interval",
    "Rotating a recipient's credentials",
    "Losing a worker mid-run",
    "Upgrading Airflow",
    "Tuning: where a task's time goes",
)


def _commands(prefix: str) -> list[str]:
    """Command lines starting with ``prefix`` (in code blocks or inline code), placeholders filled in."""
    found = re.findall(rf"(?:^|`)\s*{prefix} ([^`\n#]+)", RUNBOOK, re.MULTILINE)
    filled = {"<N>": "1", "<date>": "2026-12-05"}
    return [re.sub(r"<[^>]+>", lambda m: filled.get(m.group(), "x"), line).strip() for line in found]


def test_runbook_covers_every_procedure_and_the_readme_links_it() -> None:
    headings = re.findall(r"^## (.+)$", RUNBOOK, re.MULTILINE)
    assert headings == list(SECTIONS)
    assert "docs/runbook.md" in (REPO / "README.md").read_text(encoding="utf-8")


def test_every_datashare_command_parses() -> None:
    commands = _commands("ds")
    assert len(commands) >= 8
    parser = build_parser()
    for line in commands:
        try:
            parser.parse_args(shlex.split(line.split(" > ")[0].split(" && ")[0]))
        except SystemExit:
            pytest.fail(f"docs/runbook.md: `datashare {line}` does not parse")


def test_every_airflow_command_parses() -> None:
    from airflow.cli.cli_parser import get_parser

    commands = _commands("af")
    assert len(commands) >= 10
    parser = get_parser()
    for line in commands:
        try:
            parser.parse_args(shlex.split(line.split(" > ")[0]))
        except SystemExit:
            pytest.fail(f"docs/runbook.md: `airflow {line}` does not parse")


def test_make_targets_exist() -> None:
    targets = set(re.findall(r"^([a-z-]+):", (REPO / "Makefile").read_text(), re.MULTILINE))
    for target in re.findall(r"`make ([a-z-]+)", RUNBOOK):
        assert target in targets, target
