"""Storage backends of the release store: a small interface and its local-directory implementation.

The release store needs only a handful of object operations. The one that matters is
``put_if_absent``: it must be atomic, because the existence of a commit record *is* the release.
On a local file system that is ``link(2)`` of a fully written temporary file, which fails if the
name exists; on S3 it is a conditional PUT with ``If-None-Match: *``.

Every write is all-or-nothing for readers: a local write lands under a dot-named temporary sibling
(never listed, swept by age) and is renamed into place; an S3 object appears whole or not at all.
A local store never follows a symbolic link out of its root: a key that resolves elsewhere is refused,
so a link planted in a release folder can neither be served nor hashed as if it were the release.
"""

from __future__ import annotations

import builtins
import hashlib
import io
import os
import shutil
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, BinaryIO, Protocol

from datashare.exceptions import ReleaseError

CHUNK = 1 << 20
TEMP_MAX_AGE_S = 24 * 3600
"""Temporary files of killed writers are removed by :meth:`LocalBackend.sweep_temporary` after this long."""


def sha256_file(path: Path) -> str:
    """Hex SHA-256 of a file."""
    with path.open("rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


class Backend(Protocol):
    """Object operations the release store relies on. Keys are ``/``-separated relative paths."""

    def put_file(self, key: str, source: Path) -> None:
        """Store a local file under ``key``, replacing any object there."""

    def move_file(self, key: str, source: Path) -> None:
        """Store a local file under ``key`` and give up ``source`` (renamed in place when possible)."""

    def put_bytes(self, key: str, data: bytes) -> None:
        """Store bytes under ``key``, replacing any object there."""

    def put_if_absent(self, key: str, data: bytes) -> bool:
        """Store bytes only if ``key`` does not exist; True if stored. Atomic."""

    def copy(self, source_key: str, key: str) -> None:
        """Copy an object inside the store (a hard link or a server-side copy: no bytes through us)."""

    def get_bytes(self, key: str) -> bytes:
        """Read a whole (small) object; ``ReleaseError`` if missing."""

    def open(self, key: str) -> BinaryIO:
        """A seekable binary reader of an object (for Parquet footers: only the bytes read are fetched)."""

    def exists(self, key: str) -> bool:
        """Whether an object exists."""

    def list(self, prefix: str) -> list[str]:
        """Keys under a prefix (recursive), sorted; dot-named objects (temporaries) are left out."""

    def children(self, prefix: str) -> builtins.list[str]:
        """Names of the immediate children (objects and folders) under a prefix, sorted."""

    def delete(self, key: str) -> None:
        """Remove an object; a missing one is not an error."""

    def delete_prefix(self, prefix: str) -> int:
        """Remove every object under a prefix; returns how many."""

    def modified(self, key: str) -> float:
        """When an object was last written (seconds since the epoch)."""

    def download(self, key: str, target: Path) -> None:
        """Copy an object to a local file."""

    def sha256(self, key: str) -> str:
        """Hex SHA-256 of an object's bytes, streamed."""

    def size(self, key: str) -> int:
        """Size of an object in bytes."""

    def local_path(self, key: str) -> Path | None:
        """A local path for reading the object in place, if the backend has one."""

    def links(self, prefix: str) -> builtins.list[str]:
        """Keys under a prefix that are symbolic links (files or folders), or the prefix or a folder above it
        if that is one; object stores have none."""

    def describe(self, key: str = "") -> str:
        """Where an object lives, for people (a path or an s3:// URL)."""


class RangedReader(io.RawIOBase):
    """A raw, read-only, seekable view of ``size`` bytes that fetches only the ranges read.

    Wrap it in an :class:`io.BufferedReader`; a subclass says how one range is fetched (:meth:`read_range`).
    """

    def __init__(self, size: int) -> None:
        super().__init__()
        self.size = size
        self.pos = 0

    def read_range(self, start: int, end: int) -> bytes:
        """Bytes ``start`` to ``end - 1`` of the source (fewer at its end)."""
        raise NotImplementedError

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self.pos

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self.pos, io.SEEK_END: self.size}[whence]
        self.pos = max(0, base + offset)
        return self.pos

    def readinto(self, buffer: Any) -> int:
        view = memoryview(buffer).cast("B")
        end = min(self.size, self.pos + len(view))
        if end <= self.pos:
            return 0
        data = self.read_range(self.pos, end)
        n = min(len(data), end - self.pos)
        view[:n] = data[:n]
        self.pos += n
        return n


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

    def _inside(self, key: str) -> Path:
        """The path of an object that must resolve inside the root (no symbolic link out of it)."""
        path = self._path(key)
        real = Path(os.path.realpath(path))
        if real != path and not real.is_relative_to(self.root):
            raise ReleaseError(f"{self.describe(key)} is a symbolic link out of the store: refused")
        return path

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

    def _replace(self, key: str, tmp: Path) -> None:
        try:
            os.replace(tmp, self._path(key))
        finally:
            tmp.unlink(missing_ok=True)

    def put_file(self, key: str, source: Path) -> None:
        self._replace(key, self._staged(self._path(key), source=source))

    def move_file(self, key: str, source: Path) -> None:
        final = self._path(key)
        final.parent.mkdir(parents=True, exist_ok=True)
        try:
            os.replace(source, final)  # same file system: a rename, no copy
        except OSError:
            self.put_file(key, source)
            source.unlink(missing_ok=True)

    def put_bytes(self, key: str, data: bytes) -> None:
        self._replace(key, self._staged(self._path(key), data=data))

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

    def copy(self, source_key: str, key: str) -> None:
        source = self._inside(source_key)
        if not source.is_file():
            raise ReleaseError(f"missing object {self.describe(source_key)}")
        final = self._path(key)
        final.parent.mkdir(parents=True, exist_ok=True)
        tmp = final.with_name(f".{final.name}.{os.getpid()}.{time.monotonic_ns()}.tmp")
        try:
            os.link(source, tmp)  # immutable objects may share their bytes
        except OSError:
            self.put_file(key, source)
            return
        self._replace(key, tmp)

    def get_bytes(self, key: str) -> bytes:
        try:
            return self._inside(key).read_bytes()
        except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
            raise ReleaseError(f"missing object {self.describe(key)}") from None

    def open(self, key: str) -> BinaryIO:
        try:
            return self._inside(key).open("rb")
        except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
            raise ReleaseError(f"missing object {self.describe(key)}") from None

    def exists(self, key: str) -> bool:
        return self._path(key).is_file()

    def list(self, prefix: str) -> list[str]:
        prefix = prefix.rstrip("/")
        base = self._path(prefix) if prefix else self.root
        if not base.is_dir():
            return []
        return sorted(p.relative_to(self.root).as_posix() for p in _walk(base) if not p.name.startswith("."))

    def children(self, prefix: str) -> builtins.list[str]:
        prefix = prefix.rstrip("/")
        base = self._path(prefix) if prefix else self.root
        try:
            return sorted(child.name for child in base.iterdir() if not child.name.startswith("."))
        except (FileNotFoundError, NotADirectoryError):
            return []

    def delete(self, key: str) -> None:
        self._path(key).unlink(missing_ok=True)

    def delete_prefix(self, prefix: str) -> int:
        base = self._path(prefix.rstrip("/"))
        if not base.is_dir():
            return 0
        count = sum(1 for _ in _walk(base))
        shutil.rmtree(base, ignore_errors=True)
        return count

    def modified(self, key: str) -> float:
        try:
            return self._path(key).stat().st_mtime
        except FileNotFoundError:
            raise ReleaseError(f"missing object {self.describe(key)}") from None

    def download(self, key: str, target: Path) -> None:
        source = self._inside(key)
        if not source.is_file():
            raise ReleaseError(f"missing object {self.describe(key)}")
        shutil.copyfile(source, target)

    def sha256(self, key: str) -> str:
        try:
            return sha256_file(self._inside(key))
        except (FileNotFoundError, IsADirectoryError):
            raise ReleaseError(f"missing object {self.describe(key)}") from None

    def size(self, key: str) -> int:
        try:
            return self._inside(key).stat().st_size
        except FileNotFoundError:
            raise ReleaseError(f"missing object {self.describe(key)}") from None

    def local_path(self, key: str) -> Path | None:
        return self._inside(key)

    def links(self, prefix: str) -> builtins.list[str]:
        prefix = prefix.rstrip("/")
        base = self._path(prefix) if prefix else self.root
        found = []
        parts = prefix.split("/") if prefix else []
        for i in range(1, len(parts) + 1):  # a linked folder above the prefix replaces everything below it
            if self.root.joinpath(*parts[:i]).is_symlink():
                return ["/".join(parts[:i])]
        for dirpath, dirs, files in os.walk(base):
            for name in [*dirs, *files]:
                path = Path(dirpath) / name
                if path.is_symlink():
                    found.append(path.relative_to(self.root).as_posix())
        return sorted(found)

    def sweep_temporary(self, prefix: str, max_age_s: float = TEMP_MAX_AGE_S) -> int:
        """Remove the dot-named temporaries that killed writers left under a prefix; returns how many."""
        base = self._path(prefix.rstrip("/")) if prefix else self.root
        cutoff = time.time() - max_age_s
        removed = 0
        for dirpath, _dirs, files in os.walk(base):
            for name in files:
                path = Path(dirpath) / name
                if not (name.startswith(".") and name.endswith(".tmp")):
                    continue
                try:  # a live writer may rename its temporary away between the listing and here
                    old = path.stat().st_mtime < cutoff
                except FileNotFoundError:
                    continue
                if old:
                    path.unlink(missing_ok=True)
                    removed += 1
        return removed

    def describe(self, key: str = "") -> str:
        return str(self.root / key) if key else str(self.root)


def _walk(base: Path) -> Iterator[Path]:
    for dirpath, _dirs, files in os.walk(base):
        for name in files:
            yield Path(dirpath) / name
