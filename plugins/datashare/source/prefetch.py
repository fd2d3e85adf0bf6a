"""Read ahead: a thread fetches the next record batches while the caller works on the current one.

Reading (a database stream, a Parquet decoder) and the caller's work (transforms, encoding) both
release the GIL in Arrow's C++ code, so on two cores they overlap. At most ``depth`` batches wait,
which bounds the memory; an error in the reader is raised in the caller, in order.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterator
from typing import Any

import pyarrow as pa

READ_AHEAD = 2
"""Batches fetched ahead of the caller: enough to keep both cores busy, few enough to bound memory."""


def read_ahead(batches: Iterator[pa.RecordBatch], depth: int = READ_AHEAD) -> Iterator[pa.RecordBatch]:
    """Yield ``batches`` while a thread already fetches the next ones (both sides release the GIL)."""
    slots: queue.Queue[tuple[str, Any]] = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def put(item: tuple[str, Any]) -> bool:
        while not stop.is_set():
            try:
                slots.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def produce() -> None:
        try:
            for batch in batches:
                if not put(("batch", batch)):
                    return
            put(("end", None))
        except BaseException as exc:  # handed to the consumer, which re-raises it
            put(("error", exc))

    thread = threading.Thread(target=produce, name="read-ahead", daemon=True)
    thread.start()
    try:
        while True:
            kind, item = slots.get()
            if kind == "end":
                return
            if kind == "error":
                raise item
            yield item
    finally:
        stop.set()
        thread.join()
