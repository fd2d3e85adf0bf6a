"""The release store on S3-compatible object storage (AWS S3, MinIO) through boto3.

The endpoint comes from ``DATASHARE_S3_ENDPOINT_URL`` (MinIO in docker-compose, a loopback server in
tests; unset means AWS) and the credentials from boto3's usual chain (``AWS_*`` variables, profile,
instance role), never from the repository.

Two guarantees the store leans on:

- ``put_if_absent`` is a conditional PUT (``If-None-Match: *``): the server refuses a second write of
  the same key with 412, so two writers can never both commit version N.
- ``put_file`` sends the SHA-256 with the upload (checked by the server part by part), keeps it in the
  object's metadata, and reads the object's size and checksum back before trusting the upload.
"""

from __future__ import annotations

import base64
import builtins
import hashlib
import io
import logging
import os
import threading
import time
from functools import cached_property
from pathlib import Path
from typing import Any, BinaryIO

from datashare.exceptions import ConfigError, ReleaseError, StoreUnavailable
from datashare.store.backends import CHUNK, RangedReader, check_key

log = logging.getLogger(__name__)

ENDPOINT_ENV = "DATASHARE_S3_ENDPOINT_URL"
MIB = 1 << 20
DEFAULT_PART_BYTES = 64 * MIB
MAX_PRESIGN_S = 7 * 24 * 3600
"""SigV4 presigned URLs cannot live longer than a week."""
CONFLICT_RETRIES = 5
"""How often a conditional PUT answered 409 (a concurrent conditional write in flight) is tried again."""
MISSING = {"404", "NoSuchKey", "NotFound"}


_session_lock = threading.Lock()
_session: Any = None


def _fresh_lock_in_child() -> None:
    """The lock is held across a fork (so the session is not copied half-made); the child gets a new one."""
    global _session_lock
    _session_lock = threading.Lock()


os.register_at_fork(
    before=lambda: _session_lock.acquire(),
    after_in_parent=lambda: _session_lock.release(),
    after_in_child=_fresh_lock_in_child,
)


def _new_client(endpoint_url: str | None, config: Any, **options: Any) -> Any:
    """A new S3 client from one shared boto3 session (which caches models: 4 ms a client instead of 80).

    A boto3 session is not thread-safe, so clients are made under a lock; the clients themselves are.
    """
    global _session
    import boto3

    with _session_lock:
        if _session is None:
            _session = boto3.session.Session()
        return _session.client("s3", endpoint_url=endpoint_url, config=config, **options)


def warm_models() -> float:
    """Load boto3's S3 models into the shared session once; returns the seconds it took.

    Making the first client reads and parses botocore's JSON models (the S3 API, endpoint rules,
    partitions): 0.15-0.3 s in every task process on the bench (bench/scheduler.py), against 4-7 ms a
    client once the session holds them. Airflow's workers call this before they fork
    (:mod:`datashare.orchestration.celery_preload`), so each task inherits the parsed models. The
    client made here has explicit placeholder credentials and region, so nothing is resolved from the
    environment, the instance metadata service or the network, and it is dropped at once: no socket,
    thread or file stays open.
    """
    started = time.perf_counter()
    _new_client(None, None, region_name="us-east-1", aws_access_key_id="warm-up", aws_secret_access_key="warm-up")
    return round(time.perf_counter() - started, 3)


def _connection_errors() -> tuple[type[Exception], ...]:
    """botocore's errors for a server that cannot be reached (refused, timed out, dropped mid-answer)."""
    from botocore.exceptions import (
        ConnectionClosedError,
        ConnectTimeoutError,
        EndpointConnectionError,
        ReadTimeoutError,
    )

    return (EndpointConnectionError, ConnectTimeoutError, ReadTimeoutError, ConnectionClosedError)


class _Guarded:
    """An S3 client whose calls turn "cannot reach the server" into :class:`StoreUnavailable` naming it.

    The SDK has already retried (standard mode, 5 attempts) when this is raised; the task's own retries
    come next, then the run fails naming the endpoint and the bucket. Nothing is half-published: every
    write the store depends on is one request.
    """

    def __init__(self, client: Any, backend: S3Backend) -> None:
        self._client = client
        self._where = f"{backend.describe()} at {backend.endpoint_url or 'AWS S3'}"

    def _unreachable(self, exc: Exception) -> StoreUnavailable:
        return StoreUnavailable(f"release store {self._where} is unreachable: {exc}")

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._client, name)
        if not callable(attr) or name in ("get_paginator", "generate_presigned_url"):
            return attr if name != "get_paginator" else self._paginator(attr)

        def call(*args: Any, **kwargs: Any) -> Any:
            from botocore.exceptions import NoCredentialsError

            try:
                return attr(*args, **kwargs)
            except _connection_errors() as exc:
                raise self._unreachable(exc) from None
            except NoCredentialsError:
                raise ConfigError(
                    f"release store {self._where}: no credentials (AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY, "
                    "a profile or an instance role)"
                ) from None

        return call

    def _paginator(self, make: Any) -> Any:
        guard = self

        def get(operation: str) -> Any:
            paginator = make(operation)

            class _Pages:
                def paginate(self, **kwargs: Any) -> Any:
                    try:
                        yield from paginator.paginate(**kwargs)
                    except _connection_errors() as exc:
                        raise guard._unreachable(exc) from None

            return _Pages()

        return get


def _client_error() -> type[Exception]:
    """botocore's ClientError, imported when an ``except`` clause needs it."""
    from botocore.exceptions import ClientError

    return ClientError


def _code(exc: Exception) -> str:
    return str(getattr(exc, "response", {}).get("Error", {}).get("Code", ""))


def _status(exc: Exception) -> int:
    return int(getattr(exc, "response", {}).get("ResponseMetadata", {}).get("HTTPStatusCode", 0))


def _is_missing(exc: Exception) -> bool:
    return _code(exc) in MISSING or _status(exc) == 404


def file_digests(path: Path, part_bytes: int) -> tuple[str, str]:
    """Hex SHA-256 of a file and the base64 S3 *composite* SHA-256 of its parts of ``part_bytes``.

    A multipart object's checksum is the SHA-256 of the concatenated part digests, so it can only
    be checked against the same split; one pass over the file computes both.
    """
    whole = hashlib.sha256()
    parts = hashlib.sha256()
    with path.open("rb") as f:
        while True:
            part = hashlib.sha256()
            left = part_bytes
            while left and (chunk := f.read(min(CHUNK, left))):
                whole.update(chunk)
                part.update(chunk)
                left -= len(chunk)
            if left == part_bytes:
                break
            parts.update(part.digest())
    return whole.hexdigest(), base64.b64encode(parts.digest()).decode()


class S3Backend:
    """A release store under ``s3://bucket/prefix``. Thread-safe: boto3 clients may be shared by threads."""

    list_page_size = 1000
    """Keys per ListObjectsV2 page (1000 is the S3 maximum)."""

    def __init__(
        self,
        bucket: str,
        prefix: str = "",
        *,
        endpoint_url: str | None = None,
        client: Any = None,
        multipart_threshold: int = DEFAULT_PART_BYTES,
        multipart_chunksize: int = DEFAULT_PART_BYTES,
    ) -> None:
        if not bucket or "/" in bucket:
            raise ConfigError(f"invalid S3 bucket name {bucket!r}")
        prefix = prefix.strip("/")
        if prefix:
            check_key(prefix)
        if multipart_chunksize < 5 * MIB:
            raise ConfigError(f"S3 multipart parts must be at least 5 MiB, got {multipart_chunksize} bytes")
        self.bucket = bucket
        self.prefix = prefix
        self.endpoint_url = endpoint_url
        self.multipart_threshold = multipart_threshold
        self.multipart_chunksize = multipart_chunksize
        if client is not None:
            self.client = client

    @classmethod
    def from_uri(cls, uri: str, **kwargs: Any) -> S3Backend:
        """A backend for ``s3://bucket/prefix``, with the endpoint from ``DATASHARE_S3_ENDPOINT_URL``."""
        if not uri.startswith("s3://"):
            raise ConfigError(f"not an s3:// URI: {uri!r}")
        bucket, _, prefix = uri.removeprefix("s3://").partition("/")
        kwargs.setdefault("endpoint_url", os.environ.get(ENDPOINT_ENV) or None)
        return cls(bucket, prefix, **kwargs)

    @cached_property
    def client(self) -> Any:
        """A boto3 S3 client with bounded retries and timeouts (made on first use)."""
        from botocore.config import Config

        config = Config(
            retries={"mode": "standard", "max_attempts": 5},
            connect_timeout=10,
            read_timeout=120,
            signature_version="s3v4",
            # MinIO and other self-hosted servers want path-style URLs; AWS picks for itself.
            s3={"addressing_style": "path" if self.endpoint_url else "auto"},
        )
        return _Guarded(_new_client(self.endpoint_url, config), self)

    @cached_property
    def _transfer(self) -> Any:
        from boto3.s3.transfer import TransferConfig

        return TransferConfig(
            multipart_threshold=self.multipart_threshold, multipart_chunksize=self.multipart_chunksize
        )

    def _key(self, key: str) -> str:
        check_key(key)
        return f"{self.prefix}/{key}" if self.prefix else key

    # -- writing ---------------------------------------------------------------------------

    def put_file(self, key: str, source: Path) -> None:
        """Upload a file (multipart above the threshold), then check the stored size and SHA-256."""
        full = self._key(key)
        size = source.stat().st_size
        multipart = size >= self.multipart_threshold
        digest, composite = file_digests(source, self._part_bytes(size))
        started = time.monotonic()
        self._upload(full, source, digest)
        log.debug("Uploaded %s (%s bytes) in %.2f s", self.describe(key), size, time.monotonic() - started)
        head = self.client.head_object(Bucket=self.bucket, Key=full, ChecksumMode="ENABLED")
        problems = []
        if head["ContentLength"] != size:
            problems.append(f"{head['ContentLength']} bytes stored, {size} sent")
        if head.get("Metadata", {}).get("sha256") != digest:
            problems.append("x-amz-meta-sha256 differs")
        stored = head.get("ChecksumSHA256")  # absent when the server keeps no checksum: size and metadata remain
        if stored:
            value = stored.split("-", 1)[0]  # AWS writes a composite checksum as "<base64>-<parts>"
            expected = composite if multipart else base64.b64encode(bytes.fromhex(digest)).decode()
            if value != expected:
                problems.append(f"stored checksum {stored} != {expected} of {source}")
        if problems:
            self.client.delete_object(Bucket=self.bucket, Key=full)
            raise ReleaseError(f"upload of {source} to {self.describe(key)} failed its check: {'; '.join(problems)}")

    def _part_bytes(self, size: int) -> int:
        """The part size the transfer will really use (it grows parts to stay within 10,000 of them)."""
        from s3transfer.utils import ChunksizeAdjuster

        return ChunksizeAdjuster().adjust_chunksize(self.multipart_chunksize, size)

    def _upload(self, full: str, source: Path, digest: str) -> None:
        """The transfer itself; the SDK sends each part's SHA-256 for the server to check."""
        extra = {"ChecksumAlgorithm": "SHA256", "Metadata": {"sha256": digest}}
        self.client.upload_file(str(source), self.bucket, full, ExtraArgs=extra, Config=self._transfer)

    def move_file(self, key: str, source: Path) -> None:
        """Upload a local file, then remove it (the local copy was scratch)."""
        self.put_file(key, source)
        source.unlink(missing_ok=True)

    def copy(self, source_key: str, key: str) -> None:
        """Server-side copy (multipart for large objects): no byte travels through this process.

        The copy keeps the source's ``sha256`` metadata and is checked by size, as uploads are.
        """
        source = {"Bucket": self.bucket, "Key": self._key(source_key)}
        try:
            self.client.copy(source, self.bucket, self._key(key), Config=self._transfer)
        except _client_error() as exc:
            raise self._named(exc, source_key) from None
        if self.size(key) != self.size(source_key):
            self.client.delete_object(Bucket=self.bucket, Key=self._key(key))
            raise ReleaseError(f"copy of {self.describe(source_key)} to {self.describe(key)} differs in size")

    def delete(self, key: str) -> None:
        """Remove an object (S3 answers success for a missing one too)."""
        self.client.delete_object(Bucket=self.bucket, Key=self._key(key))

    def delete_prefix(self, prefix: str) -> int:
        """Remove every object under a prefix, a thousand per request."""
        keys = [self._key(k) for k in self.list(prefix)]
        for start in range(0, len(keys), 1000):
            batch = [{"Key": k} for k in keys[start : start + 1000]]
            self.client.delete_objects(Bucket=self.bucket, Delete={"Objects": batch, "Quiet": True})
        return len(keys)

    def put_bytes(self, key: str, data: bytes) -> None:
        """Store bytes under ``key``, replacing any object there."""
        self.client.put_object(Bucket=self.bucket, Key=self._key(key), Body=data, ChecksumAlgorithm="SHA256")

    def put_if_absent(self, key: str, data: bytes) -> bool:
        """Conditional PUT: True if stored, False if the key already exists (412).

        A 409 means another conditional write to the key is in flight; AWS asks for a retry, whose
        answer (stored, or 412 once the other write has landed) is final. If a PUT landed but its
        answer was lost, the SDK's retry meets 412 and this says False: the store copes (a run may
        take back its own claim; a commit record it lost that way shows as "content unchanged").
        """
        full = self._key(key)
        for attempt in range(CONFLICT_RETRIES):
            try:
                self.client.put_object(
                    Bucket=self.bucket, Key=full, Body=data, IfNoneMatch="*", ChecksumAlgorithm="SHA256"
                )
            except _client_error() as exc:
                if _status(exc) == 412 or _code(exc) == "PreconditionFailed":
                    return False
                if _status(exc) != 409:
                    raise
                log.info("Conditional write of %s conflicted (409); trying again", self.describe(key))
                time.sleep(0.05 * (attempt + 1))
            else:
                return True
        raise ReleaseError(f"{self.describe(key)}: conditional write kept conflicting (409)")

    # -- reading ---------------------------------------------------------------------------

    def _named(self, exc: Exception, key: str) -> Exception:
        """A missing object or bucket as a ``ReleaseError`` naming the s3:// URL; anything else unchanged."""
        if _code(exc) == "NoSuchBucket":
            return ReleaseError(f"bucket s3://{self.bucket} does not exist (reading {self.describe(key)})")
        if _is_missing(exc):
            return ReleaseError(f"missing object {self.describe(key)}")
        return exc

    def _head(self, key: str) -> dict[str, Any]:
        try:
            return self.client.head_object(Bucket=self.bucket, Key=self._key(key))
        except _client_error() as exc:
            raise self._named(exc, key) from None

    def get_bytes(self, key: str) -> bytes:
        """Read a whole (small) object; ``ReleaseError`` naming the s3:// URL if missing."""
        try:
            return self.client.get_object(Bucket=self.bucket, Key=self._key(key))["Body"].read()
        except _client_error() as exc:
            raise self._named(exc, key) from None

    def exists(self, key: str) -> bool:
        """Whether an object exists (a HEAD request)."""
        try:
            self.client.head_object(Bucket=self.bucket, Key=self._key(key))
        except _client_error() as exc:
            if _is_missing(exc):  # a HEAD answer has no body: a missing bucket is a 404 too
                return False
            raise
        return True

    def list(self, prefix: str) -> list[str]:
        """Keys under a prefix (treated as a folder), recursive and sorted, across result pages."""
        prefix = prefix.rstrip("/")
        root = f"{self.prefix}/" if self.prefix else ""
        listed = f"{self._key(prefix)}/" if prefix else root
        keys = []
        pages = self.client.get_paginator("list_objects_v2").paginate(
            Bucket=self.bucket, Prefix=listed, PaginationConfig={"PageSize": self.list_page_size}
        )
        try:
            for page in pages:
                for item in page.get("Contents", []):
                    key = item["Key"].removeprefix(root)
                    if not key.rsplit("/", 1)[-1].startswith("."):  # as the local backend: dot files are not releases
                        keys.append(key)
        except _client_error() as exc:
            raise self._named(exc, prefix) from None
        return sorted(keys)

    def children(self, prefix: str) -> builtins.list[str]:
        """Immediate children under a prefix: one delimited listing, not every key below."""
        prefix = prefix.rstrip("/")
        root = f"{self.prefix}/" if self.prefix else ""
        listed = f"{self._key(prefix)}/" if prefix else root
        names: set[str] = set()
        pages = self.client.get_paginator("list_objects_v2").paginate(
            Bucket=self.bucket, Prefix=listed, Delimiter="/", PaginationConfig={"PageSize": self.list_page_size}
        )
        try:
            for page in pages:
                for common in page.get("CommonPrefixes", []):
                    names.add(common["Prefix"].removeprefix(listed).rstrip("/"))
                for item in page.get("Contents", []):
                    names.add(item["Key"].removeprefix(listed))
        except _client_error() as exc:
            raise self._named(exc, prefix) from None
        return sorted(n for n in names if n and not n.startswith("."))

    def modified(self, key: str) -> float:
        """When the object was last written, by the server's clock."""
        return self._head(key)["LastModified"].timestamp()

    def open(self, key: str) -> BinaryIO:
        """A seekable reader that fetches only the byte ranges read (a Parquet footer costs two requests)."""
        size = self.size(key)
        return io.BufferedReader(_RangeReader(self, self._key(key), size), buffer_size=CHUNK)

    def links(self, prefix: str) -> builtins.list[str]:
        """Object stores have no symbolic links."""
        return []

    def download(self, key: str, target: Path) -> None:
        """Copy an object to a local file (multipart ranges for large objects)."""
        try:
            self.client.download_file(self.bucket, self._key(key), str(target), Config=self._transfer)
        except _client_error() as exc:
            raise self._named(exc, key) from None

    def sha256(self, key: str) -> str:
        """Hex SHA-256 of the object's bytes, streamed: verification re-hashes data, never trusts metadata."""
        try:
            body = self.client.get_object(Bucket=self.bucket, Key=self._key(key))["Body"]
        except _client_error() as exc:
            raise self._named(exc, key) from None
        digest = hashlib.sha256()
        for chunk in body.iter_chunks(CHUNK):
            digest.update(chunk)
        return digest.hexdigest()

    def size(self, key: str) -> int:
        """Size of an object in bytes."""
        return int(self._head(key)["ContentLength"])

    def local_path(self, key: str) -> Path | None:
        """Objects in S3 have no local path: callers download."""
        check_key(key)
        return None

    def describe(self, key: str = "") -> str:
        """The s3:// URL of an object (or of the store)."""
        path = "/".join(p for p in (self.prefix, key) if p)
        return f"s3://{self.bucket}/{path}" if path else f"s3://{self.bucket}"

    def presigned_url(self, key: str, expires_s: int = 300) -> str:
        """A GET URL for one object that expires after ``expires_s`` seconds (give it only after an access check)."""
        if not 1 <= expires_s <= MAX_PRESIGN_S:
            raise ConfigError(f"presigned URL expiry must be 1..{MAX_PRESIGN_S} s, got {expires_s}")
        return self.client.generate_presigned_url(
            "get_object", Params={"Bucket": self.bucket, "Key": self._key(key)}, ExpiresIn=expires_s
        )


class _RangeReader(RangedReader):
    """A raw, seekable reader of one S3 object through ranged GETs (wrapped in a BufferedReader)."""

    def __init__(self, backend: S3Backend, full_key: str, size: int) -> None:
        super().__init__(size)
        self._backend = backend
        self._key = full_key

    def read_range(self, start: int, end: int) -> bytes:
        body: bytes = self._backend.client.get_object(
            Bucket=self._backend.bucket, Key=self._key, Range=f"bytes={start}-{end - 1}"
        )["Body"].read()
        return body
