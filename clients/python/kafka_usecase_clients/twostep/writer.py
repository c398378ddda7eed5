"""The application side of 2-step logging: `EventLog.send` appends an event to a segment file on
local disk and returns; the forwarder daemon ships it to Kafka. Standard library only.

    log = EventLog("/var/lib/twostep")             # the directory the forwarder watches
    log.send("orders", b"...", key=b"order-17")    # bytes as they are
    log.send("orders", {"id": 17}, schema="order/v2")  # JSON, with content-type and schema headers
    log.close()

Serialization: bytes are sent unchanged; anything else is encoded as compact UTF-8 JSON with the
header `content-type: application/json` and, when given, `schema: <name>/<version>`.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import secrets
import socket
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any, Literal

from kafka_usecase_clients.twostep.segment import CLOSED, FILE_HEADER, OPEN, Headers, encode, segment_name

log = logging.getLogger("twostep.writer")
AUDIT_DIR = "audit"  # the writer's counts, shipped by the forwarder to the audit cluster
AUDIT_TOPIC = "__twostep_written"
BUCKET_MS = 60_000


class DiskBudgetExceeded(Exception):
    """The directory holds `budget` bytes of events not yet forwarded: the event was not written."""


class EventLog:
    def __init__(self, directory: str | os.PathLike, *, segment_bytes: int = 64 * 1024 * 1024,
                 segment_seconds: float = 60.0, fsync: Literal["interval", "always", "never"] = "interval",
                 fsync_interval: float = 1.0, disk_budget_bytes: int = 1024 ** 3,
                 when_full: Literal["raise", "block"] = "raise", block_timeout: float | None = None,
                 audit_interval: float = 1.0):
        """fsync "always" syncs every event before `send` returns (critical use cases); "interval"
        every `fsync_interval` seconds; "never" leaves it to the OS. When the directory holds
        `disk_budget_bytes` (every writer's segments: the forwarder is behind or down), `send` raises
        DiskBudgetExceeded or, with when_full="block", waits up to `block_timeout` seconds for space."""
        if fsync not in ("interval", "always", "never") or when_full not in ("raise", "block"):
            raise ValueError(f"fsync must be interval, always or never and when_full raise or block; "
                             f"got fsync={fsync!r}, when_full={when_full!r}")
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self.writer_id = f"{_safe(socket.gethostname())}-{os.getpid()}-{secrets.token_hex(3)}"
        self.segment_bytes, self.segment_seconds = segment_bytes, segment_seconds
        self.fsync, self.fsync_interval = fsync, fsync_interval
        self.disk_budget_bytes, self.when_full, self.block_timeout = disk_budget_bytes, when_full, block_timeout
        self.audit_interval = audit_interval
        self._lock = threading.Lock()
        self._space = threading.Condition(self._lock)
        self._sequence = 0
        self._counts: Counter[tuple[str, int]] = Counter()  # (topic, bucket start ms) -> events written
        self._segment = _Segment(self.directory, self.writer_id)
        self._audit = _Segment(self.directory / AUDIT_DIR, self.writer_id)
        self._audit_sequence = 0
        self._used = _directory_bytes(self.directory)  # refreshed by the background thread
        self._closed = False
        self._last_sync = self._last_counts = time.monotonic()
        self._stop = threading.Event()
        self._background = threading.Thread(target=self._run, name=f"twostep-{self.writer_id}", daemon=True)
        self._background.start()

    def send(self, topic: str, value: Any, key: bytes | str | None = None, headers: Headers | None = None,
             schema: str | None = None) -> None:
        """Append one event; when this returns it is on disk (synced, with fsync="always")."""
        headers = list(headers or ())
        if not isinstance(value, (bytes, bytearray, memoryview)):
            value = json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode()
            headers.append(("content-type", b"application/json"))
            if schema:
                headers.append(("schema", schema.encode()))
        if isinstance(key, str):
            key = key.encode()
        now_ms = time.time_ns() // 1_000_000
        with self._lock:
            if self._closed:
                raise ValueError("EventLog is closed")
            record = encode(now_ms, self._sequence, topic, bytes(value), key, headers)
            self._wait_for_space(len(record))
            self._segment.append(record, self.segment_bytes, self.segment_seconds)
            if self.fsync == "always":
                os.fsync(self._segment.fd)
            self._used += len(record)
            self._sequence += 1
            self._counts[(topic, now_ms - now_ms % BUCKET_MS)] += 1

    def close(self) -> None:
        """Write out the counts, sync and close the segment: the forwarder may delete it once sent."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
        self._stop.set()
        self._background.join()
        with self._lock:
            self._write_counts()
            self._segment.close(sync=self.fsync != "never")
            self._audit.close(sync=True)

    def __enter__(self) -> EventLog:
        return self

    def __exit__(self, *_) -> None:
        self.close()

    def _wait_for_space(self, size: int) -> None:
        deadline = None if self.block_timeout is None else time.monotonic() + self.block_timeout
        while self._used + size > self.disk_budget_bytes:
            if self.when_full == "raise" or (deadline is not None and time.monotonic() >= deadline):
                raise DiskBudgetExceeded(
                    f"{self.directory}: the disk budget of {self.disk_budget_bytes} bytes is used up by events not "
                    f"yet forwarded (is the forwarder running?); this event was not written")
            self._space.wait(0.1)

    def _run(self) -> None:
        while not self._stop.wait(0.1):
            try:
                self._housekeeping()
            except OSError:  # e.g. a full disk: sends report it themselves; keep counting
                log.exception("twostep writer %s: background work failed", self.writer_id)

    def _housekeeping(self) -> None:
        """Counts to the audit segment, interval fsyncs, age rotation, the disk budget's usage."""
        now = time.monotonic()
        used = _directory_bytes(self.directory)
        with self._lock:
            self._used = used
            self._space.notify_all()
            if self._segment.expired(self.segment_seconds):
                self._segment.rotate(sync=self.fsync != "never")
            if now - self._last_counts >= self.audit_interval:
                self._write_counts()
                self._last_counts = now
        if self.fsync == "interval" and now - self._last_sync >= self.fsync_interval:
            with self._lock:  # a duplicate, so that sends need not wait for the disk (nor rotate it away)
                fd = os.dup(self._segment.fd) if self._segment.fd >= 0 else -1
            if fd >= 0:
                try:
                    os.fsync(fd)
                finally:
                    os.close(fd)
            self._last_sync = now

    def _write_counts(self) -> None:
        """The counts since the last call, as records of AUDIT_TOPIC (synced: they are the proof)."""
        if not self._counts:
            return
        now_ms = time.time_ns() // 1_000_000
        for (topic, bucket), count in sorted(self._counts.items()):
            value = json.dumps({"topic": topic, "bucket": bucket // 1000, "count": count}).encode()
            self._audit.append(encode(now_ms, self._audit_sequence, AUDIT_TOPIC, value), self.segment_bytes,
                               self.segment_seconds)
            self._audit_sequence += 1
        self._audit.sync()
        self._counts.clear()


class _Segment:
    """The writer's one open segment file; rotated by size and age."""

    def __init__(self, directory: Path, writer_id: str):
        directory.mkdir(parents=True, exist_ok=True)
        self.directory, self.writer_id = directory, writer_id
        self.index, self.fd, self.path, self.size, self.opened = -1, -1, None, 0, 0.0

    def append(self, record: bytes, max_bytes: int, max_seconds: float) -> None:
        if self.fd < 0:
            self._open()
        elif self.size + len(record) > max_bytes or self.expired(max_seconds):
            self.rotate(sync=False)
            self._open()
        os.write(self.fd, record)
        self.size += len(record)

    def expired(self, max_seconds: float) -> bool:
        return self.fd >= 0 and time.monotonic() - self.opened >= max_seconds

    def sync(self) -> None:
        if self.fd >= 0:
            os.fsync(self.fd)

    def rotate(self, sync: bool) -> None:
        """Close the open segment: renamed to .seg, it is the forwarder's to delete once sent."""
        if self.fd < 0:
            return
        if sync:
            os.fsync(self.fd)
        os.rename(self.path, self.path.with_suffix(CLOSED))
        os.close(self.fd)  # releases the lock only after the rename: never an unlocked .open
        self.fd, self.path = -1, None

    close = rotate

    def _open(self) -> None:
        self.index += 1
        self.path = self.directory / segment_name(self.writer_id, self.index, OPEN)
        self.fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_APPEND, 0o644)
        fcntl.flock(self.fd, fcntl.LOCK_EX)  # held while open: a reader that gets it knows we died
        os.write(self.fd, FILE_HEADER)
        self.size, self.opened = len(FILE_HEADER), time.monotonic()


def _directory_bytes(directory: Path) -> int:
    total = 0
    for folder in (directory, directory / AUDIT_DIR):
        try:
            with os.scandir(folder) as entries:
                for entry in entries:
                    if entry.name.endswith((OPEN, CLOSED)):
                        try:
                            total += entry.stat().st_size
                        except FileNotFoundError:
                            pass  # deleted by the forwarder meanwhile
        except FileNotFoundError:
            pass
    return total


def _safe(name: str) -> str:
    return "".join(c if c.isalnum() or c in "._" else "_" for c in name)[:40] or "host"
