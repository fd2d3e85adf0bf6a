"""The code version a release's manifest records: fixed at image build time, git only in a checkout."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from datashare.store.manifest import REVISION_ENV, code_version


@pytest.fixture(autouse=True)
def _fresh() -> None:
    code_version.cache_clear()


def test_the_image_records_the_revision_it_was_built_from(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(REVISION_ENV, "0123456789ab")
    assert code_version(tmp_path).endswith("+g0123456789ab")


def test_without_a_revision_or_a_checkout_the_package_version_alone(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(REVISION_ENV, raising=False)
    monkeypatch.setenv("PATH", str(tmp_path))  # no git on the PATH, as in the image
    assert "+g" not in code_version(tmp_path)


def test_a_checkout_asks_git(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(REVISION_ENV, raising=False)
    subprocess.run(["git", "init", "-q", str(tmp_path)], check=True)
    (tmp_path / "f").write_text("x", encoding="utf-8")
    git = ["git", "-C", str(tmp_path), "-c", "user.email=t@example.org", "-c", "user.name=t"]
    subprocess.run([*git, "add", "f"], check=True)
    subprocess.run([*git, "commit", "-q", "-m", "x"], check=True)
    head = subprocess.run([*git, "rev-parse", "--short=12", "HEAD"], check=True, capture_output=True, text=True)
    assert code_version(tmp_path).endswith(f"+g{head.stdout.strip()}")
