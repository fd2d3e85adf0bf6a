"""Documentation that must stay true: the spec reference, the README's two commands, CI calling them."""

from __future__ import annotations

from pathlib import Path

from datashare.spec import fields_markdown

REPO = Path(__file__).resolve().parents[2]


def test_spec_reference_is_generated_from_the_models() -> None:
    assert (REPO / "docs" / "spec.md").read_text(encoding="utf-8") == fields_markdown(), (
        "docs/spec.md is stale: run `datashare specs --doc > docs/spec.md`"
    )


def test_readme_opens_with_the_two_commands_and_ci_runs_them() -> None:
    head = (REPO / "README.md").read_text(encoding="utf-8").splitlines()[:15]
    assert any(line.startswith("make demo") for line in head)
    assert any(line.startswith("make test") for line in head)
    ci = (REPO / ".ci" / "run").read_text(encoding="utf-8")
    assert "make test" in ci and "DATASHARE_REQUIRE_SERVICES=1" in ci
