"""Storage backends of the release store: a small interface and its local-directory implementation.

The release store needs only a handful of object operations. The one that matters is
``put_if_absent``: it must be atomic, because the existence of a commit record *is* the release.
On a local file system that is ``link(2)`` of a fully written temporary file, which fails if the
name exists; on S3 it is a conditional PUT with ``If-None-Match: *``.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Protocol

from datashare.exceptions import ReleaseError

CHUNK = 1 << 20


def sha256_file(path: Path) -> str:
    """Hex SHA-256 of a file, read in 1 MiB chunks."""
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


class Backend(Protocol):
    """Object operations the release store relies on. Keys are ``/``-separated relative paths."""

    def put_file(self, key: str, source: Path) -> None:
        """Store a local file under ``key``, replacing any object there."""

    def put_bytes(self, key: str, data: bytes) -> None:
        """Store bytes under ``key``, replacing any object there."""

    def put_if_absent(self, key: str, data: bytes) -> bool:
        """Store bytes only if ``key`` does not exist; True if stored. Atomic."""

    def get_bytes(self, key: str) -> bytes:
        """Read a whole (small) object; ``ReleaseError`` if missing."""

    def exists(self, key: str) -> bool:
        """Whether an object exists."""

    def list(self, prefix: str) -> list[str]:
        """Keys under a prefix (recursive), sorted."""

    def download(self, key: str, target: Path) -> None:
        """Copy an object to a local file."""

    def sha256(self, key: str) -> str:
        """Hex SHA-256 of an object's bytes, streamed."""

    def size(self, key: str) -> int:
        """Size of an object in bytes."""

    def local_path(self, key: str) -> Path | None:
        """A local path for reading the object in place, if the backend has one."""

    def describe(self, key: str = "") -> str:
        """Where an object lives, for people (a path or an s3:// URL)."""


def check_key(key: str) -> str:
    """Refuse keys that could escape the store root (``..``, absolute paths, empty parts)."""
    parts = key.split("/")
    if not key or key.startswith("/") or any(p in ("", ".", "..") for p in parts) or "\\" in key or "\x00" in key:
        raise ReleaseError(f"invalid store key {key!r}")
    return key


class LocalBackend:
    """A release store in a local directory (the embedded default)."""

    def __init__(self, root: Path) -> None:
        self.root = root.resolve()

    def _path(self, key: str) -> Path:
        return self.root / check_key(key)

    def _staged(self, final: Path, data: bytes | None = None, source: Path | None = None) -> Path:
        """A complete, synced temporary sibling of ``final`` holding ``data`` or a copy of ``source``."""
        final.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{final.name}.", suffix=".tmp", dir=final.parent)
        with os.fdopen(fd, "wb") as f:
            if source is not None:
                with source.open("rb") as src:
                    shutil.copyfileobj(src, f, CHUNK)
            else:
                f.write(data or b"")
            f.flush()
            os.fsync(f.fileno())
        return Path(tmp)

    def put_file(self, key: str, source: Path) -> None:
        final = self._path(key)
        tmp = self._staged(final, source=source)
        try:
            os.replace(tmp, final)
        finally:
            tmp.unlink(missing_ok=True)

    def put_bytes(self, key: str, data: bytes) -> None:
        final = self._path(key)
        tmp = self._staged(final, data=data)
        try:
            os.replace(tmp, final)
        finally:
            tmp.unlink(missing_ok=True)

    def put_if_absent(self, key: str, data: bytes) -> bool:
        final = self._path(key)
        tmp = self._staged(final, data=data)
        try:
            os.link(tmp, final)  # atomic; fails if the name exists, and the content is already complete
        except FileExistsError:
            return False
        finally:
            tmp.unlink(missing_ok=True)
        return True

    def get_bytes(self, key: str) -> bytes:
        try:
            return self._path(key).read_bytes()
        except FileNotFoundError:
            raise ReleaseError(f"missing object {self.describe(key)}") from None

    def exists(self, key: str) -> bool:
        return self._path(key).is_file()

    def list(self, prefix: str) -> list[str]:
        prefix = prefix.rstrip("/")
        base = self._path(prefix) if prefix else self.root
        if not base.is_dir():
            return []
        return sorted(p.relative_to(self.root).as_posix() for p in _walk(base) if not p.name.startswith("."))

    def download(self, key: str, target: Path) -> None:
        shutil.copyfile(self._path(key), target)

    def sha256(self, key: str) -> str:
        return sha256_file(self._path(key))

    def size(self, key: str) -> int:
        return self._path(key).stat().st_size

    def local_path(self, key: str) -> Path | None:
        return self._path(key)

    def describe(self, key: str = "") -> str:
        return str(self.root / key) if key else str(self.root)


def _walk(base: Path) -> Iterator[Path]:
    for dirpath, _dirs, files in os.walk(base):
        for name in files:
            yield Path(dirpath) / name
