"""The download access log: who fetched which release file, kept apart from the audit ledger.

The ledger is a hash chain every run, page and ``verify`` reads; a download is not evidence about the
data, and anyone may download open data, so downloads were a way to grow it without limit. They are
recorded here instead, in the release store's backend (so the log survives the process and works on
S3), and the catalog's per-caller rate limit bounds how fast anyone can add to it.

Layout: ``_access/downloads/<YYYY-MM-DD>/<HHMMSS.fff>-<host>-<pid>-<writer>-<n>.jsonl``, one object per
flush of one writer (UTC dates and times), one JSON object per line. Objects are written once and never
rewritten, so the cost of a flush is its own batch, whatever the size of the day; readers list one
prefix per day.

A buffer is flushed when it holds ``batch`` entries, when its oldest entry is ``flush_s`` old (a
background thread checks), and at process exit. A download by a recipient (shared or restricted
data) is flushed before the file is sent, so it is never served unrecorded; anonymous downloads of
open data are batched, and a process killed outright loses at most its last ``flush_s`` seconds of
them. An entry holds the time, dataset, version, file, the recipient code or ``anonymous``, how the
caller was identified and, for recipients only, their network address: a token used from an
unexpected network is how a leaked token shows, while an anonymous reader's address is personal data
this log has no use for (rate limiting keeps addresses in memory only). Never a token.
"""

from __future__ import annotations

import atexit
import json
import logging
import os
import re
import secrets
import socket
import threading
import time
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from itertools import count
from typing import Any

from datashare.exceptions import DatashareError
from datashare.store import Backend

log = logging.getLogger(__name__)

PREFIX = "_access/downloads"
BATCH = 500
FLUSH_S = 10.0
MAX_BUFFER = 100_000
"""Entries kept while the backend refuses writes; past it the oldest are dropped (and counted in the log)."""


class AccessLogUnavailable(DatashareError):
    """The backend refused a write the caller waited for; the entries stay buffered. Worth a retry."""

    retryable = True


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class AccessLog:
    """A per-process, buffered writer of download entries into a backend."""

    def __init__(self, backend: Backend, *, batch: int = BATCH, flush_s: float = FLUSH_S) -> None:
        self.backend = backend
        self.batch = batch
        self.flush_s = flush_s
        self._buffer: list[dict[str, Any]] = []
        self._oldest = 0.0
        self._lock = threading.Lock()
        self._write_lock = threading.Lock()
        self._seq = count(1)
        # Host, process and writer: two writers never produce the same key, even in one process.
        host = re.sub(r"[^A-Za-z0-9-]", "-", socket.gethostname().split(".")[0])[:40] or "host"
        self._origin = f"{host}-{os.getpid()}-{secrets.token_hex(3)}"
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self.dropped = 0
        atexit.register(self.close)

    def record(self, *, flush: bool = False, **fields: Any) -> dict[str, Any]:
        """Add an entry (``at`` is set here); with ``flush``, it is in the backend when this returns.

        Raises :class:`AccessLogUnavailable` when a ``flush`` write fails: the caller must not serve then.
        """
        entry = {"at": _now(), **fields}
        with self._lock:
            if not self._buffer:
                self._oldest = time.monotonic()
            self._buffer.append(entry)
            if len(self._buffer) > MAX_BUFFER:
                del self._buffer[0]
                self.dropped += 1
            due = flush or len(self._buffer) >= self.batch
        if due:
            self.flush(strict=flush)
        else:
            self._start_timer()
        return entry

    def flush(self, *, strict: bool = False) -> int:
        """Write the buffered entries, one object per UTC day; returns how many were written.

        On a backend error (any: each backend raises its own) the entries go back to the buffer for the
        next flush; with ``strict`` it is raised as :class:`AccessLogUnavailable`.
        """
        with self._write_lock:
            with self._lock:
                pending, self._buffer = self._buffer, []
            if not pending:
                return 0
            by_day: dict[str, list[dict[str, Any]]] = {}
            for entry in pending:
                by_day.setdefault(entry["at"][:10], []).append(entry)
            written = 0
            try:
                for day, entries in by_day.items():
                    stamp = entries[0]["at"][11:23].replace(":", "")
                    key = f"{PREFIX}/{day}/{stamp}-{self._origin}-{next(self._seq):06d}.jsonl"
                    body = "".join(json.dumps(e, ensure_ascii=False, sort_keys=True) + "\n" for e in entries)
                    self.backend.put_bytes(key, body.encode("utf-8"))
                    written += len(entries)
            except Exception as exc:
                with self._lock:
                    self._buffer[:0] = pending[written:]
                    self._oldest = time.monotonic()
                log.exception("Cannot write %s download entries to the access log; kept for the next flush",
                              len(pending) - written)  # fmt: skip
                if strict:
                    raise AccessLogUnavailable(f"the access log cannot be written to {key}: {exc}") from exc
            if self.dropped:
                log.error("The access log dropped %s entries the backend would not take", self.dropped)
            return written

    def _start_timer(self) -> None:
        """A thread that flushes the buffer once its oldest entry is ``flush_s`` old; it ends when idle."""
        with self._lock:
            if self._thread is not None or self._stop.is_set():
                return
            self._thread = threading.Thread(target=self._tick, name="datashare-access-log", daemon=True)
            self._thread.start()

    def _tick(self) -> None:
        while not self._stop.wait(min(1.0, self.flush_s)):
            with self._lock:
                if not self._buffer:
                    self._thread = None  # under the lock: a record() now starts a new one
                    return
                due = time.monotonic() - self._oldest >= self.flush_s
            if due:
                self.flush()

    def close(self) -> None:
        """Stop the timer and write what is left (also run at process exit)."""
        self._stop.set()
        self.flush()


def read(backend: Backend, start: date, end: date) -> Iterator[dict[str, Any]]:
    """Entries from UTC day ``start`` to ``end`` inclusive, in time order; unreadable lines are reported."""
    day = start
    while day <= end:
        entries: list[dict[str, Any]] = []
        for key in backend.list(f"{PREFIX}/{day.isoformat()}"):
            if not key.endswith(".jsonl"):
                continue
            for n, line in enumerate(backend.get_bytes(key).decode("utf-8", errors="replace").splitlines(), 1):
                try:
                    entry = json.loads(line)
                except ValueError:
                    log.warning("%s line %s is not JSON: skipped", key, n)
                    continue
                if isinstance(entry, dict) and isinstance(entry.get("at"), str):
                    entries.append(entry)
        yield from sorted(entries, key=lambda e: e["at"])
        day += timedelta(days=1)
