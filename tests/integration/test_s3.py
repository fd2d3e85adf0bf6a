"""The S3 backend's own behaviour against a loopback S3 server: checked uploads, multipart, errors, listing, URLs.

What every backend must do alike is tested by ``test_store.py`` and ``test_ledger.py``, parametrized
over both backends; this module covers what only S3 has.
"""

from __future__ import annotations

import base64
import hashlib
import os
import time
import urllib.request
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest

from datashare.exceptions import ConfigError, ReleaseError
from datashare.store import ReleaseStore
from datashare.store.s3 import S3Backend

MIB = 1 << 20
PREFIX = "releases"


@pytest.fixture
def s3(s3_server, s3_bucket: str) -> S3Backend:
    """An S3 backend with 5 MiB parts, so that an 11 MiB file goes up in three parts."""
    return S3Backend(
        s3_bucket, PREFIX, endpoint_url=s3_server.endpoint_url, multipart_threshold=5 * MIB, multipart_chunksize=5 * MIB
    )


@pytest.fixture
def big_file(tmp_path: Path) -> Path:
    path = tmp_path / "big.bin"
    path.write_bytes(os.urandom(11 * MIB))
    return path


def _raw_head(s3_server, bucket: str, key: str) -> dict:
    return s3_server.client.head_object(Bucket=bucket, Key=f"{PREFIX}/{key}", ChecksumMode="ENABLED")


def test_multipart_upload_is_checked_and_rehashed(s3: S3Backend, s3_server, s3_bucket: str, big_file: Path) -> None:
    digest = hashlib.sha256(big_file.read_bytes()).hexdigest()

    started = time.monotonic()
    s3.put_file("ds/v1/data/part-00000.parquet", big_file)
    elapsed = time.monotonic() - started

    head = _raw_head(s3_server, s3_bucket, "ds/v1/data/part-00000.parquet")
    assert head["ETag"].strip('"').endswith("-3")  # three parts: 5 + 5 + 1 MiB
    assert head["ContentLength"] == 11 * MIB
    assert head["Metadata"]["sha256"] == digest
    assert head["ChecksumSHA256"]  # the composite of the parts' SHA-256, checked by put_file
    assert s3.sha256("ds/v1/data/part-00000.parquet") == digest  # re-hashed from the bytes, not the metadata
    assert s3.size("ds/v1/data/part-00000.parquet") == 11 * MIB
    assert elapsed < 10, f"11 MiB multipart upload took {elapsed:.2f} s"
    target = big_file.with_name("back.bin")
    s3.download("ds/v1/data/part-00000.parquet", target)
    assert target.read_bytes() == big_file.read_bytes()


def test_small_upload_stores_the_full_sha256(s3: S3Backend, s3_server, s3_bucket: str, tmp_path: Path) -> None:
    source = tmp_path / "small.json"
    source.write_bytes(b'{"rows": 3}\n')
    digest = hashlib.sha256(source.read_bytes())

    s3.put_file("ds/v1/datapackage.json", source)

    head = _raw_head(s3_server, s3_bucket, "ds/v1/datapackage.json")
    assert head["ChecksumSHA256"] == base64.b64encode(digest.digest()).decode()
    assert head["Metadata"]["sha256"] == digest.hexdigest()
    assert s3.get_bytes("ds/v1/datapackage.json") == b'{"rows": 3}\n'


class CorruptingS3Backend(S3Backend):
    """Flips a byte on the way up, as a broken proxy or disk would; the digest sent is still the true one."""

    def _upload(self, full: str, source: Path, digest: str) -> None:
        damaged = source.with_suffix(".damaged")
        raw = bytearray(source.read_bytes())
        raw[len(raw) // 2] ^= 0x01
        damaged.write_bytes(bytes(raw))
        super()._upload(full, damaged, digest)


@pytest.mark.parametrize("size", [1000, 11 * MIB], ids=["single", "multipart"])
def test_a_corrupted_upload_is_deleted_and_named(s3_server, s3_bucket: str, tmp_path: Path, size: int) -> None:
    backend = CorruptingS3Backend(
        s3_bucket, PREFIX, endpoint_url=s3_server.endpoint_url, multipart_threshold=5 * MIB, multipart_chunksize=5 * MIB
    )
    source = tmp_path / "part.parquet"
    source.write_bytes(os.urandom(size))

    with pytest.raises(ReleaseError) as info:
        backend.put_file("ds/v1/data/part-00000.parquet", source)

    assert f"s3://{s3_bucket}/{PREFIX}/ds/v1/data/part-00000.parquet" in str(info.value)
    assert "stored checksum" in str(info.value)
    assert not backend.exists("ds/v1/data/part-00000.parquet")


def test_put_if_absent_refuses_an_existing_key(s3: S3Backend) -> None:
    assert s3.put_if_absent("ds/_log/1.json", b"first")
    assert not s3.put_if_absent("ds/_log/1.json", b"second")
    assert s3.get_bytes("ds/_log/1.json") == b"first"


def test_missing_objects_and_buckets_are_named(s3: S3Backend, s3_server, tmp_path: Path) -> None:
    url = f"s3://{s3.bucket}/{PREFIX}/ds/v9/datapackage.json"
    assert not s3.exists("ds/v9/datapackage.json")
    for call in (s3.get_bytes, s3.size, s3.sha256, lambda k: s3.download(k, tmp_path / "x")):
        with pytest.raises(ReleaseError, match=f"missing object {url}"):
            call("ds/v9/datapackage.json")
    nowhere = S3Backend("no-such-bucket-here", PREFIX, endpoint_url=s3_server.endpoint_url)
    with pytest.raises(ReleaseError, match="bucket s3://no-such-bucket-here does not exist"):
        nowhere.get_bytes("ds/_log/1.json")
    with pytest.raises(ReleaseError, match="bucket s3://no-such-bucket-here does not exist"):
        nowhere.list("ds")


def test_list_is_a_folder_listing_across_pages(s3: S3Backend, s3_server, s3_bucket: str) -> None:
    for i in range(5):
        s3.put_bytes(f"ds/_log/{i}.json", b"{}")
    s3.put_bytes("ds/_logbook.json", b"{}")  # shares the prefix "ds/_log" but is not in the folder
    s3_server.client.put_object(Bucket=s3_bucket, Key="elsewhere/ds/_log/9.json", Body=b"{}")  # outside the root
    calls = []
    s3.client.meta.events.register("after-call.s3.ListObjectsV2", lambda **_: calls.append(1))
    s3.list_page_size = 2

    keys = s3.list("ds/_log")

    assert keys == [f"ds/_log/{i}.json" for i in range(5)]
    assert len(calls) == 3  # 2 + 2 + 1
    assert s3.list("") == sorted([*keys, "ds/_logbook.json"])
    assert s3.list("nothing") == []


def test_a_store_opened_from_its_uri(s3_server, s3_bucket: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DATASHARE_S3_ENDPOINT_URL", s3_server.endpoint_url)
    store = ReleaseStore.open(f"s3://{s3_bucket}/{PREFIX}/")
    backend = store.backend
    assert isinstance(backend, S3Backend)
    assert (backend.bucket, backend.prefix, backend.endpoint_url) == (s3_bucket, PREFIX, s3_server.endpoint_url)
    assert backend.describe() == f"s3://{s3_bucket}/{PREFIX}"
    assert backend.describe("ds/v1") == f"s3://{s3_bucket}/{PREFIX}/ds/v1"
    assert backend.local_path("ds/v1/datapackage.json") is None
    assert store.versions("ds") == []
    bare = S3Backend.from_uri(f"s3://{s3_bucket}")
    bare.put_bytes("top.json", b"{}")
    assert s3_server.client.get_object(Bucket=s3_bucket, Key="top.json")["Body"].read() == b"{}"
    assert bare.describe("top.json") == f"s3://{s3_bucket}/top.json"


@pytest.mark.parametrize("uri", ["s3://", "s3:///prefix", "s3://bucket/../up", "file:///tmp/x"])
def test_malformed_uris_are_refused(uri: str) -> None:
    with pytest.raises((ConfigError, ReleaseError)):
        S3Backend.from_uri(uri)


def test_presigned_url_is_sigv4_short_lived_and_serves_the_bytes(s3: S3Backend) -> None:
    s3.put_bytes("ds/v1/data/part-00000.parquet", b"PAR1 data PAR1")

    url = s3.presigned_url("ds/v1/data/part-00000.parquet")

    query = parse_qs(urlsplit(url).query)
    assert query["X-Amz-Algorithm"] == ["AWS4-HMAC-SHA256"]
    assert query["X-Amz-Expires"] == ["300"]
    assert urlsplit(url).path.endswith(f"/{PREFIX}/ds/v1/data/part-00000.parquet")
    with urllib.request.urlopen(url, timeout=10) as response:
        assert response.read() == b"PAR1 data PAR1"
    for bad in (0, 8 * 24 * 3600):
        with pytest.raises(ConfigError, match="expiry"):
            s3.presigned_url("ds/v1/data/part-00000.parquet", bad)
    with pytest.raises(ReleaseError, match="invalid store key"):
        s3.presigned_url("../secrets.json")


def test_an_unreachable_object_store_is_a_retryable_error_naming_the_endpoint(monkeypatch: pytest.MonkeyPatch) -> None:
    """Connection refused: the SDK retries, then a StoreUnavailable (worth a task retry) names bucket and endpoint."""
    import socket

    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "test")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "test")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")

    from datashare.exceptions import StoreUnavailable

    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    endpoint = f"http://127.0.0.1:{port}"
    store = ReleaseStore(S3Backend("nowhere", "releases", endpoint_url=endpoint))

    with pytest.raises(StoreUnavailable) as caught:
        store.versions("air_quality_hourly")
    assert caught.value.retryable
    assert "s3://nowhere/releases" in str(caught.value) and endpoint in str(caught.value)
    with pytest.raises(StoreUnavailable, match=f"at {endpoint}"):
        list(store.backend.list("air_quality_hourly/_log"))
