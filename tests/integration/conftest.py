"""Integration fixtures: a loopback S3 server, and the release-store backends (local folder and S3) side by side.

``s3_server`` runs moto's standalone server (``moto_server`` from ``moto[server]``) for the session,
with dummy credentials in the environment. ``site`` is parametrized over both backends: tests get a
backend through ``backend`` (or ``site.make()`` for one more instance with its own S3 client, e.g.
per worker) and reach the storage *around* the backend through ``site`` (to tamper as an intruder
would, or to look for stray files).
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import cached_property, partial
from pathlib import Path
from typing import Any

import pytest

from datashare.store.backends import Backend, LocalBackend
from datashare.store.s3 import S3Backend

START_TIMEOUT_S = 20.0
S3_PREFIX = "releases"
"""Store root inside the test bucket, so that a key escaping the root would show at the bucket's top."""


def _unavailable(message: str) -> None:
    if os.environ.get("DATASHARE_REQUIRE_SERVICES") == "1":
        pytest.fail(f"{message} (DATASHARE_REQUIRE_SERVICES=1: services are required)")
    pytest.skip(message)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class S3Server:
    """A running loopback S3 server."""

    endpoint_url: str
    start_s: float
    """Seconds from launch to the first answer."""

    @cached_property
    def client(self) -> Any:
        """A raw boto3 client, for what tests do behind the backend's back."""
        import boto3

        return boto3.session.Session().client("s3", endpoint_url=self.endpoint_url)


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Server]:
    """moto's S3 server on a free loopback port for the whole session, with dummy credentials."""
    binary = Path(sys.executable).with_name("moto_server")
    if not binary.exists():
        _unavailable(f"{binary} is not installed (pip install 'moto[server]')")
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    logfile = tmp_path_factory.mktemp("moto") / "moto_server.log"
    with pytest.MonkeyPatch.context() as mp:
        for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN"):
            mp.delenv(name, raising=False)
        mp.setenv("AWS_ACCESS_KEY_ID", "test")
        mp.setenv("AWS_SECRET_ACCESS_KEY", "test")
        mp.setenv("AWS_DEFAULT_REGION", "us-east-1")
        mp.setenv("AWS_CONFIG_FILE", os.devnull)
        mp.setenv("AWS_SHARED_CREDENTIALS_FILE", os.devnull)
        mp.setenv("AWS_EC2_METADATA_DISABLED", "true")
        mp.setenv("NO_PROXY", ",".join(filter(None, [os.environ.get("NO_PROXY"), "127.0.0.1"])))
        with logfile.open("wb") as log:
            started = time.monotonic()
            proc = subprocess.Popen(
                [str(binary), "-H", "127.0.0.1", "-p", str(port)], stdout=log, stderr=subprocess.STDOUT
            )
            try:
                while True:
                    try:
                        urllib.request.urlopen(url + "/", timeout=0.5).close()
                        break
                    except urllib.error.HTTPError:
                        break  # it answered
                    except OSError:
                        if proc.poll() is not None or time.monotonic() - started > START_TIMEOUT_S:
                            _unavailable(f"moto_server did not start on {url}: {logfile.read_text()[-2000:]}")
                        time.sleep(0.05)
                yield S3Server(endpoint_url=url, start_s=time.monotonic() - started)
            finally:
                proc.terminate()
                try:
                    proc.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()


@pytest.fixture
def s3_bucket(s3_server: S3Server) -> Iterator[str]:
    """A fresh, empty bucket of the test's own, emptied and removed afterwards."""
    client = s3_server.client
    name = f"datashare-test-{uuid.uuid4().hex[:12]}"
    client.create_bucket(Bucket=name)
    yield name
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=name):
        if page.get("Contents"):
            objects = [{"Key": item["Key"]} for item in page["Contents"]]
            client.delete_objects(Bucket=name, Delete={"Objects": objects, "Quiet": True})
    client.delete_bucket(Bucket=name)


class Site:
    """Where a store lives, reachable without going through the backend."""

    kind: str
    make: Callable[[], Backend]
    """A new backend on the same storage (picklable, so it can be handed to worker processes)."""

    def read(self, key: str) -> bytes:
        """Raw bytes of an object under the store root."""
        raise NotImplementedError

    def write(self, key: str, data: bytes) -> None:
        """Overwrite (or create) an object under the store root, bypassing the backend."""
        raise NotImplementedError

    def delete(self, key: str) -> None:
        """Remove an object under the store root, bypassing the backend."""
        raise NotImplementedError

    def keys(self, prefix: str) -> list[str]:
        """Every object under ``<root>/<prefix>/``, temporary and hidden ones included, sorted."""
        raise NotImplementedError

    def everything(self) -> list[str]:
        """Every object in the container holding the store (folder or bucket), inside the root or not."""
        raise NotImplementedError


class LocalSite(Site):
    """A store in ``<container>/store``."""

    kind = "local"

    def __init__(self, container: Path) -> None:
        self.container = container
        self.root = container / "store"
        self.make = partial(LocalBackend, self.root)

    def read(self, key: str) -> bytes:
        return (self.root / key).read_bytes()

    def write(self, key: str, data: bytes) -> None:
        (self.root / key).parent.mkdir(parents=True, exist_ok=True)
        (self.root / key).write_bytes(data)

    def delete(self, key: str) -> None:
        (self.root / key).unlink()

    def keys(self, prefix: str) -> list[str]:
        base = self.root / prefix
        return sorted(p.relative_to(self.root).as_posix() for p in base.rglob("*") if p.is_file())

    def everything(self) -> list[str]:
        if not self.container.exists():
            return []
        return sorted(p.relative_to(self.container).as_posix() for p in self.container.rglob("*") if p.is_file())


class S3Site(Site):
    """A store under ``s3://<bucket>/releases``."""

    kind = "s3"

    def __init__(self, server: S3Server, bucket: str) -> None:
        self.bucket = bucket
        self.prefix = S3_PREFIX
        self.client = server.client
        self.make = partial(S3Backend, bucket, S3_PREFIX, endpoint_url=server.endpoint_url)

    def read(self, key: str) -> bytes:
        return self.client.get_object(Bucket=self.bucket, Key=f"{self.prefix}/{key}")["Body"].read()

    def write(self, key: str, data: bytes) -> None:
        self.client.put_object(Bucket=self.bucket, Key=f"{self.prefix}/{key}", Body=data)

    def delete(self, key: str) -> None:
        self.client.delete_object(Bucket=self.bucket, Key=f"{self.prefix}/{key}")

    def _list(self, prefix: str) -> list[str]:
        pages = self.client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=prefix)
        return sorted(item["Key"] for page in pages for item in page.get("Contents", []))

    def keys(self, prefix: str) -> list[str]:
        root = f"{self.prefix}/"
        return [k.removeprefix(root) for k in self._list(f"{root}{prefix.rstrip('/')}/")]

    def everything(self) -> list[str]:
        return self._list("")


@pytest.fixture(params=["local", "s3"])
def site(request: pytest.FixtureRequest, tmp_path: Path) -> Site:
    """The release store's storage, once as a local folder and once as an S3 bucket."""
    if request.param == "local":
        return LocalSite(tmp_path / "site")
    return S3Site(request.getfixturevalue("s3_server"), request.getfixturevalue("s3_bucket"))


@pytest.fixture
def backend(site: Site) -> Backend:
    """A release-store backend of each kind (parametrized through ``site``): local, then S3."""
    return site.make()
