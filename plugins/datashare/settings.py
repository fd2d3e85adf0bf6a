"""Deployment settings: where specs, suites, releases and the SQL share live.

Everything has an embedded default under the project folder so that one command runs on a fresh
machine; production overrides come from environment variables (docker-compose sets them).

| variable | default | meaning |
|---|---|---|
| ``DATASHARE_HOME`` | the project folder | where ``dags/datasets`` and ``expectations`` are |
| ``DATASHARE_RELEASE_ROOT`` | ``<home>/var/releases`` | release store: a folder, or ``s3://bucket/prefix`` |
| ``DATASHARE_STAGING_DIR`` | ``<root>/_staging/.scratch`` (S3: ``<home>/var/scratch``) | the worker's scratch |
| ``DATASHARE_SHARE_CONN_ID`` | ``datashare_share`` | Airflow connection of the SQL share |
| ``DATASHARE_SHARE_SCHEMA`` | ``datashare`` | PostgreSQL schema of the SQL share |
| ``DATASHARE_SHARING_ENDPOINT`` | ``http://127.0.0.1:8765/delta-sharing`` | Delta Sharing endpoint in profiles |
| ``DATASHARE_SHARING_URL_TTL_S`` | ``900`` | lifetime of the file URLs Delta Sharing hands out (seconds) |

When the share connection is not defined, the share is the SQLite file ``<home>/var/share.sqlite``.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from datashare.exceptions import ConfigError

if TYPE_CHECKING:
    from datashare.share.target import ShareTarget

log = logging.getLogger(__name__)

PROJECT_HOME = Path(__file__).resolve().parents[2]
DEFAULT_SHARING_ENDPOINT = "http://127.0.0.1:8765/delta-sharing"
MAX_URL_TTL_S = 7 * 24 * 3600


@dataclass(frozen=True)
class Settings:
    """Resolved settings of one process."""

    home: Path
    """Project folder holding ``dags/datasets`` and ``expectations``."""
    release_uri: str
    """Release store: a local folder or ``s3://bucket/prefix``."""
    scratch_root: Path
    """This worker's local scratch folder: each task's own folder inside it is removed when the task ends.

    What tasks hand each other lives in the release store (``_staging/``), never here."""
    share_conn_id: str
    """Airflow connection id of the SQL share."""
    share_schema: str
    """Schema of the SQL share (PostgreSQL)."""
    sharing_endpoint: str = DEFAULT_SHARING_ENDPOINT
    """Public URL of the catalog's Delta Sharing server, as recipients reach it (written into profiles)."""
    sharing_url_ttl_s: int = 900
    """How long a file URL handed out by Delta Sharing stays valid (presigned on S3, signed locally)."""

    @property
    def release_root(self) -> Path:
        """The release store's folder; only for a local store."""
        if self.release_uri.startswith("s3://"):
            raise ConfigError(f"the release store {self.release_uri} is not a local folder")
        return Path(self.release_uri)

    @property
    def recipients_file(self) -> Path:
        """The recipients registry."""
        return self.home / "config" / "recipients.yaml"

    @property
    def datasets_dir(self) -> Path:
        """Folder of the dataset specs."""
        return self.home / "dags" / "datasets"

    @property
    def expectations_dir(self) -> Path:
        """Folder of the Great Expectations suites."""
        return self.home / "expectations"

    @property
    def default_share_url(self) -> str:
        """The embedded SQL share: a SQLite file beside the releases."""
        return f"sqlite:///{self.home / 'var' / 'share.sqlite'}"

    def share_url(self) -> str:
        """SQLAlchemy URL of the SQL share: the connection if defined, else the embedded SQLite file."""
        from datashare.source.connections import get_connection

        try:
            return get_connection(self.share_conn_id).sqlalchemy_url().render_as_string(hide_password=False)
        except ConfigError:
            url = self.default_share_url
            Path(url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
            log.info("SQL share connection %s not defined; using embedded %s", self.share_conn_id, url)
            return url

    def share_target(self) -> ShareTarget:
        """The SQL share, opened once: the connection if defined, else the embedded SQLite file.

        Open it once per task and hand the object to the share functions (:mod:`datashare.share`).
        """
        from datashare.share.target import ShareTarget

        return ShareTarget.from_connection(self.share_conn_id, schema=self.share_schema, default=self.default_share_url)

    @classmethod
    def from_env(cls) -> Settings:
        """Read the settings from the environment, with embedded defaults."""
        home = Path(os.environ.get("DATASHARE_HOME", PROJECT_HOME)).resolve()
        root = os.environ.get("DATASHARE_RELEASE_ROOT", str(home / "var" / "releases"))
        if root.startswith("s3://"):
            scratch = Path(os.environ.get("DATASHARE_STAGING_DIR", home / "var" / "scratch"))
        else:
            root = str(Path(root).resolve())  # scratch on the store's file system: handing over is a rename
            scratch = Path(os.environ.get("DATASHARE_STAGING_DIR", Path(root) / "_staging" / ".scratch"))
        return cls(
            home=home,
            release_uri=root,
            scratch_root=scratch.resolve(),
            share_conn_id=os.environ.get("DATASHARE_SHARE_CONN_ID", "datashare_share"),
            share_schema=os.environ.get("DATASHARE_SHARE_SCHEMA", "datashare"),
            sharing_endpoint=os.environ.get("DATASHARE_SHARING_ENDPOINT", DEFAULT_SHARING_ENDPOINT).rstrip("/"),
            sharing_url_ttl_s=_ttl(os.environ.get("DATASHARE_SHARING_URL_TTL_S", "900")),
        )


def _ttl(text: str) -> int:
    """A file-URL lifetime from the environment: whole seconds, 1 s to a week (S3's presigning limit)."""
    if not text.strip().isdigit() or not 1 <= int(text) <= MAX_URL_TTL_S:
        raise ConfigError(f"DATASHARE_SHARING_URL_TTL_S must be whole seconds from 1 to {MAX_URL_TTL_S}, got {text!r}")
    return int(text)
