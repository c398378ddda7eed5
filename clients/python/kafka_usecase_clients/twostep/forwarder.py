"""The forwarder daemon: ships the events writers appended to a directory to Kafka, at least once.

Each cycle reads a batch of records from the segments (oldest first), produces them with an
idempotent producer (acks=all) to the cluster their topic is routed to, together with the
"delivered" audit counts of the batch, waits for every delivery report, and only then persists each
segment's position (write + rename). A closed segment that is fully delivered is deleted. A kill -9
re-sends at most the last batch; the audit counts those duplicates. Brokers being down only makes
the backlog on disk grow: the producer never gives up on a message (message.timeout.ms=0).
"""

from __future__ import annotations

import argparse
import fcntl
import json
import logging
import os
import signal
import struct
import sys
import threading
import time
import tomllib
import zlib
from bisect import bisect_left
from collections import Counter
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from confluent_kafka import KafkaError, KafkaException, Producer

from kafka_usecase_clients.twostep import audit
from kafka_usecase_clients.twostep.segment import (BODY, CLOSED, FILE_HEADER, FRAME, MAX_RECORD_BYTES, SYNC,
                                                   Corrupt, Record, decode, next_valid, record_length, segments)
from kafka_usecase_clients.twostep.writer import AUDIT_DIR, AUDIT_TOPIC, BUCKET_MS

log = logging.getLogger("twostep.forwarder")
ID_HEADER = "twostep.id"
READ_BYTES = 1024 * 1024
IDLE_CLOSE_SECONDS = 2.0  # an open segment this quiet is checked for a dead writer
try:  # the hot loop in C, when the package was built with a compiler (see _scan.c)
    from kafka_usecase_clients.twostep._scan import scan as _scan
except ImportError:
    _scan = None
# The frame and fixed body fields at once, the sync marker as an integer (no bytes object per record).
_FAST_HEAD = struct.Struct(">HIIQQHHi")
_SYNC = int.from_bytes(SYNC, "big")
# Kafka refuses these records for good: set aside (quarantined) rather than retried forever.
REFUSED_FOR_GOOD = {KafkaError.MSG_SIZE_TOO_LARGE, KafkaError.INVALID_RECORD,
                    KafkaError.RECORD_LIST_TOO_LARGE, KafkaError.INVALID_MSG_SIZE}


@dataclass
class Cluster:
    name: str
    config: dict  # librdkafka settings: bootstrap.servers, security, SASL

    def producer(self, on_error=None) -> Producer:
        # Never give up on a message (the disk is the buffer); report only failures to Python: a
        # callback per delivered message would cost more than the produce call itself.
        return Producer({"enable.idempotence": True, "acks": "all", "linger.ms": 5, "batch.size": 1_000_000,
                         "message.timeout.ms": 0, "queue.buffering.max.messages": 1_000_000,
                         "queue.buffering.max.kbytes": 1_048_576, "log_level": 3,
                         **({"delivery.report.only.error": True, "on_delivery": on_error} if on_error else {}),
                         **self.config})


@dataclass
class Routes:
    """Topic -> cluster: the longest matching prefix wins, else the default cluster."""

    default: Cluster
    prefixes: list[tuple[str, Cluster]] = field(default_factory=list)
    audit_cluster: Cluster | None = None  # where audit counts go; the default cluster when not set
    audit_topic: str = audit.DEFAULT_TOPIC

    def cluster(self, topic: str) -> Cluster:
        best = max((p for p in self.prefixes if topic.startswith(p[0])), key=lambda p: len(p[0]), default=None)
        return best[1] if best else self.default


class Metrics:
    """Prometheus text exposition, standard library only."""

    def __init__(self):
        self.lock = threading.Lock()
        self.events = Counter()  # topic -> events forwarded
        self.bytes = 0
        self.errors = Counter()  # kind -> count
        self.corrupt = 0
        self.backlog_bytes = self.backlog_files = 0
        self.oldest_age = 0.0

    def render(self) -> str:
        with self.lock:
            lines = ["# HELP twostep_events_forwarded_total Events delivered to Kafka.",
                     "# TYPE twostep_events_forwarded_total counter"]
            lines += [f'twostep_events_forwarded_total{{topic="{t}"}} {n}' for t, n in sorted(self.events.items())]
            lines += ["# HELP twostep_bytes_forwarded_total Record bytes delivered to Kafka.",
                      "# TYPE twostep_bytes_forwarded_total counter", f"twostep_bytes_forwarded_total {self.bytes}",
                      "# HELP twostep_backlog_bytes Bytes on disk not yet delivered.",
                      "# TYPE twostep_backlog_bytes gauge", f"twostep_backlog_bytes {self.backlog_bytes}",
                      "# HELP twostep_backlog_files Segments not yet fully delivered.",
                      "# TYPE twostep_backlog_files gauge", f"twostep_backlog_files {self.backlog_files}",
                      "# HELP twostep_oldest_unforwarded_event_age_seconds Age of the oldest event not yet delivered.",
                      "# TYPE twostep_oldest_unforwarded_event_age_seconds gauge",
                      f"twostep_oldest_unforwarded_event_age_seconds {self.oldest_age:.3f}",
                      "# HELP twostep_corrupt_records_total Corrupt records set aside in quarantine/.",
                      "# TYPE twostep_corrupt_records_total counter", f"twostep_corrupt_records_total {self.corrupt}",
                      "# HELP twostep_errors_total Delivery and I/O errors, by kind.",
                      "# TYPE twostep_errors_total counter"]
            lines += [f'twostep_errors_total{{kind="{k}"}} {n}' for k, n in sorted(self.errors.items())]
        return "\n".join(lines) + "\n"

    def serve(self, port: int, host: str = "0.0.0.0") -> ThreadingHTTPServer:
        metrics = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):
                body = metrics.render().encode() if self.path == "/metrics" else b"ok\n"
                self.send_response(200)
                self.send_header("Content-Type", "text/plain; version=0.0.4")
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *_):
                pass

        server = ThreadingHTTPServer((host, port), Handler)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        return server


class _Segment:
    """A segment being forwarded: what was read and sent, and what Kafka has confirmed."""

    def __init__(self, path: Path):
        self.path, self.stem = path, path.stem
        self.file = open(path, "rb")
        self.position_file = path.with_suffix(".pos")
        self.confirmed = _read_position(self.position_file)
        self.sent = self.confirmed
        self.last_growth = time.monotonic()
        self.size = 0
        self.writer = path.stem.rsplit("-", 1)[0]
        self.id_format = self.writer.encode().replace(b"%", b"%%") + b":%d"  # the twostep.id header
        self.holds_counts = path.parent.name == AUDIT_DIR  # the writer's audit counts, not events

    @property
    def closed(self) -> bool:
        return self.path.suffix == CLOSED

    def refresh(self, path: Path) -> None:
        self.path, self.position_file = path, path.with_suffix(".pos")
        size = os.fstat(self.file.fileno()).st_size
        if size != self.size:
            self.size, self.last_growth = size, time.monotonic()

    def persist(self) -> None:
        temporary = self.position_file.with_suffix(".pos.tmp")
        temporary.write_text(str(self.confirmed))
        os.replace(temporary, self.position_file)

    def writer_gone(self) -> bool:
        """An open segment whose writer's lock is free: the writer died without closing it."""
        try:
            fcntl.flock(self.file.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False
        fcntl.flock(self.file.fileno(), fcntl.LOCK_UN)
        return True


@dataclass
class _Chunk:
    """Records of one segment sent in one batch: bytes start..end, and what to set aside (quarantine)
    once the batch is confirmed: a corrupt span, records Kafka refused for good."""

    segment: _Segment
    start: int
    end: int = 0
    count: int = 0  # records read (events, or a writer's audit counts)
    stamps: list[int] = field(default_factory=list)  # per event sent: its write time
    topics: list[str] = field(default_factory=list)  # ... and its topic
    corrupt: tuple[int, int, str] | None = None
    refused: list[tuple[Record, str]] = field(default_factory=list)
    _spans: tuple | None = field(default=None, repr=False)

    def spans(self) -> tuple[list[int], list[tuple[str, int, int, int]]]:
        """bucket_spans of the events sent, computed once: the delivered counts sent with the batch
        and the delays recorded when it is confirmed both use them."""
        if self._spans is None:
            self._spans = bucket_spans(self.stamps, self.topics)
        return self._spans


class Forwarder:
    def __init__(self, directory: str | os.PathLike, routes: Routes, *, batch_events: int = 50_000,
                 poll_interval: float = 0.02, shutdown_seconds: float = 10.0, record_delays: bool = False):
        self.directory = Path(directory)
        self.quarantine = self.directory / "quarantine"
        self.routes, self.batch_events, self.poll_interval = routes, batch_events, poll_interval
        self.shutdown_seconds = shutdown_seconds
        self.metrics = Metrics()
        self.delays_ms: list[float] | None = [] if record_delays else None  # benchmarks: every event's delay
        self.source = f"forwarder-{os.uname().nodename}-{os.getpid()}"
        self._producers: dict[str, Producer] = {}
        self._route_cache: dict[str, Producer] = {}
        self._segments: dict[str, _Segment] = {}
        self._errors: list[tuple[KafkaError, str, list]] = []  # failed deliveries: error, topic, headers
        self._last_scan = self._last_delays = self._last_metrics = 0.0
        self._delays: dict[tuple[str, int], audit.DelayHistogram] = {}
        self.stop = threading.Event()

    # --- the loop -------------------------------------------------------------------------------
    def run(self) -> None:
        """Forward until `stop` is set; positions are persisted only for delivered batches."""
        while not self.stop.is_set():
            if not self.cycle():
                self.stop.wait(self.poll_interval)
            self._refresh_metrics()
        self.close()

    def close(self) -> None:
        """Release the producers and segment files (what was not confirmed is re-sent next run)."""
        self._producers.clear()
        self._route_cache.clear()
        for segment in self._segments.values():
            segment.file.close()
        self._segments.clear()

    def _refresh_metrics(self) -> None:
        """The backlog gauges, at most once a second (also while a batch waits for brokers)."""
        if time.monotonic() - self._last_metrics >= 1.0:
            self._scan(force=False)
            self._update_backlog()
            self._last_metrics = time.monotonic()

    def cycle(self) -> int:
        """One batch: read and produce, wait for delivery, set aside what Kafka cannot take, persist,
        delete what is done. Returns how many records moved (forwarded or set aside)."""
        self._scan(force=False)
        self._emit_delays()
        self._errors.clear()
        chunks: list[_Chunk] = []
        room = self.batch_events
        for segment in list(self._segments.values()):
            while room > 0:  # a segment is read in chunks: as many as the batch has room for
                chunk = self._send(segment, room)
                if chunk is None:
                    break
                chunks.append(chunk)
                segment.sent, room = chunk.end, room - chunk.count
        if not chunks:
            self._delete_finished()
            return 0
        delivered = self._produce_delivered_counts(chunks)
        touched = list({id(chunk.segment): chunk.segment for chunk in chunks}.values())
        if not self._flush():
            return 0  # stopped before Kafka confirmed all: the next run re-sends the batch
        if self._errors and not self._settle_errors(chunks):
            for segment in touched:
                segment.sent = segment.confirmed  # retried from where Kafka last confirmed
            self.stop.wait(1.0)
            return 0
        acked = time.time() * 1000
        for chunk in chunks:
            self._set_aside(chunk, delivered)
        for segment in touched:
            segment.confirmed = segment.sent
            segment.persist()
        self._account(chunks, delivered, acked)
        self._delete_finished()
        return sum(chunk.count for chunk in chunks) or 1

    def _send(self, segment: _Segment, limit: int) -> _Chunk | None:
        """Produce up to `limit` complete records after what was sent; None when there are none.
        Bytes that can never become a record end the chunk, to be set aside once it is confirmed."""
        start = max(segment.sent, len(FILE_HEADER))
        available = segment.size - start
        if available <= 0:
            return None
        data = os.pread(segment.file.fileno(), min(READ_BYTES, available), start)
        needed = record_length(data)
        if needed is not None and len(data) < min(needed, MAX_RECORD_BYTES + 64, available):
            data = os.pread(segment.file.fileno(), min(needed, available), start)  # one record > READ_BYTES
        chunk = _Chunk(segment, start, start)
        try:
            if segment.holds_counts:
                self._send_counts(data, chunk, limit)
            else:
                self._send_events(data, chunk, limit)
        except Corrupt as corrupt:
            chunk.end = corrupt.offset
            if corrupt.resume is None and not segment.closed:
                return chunk if chunk.count else None  # at the tail of an open segment: wait for the writer
            end = corrupt.resume if corrupt.resume is not None else start + len(data)
            chunk.corrupt, chunk.end = (corrupt.offset, end, corrupt.why), end
            return chunk
        if not chunk.count and len(data) == available and segment.closed and chunk.end < segment.size:
            # A closed segment ends here in something that is no whole record: a writer that died
            # mid-write, or a damaged length; records after it (if any) are still delivered.
            resume = next_valid(data, chunk.end - start)
            end = segment.size if resume is None else start + resume
            chunk.corrupt = (chunk.end, end, "no whole record (a damaged length, or a writer that died mid-write)")
            chunk.end = end
        return chunk if chunk.count or chunk.corrupt else None

    def _send_events(self, data: bytes, chunk: _Chunk, limit: int) -> None:
        """Decode and produce in one pass. This is the forwarder's hot loop. A plain event (the same
        topic as the one before, no key, no headers: nearly all) needs no record object: the C
        scanner (_scan.c) returns runs of them, or, without it, the same checks run here one event
        at a time. Anything else (a new topic, a key, headers, any doubt) goes through `decode`,
        which also raises Corrupt with the reason."""
        base, size, position, remaining = chunk.start, len(data), 0, limit
        view, unpack_head, crc32, id_format = memoryview(data), _FAST_HEAD.unpack_from, zlib.crc32, \
            chunk.segment.id_format
        stop, frame_size = size - _FAST_HEAD.size, FRAME.size
        stamps, topics = chunk.stamps, chunk.topics
        # The current topic; no record matches it before the first one is decoded.
        topic, topic_bytes, topic_length_now, producer, value_offset, min_length = None, b"", -1, None, 0, 0
        writer = chunk.segment.writer.encode()
        while position <= stop and remaining:
            if _scan is not None and topic is not None:  # the C loop: the run of plain events from here
                values, times, ids, position = _scan(data, position, remaining, topic_bytes, writer)
                for value, timestamp_ms, event_id in zip(values, times, ids):
                    try:
                        producer.produce(topic, value, None, headers=[(ID_HEADER, event_id)], timestamp=timestamp_ms)
                    except (BufferError, KafkaException):
                        self._produce(producer, topic, value, None, [(ID_HEADER, event_id)], timestamp_ms)
                stamps += times
                topics += [topic] * len(times)
                remaining -= len(times)
                if position > stop or not remaining:
                    break
            sync, length, crc, timestamp_ms, sequence, topic_length, header_count, key_length = \
                unpack_head(data, position)
            end = position + frame_size + length
            if end > size:
                if sync == _SYNC and length <= MAX_RECORD_BYTES:
                    break  # not all written (yet)
            elif sync == _SYNC and key_length < 0 and not header_count and topic_length == topic_length_now \
                    and length >= min_length and data.startswith(topic_bytes, position + _FAST_HEAD.size) \
                    and crc32(view[position + frame_size:end]) == crc:
                headers = [(ID_HEADER, id_format % sequence)]
                try:
                    producer.produce(topic, data[position + value_offset:end], None, headers=headers,
                                     timestamp=timestamp_ms)
                except (BufferError, KafkaException):
                    self._produce(producer, topic, data[position + value_offset:end], None, headers, timestamp_ms)
                stamps.append(timestamp_ms)
                topics.append(topic)
                position = end
                remaining -= 1
                continue
            try:
                (record,), _ = decode(data, position, base, limit=1)
            except Corrupt:
                chunk.count = len(stamps)
                raise
            if record.topic != topic:
                topic, topic_bytes = record.topic, record.topic.encode()
                topic_length_now = len(topic_bytes)
                producer = self._route_cache[topic] if topic in self._route_cache else self._route(topic)
                value_offset, min_length = _FAST_HEAD.size + len(topic_bytes), BODY.size + len(topic_bytes)
            self._produce(producer, topic, record.value, record.key,
                          [*record.headers, (ID_HEADER, id_format % sequence)], timestamp_ms)
            stamps.append(timestamp_ms)
            topics.append(topic)
            position = end
            remaining -= 1
        chunk.count = len(stamps)
        chunk.end = base + position

    def _send_counts(self, data: bytes, chunk: _Chunk, limit: int) -> None:
        """A writer's audit counts, to the audit cluster as "written" messages."""
        try:
            records, chunk.end = decode(data, 0, base=chunk.start, limit=limit)
            corrupt = None
        except Corrupt as error:
            records, corrupt = error.records, error
        for record in records:
            if record.topic == AUDIT_TOPIC:
                count = json.loads(record.value)
                self._audit_producer().produce(
                    self.routes.audit_topic, audit.written(chunk.segment.writer, count["topic"], count["bucket"],
                                                           count["count"], record.sequence),
                    key=count["topic"].encode())
        chunk.count = len(records)
        if corrupt:
            raise corrupt

    def _produce(self, producer: Producer, topic: str, value: bytes, key: bytes | None, headers: list,
                 timestamp_ms: int) -> None:
        """Produce; when the producer's queue is full, let it drain first. A message the client
        refuses outright (larger than message.max.bytes) is handled as a failed delivery."""
        while True:
            try:
                return producer.produce(topic, value, key, headers=headers, timestamp=timestamp_ms)
            except BufferError:
                while producer.flush(0.05) and len(producer) > 100_000:
                    pass
            except KafkaException as refused:
                return self._errors.append((refused.args[0], topic, headers))

    def _produce_delivered_counts(self, chunks: list[_Chunk]) -> dict[tuple[str, int], int]:
        """The batch's "delivered" counts, sent with it: a batch re-sent after a kill is counted
        again, as its events arrive again."""
        delivered: dict[tuple[str, int], int] = {}
        for chunk in chunks:
            if chunk.stamps:
                for topic, bucket, lo, hi in chunk.spans()[1]:
                    delivered[(topic, bucket)] = delivered.get((topic, bucket), 0) + hi - lo
        producer = self._audit_producer()
        for (topic, bucket), count in delivered.items():
            producer.produce(self.routes.audit_topic, audit.delivered(self.source, topic, bucket // 1000, count),
                             key=topic.encode())
        return delivered

    def _on_delivery(self, error: KafkaError, message) -> None:
        """Called for failed messages only (delivery.report.only.error)."""
        self._errors.append((error, message.topic(), message.headers() or []))

    def _flush(self) -> bool:
        """Wait until every produced message is acknowledged (however long brokers are away); once
        asked to stop, at most `shutdown_seconds` more. False if not all were acknowledged."""
        deadline = None
        for producer in self._producers.values():
            while producer.flush(0.2) > 0:
                self._refresh_metrics()
                if self.stop.is_set():
                    deadline = deadline or time.monotonic() + self.shutdown_seconds
                    if time.monotonic() > deadline:
                        return False
        return True

    def _settle_errors(self, chunks: list[_Chunk]) -> bool:
        """Note the records Kafka refuses for good, to be set aside; True when nothing is left to
        retry. (Retrying re-sends the whole batch: the refused records are found again then.)"""
        retry = False
        for error, topic, headers in self._errors:
            self.metrics.errors[error.name()] += 1
            if error.code() not in REFUSED_FOR_GOOD:
                retry = True
                log.warning("delivery to %s failed, the batch is retried: %s", topic, error.str())
                if error.fatal():  # the idempotent producer cannot go on: new producers for the retry
                    self._producers.clear()
                    self._route_cache.clear()
                continue
            writer, _, sequence = dict(headers).get(ID_HEADER, b"").decode().rpartition(":")
            for chunk in chunks:
                if chunk.segment.writer == writer and not chunk.segment.holds_counts:
                    record = _find(chunk, int(sequence))
                    if record is not None:
                        chunk.refused.append((record, f"refused by Kafka: {error.str()}"))
                        break
        self._errors.clear()
        return not retry

    def _set_aside(self, chunk: _Chunk, delivered: dict) -> None:
        """Quarantine the chunk's corrupt bytes and refused records; the refused were counted as
        delivered with the batch, so a correction follows."""
        if chunk.corrupt:
            self._quarantine(chunk.segment, *chunk.corrupt)
        for record, why in chunk.refused:
            self._quarantine(chunk.segment, record.offset, record.end, why)
            bucket = record.timestamp_ms - record.timestamp_ms % BUCKET_MS
            delivered[(record.topic, bucket)] -= 1
            self._audit_producer().produce(self.routes.audit_topic,
                                           audit.delivered(self.source, record.topic, bucket // 1000, -1),
                                           key=record.topic.encode())

    def _account(self, chunks: list[_Chunk], delivered: dict, acked_ms: float) -> None:
        with self.metrics.lock:
            for (topic, _), count in delivered.items():
                self.metrics.events[topic] += count
            for chunk in chunks:
                self.metrics.bytes += chunk.end - chunk.start - (chunk.corrupt[1] - chunk.corrupt[0]
                                                                 if chunk.corrupt else 0)
        for chunk in chunks:
            if not chunk.stamps:
                continue
            stamps, spans = chunk.spans()
            for topic, bucket, lo, hi in spans:
                histogram = self._delays.get((topic, bucket)) or self._delays.setdefault((topic, bucket),
                                                                                          audit.DelayHistogram())
                histogram.add_sorted(stamps, lo, hi, acked_ms)
            if self.delays_ms is not None:
                self.delays_ms.extend(acked_ms - t for t in stamps)

    def _emit_delays(self) -> None:
        """The delay histograms since the last call, to the audit topic (at most once a second)."""
        if not self._delays or time.monotonic() - self._last_delays < 1.0:
            return
        producer = self._audit_producer()
        for (topic, bucket), histogram in self._delays.items():
            producer.produce(self.routes.audit_topic, audit.delays(self.source, topic, bucket // 1000,
                                                                   histogram.counts), key=topic.encode())
        producer.poll(0)
        self._delays.clear()
        self._last_delays = time.monotonic()

    # --- segments -------------------------------------------------------------------------------
    def _scan(self, force: bool) -> None:
        now = time.monotonic()
        if not force and now - self._last_scan < 0.2 and self._segments:
            for segment in self._segments.values():
                segment.refresh(segment.path)
            return
        self._last_scan = now
        found = segments(self.directory) + (segments(self.directory / AUDIT_DIR)
                                            if (self.directory / AUDIT_DIR).exists() else [])
        seen = set()
        for path in found:
            key = str(path.with_suffix(""))
            seen.add(key)
            segment = self._segments.get(key)
            if segment is None:
                try:
                    segment = self._segments[key] = _Segment(path)
                except FileNotFoundError:
                    continue  # renamed from .open to .seg meanwhile: next scan
            segment.refresh(path)
            if not segment.closed and now - segment.last_growth > IDLE_CLOSE_SECONDS and segment.writer_gone():
                closed = path.with_suffix(CLOSED)
                os.rename(path, closed)
                log.warning("segment %s: its writer is gone; closed it", path.name)
                segment.refresh(closed)
        for key in set(self._segments) - seen:
            self._segments.pop(key).file.close()

    def _delete_finished(self) -> None:
        for key, segment in list(self._segments.items()):
            if segment.closed and max(segment.confirmed, len(FILE_HEADER)) >= segment.size and segment.size == os.fstat(
                    segment.file.fileno()).st_size:
                segment.file.close()
                segment.path.unlink(missing_ok=True)
                segment.position_file.unlink(missing_ok=True)
                del self._segments[key]

    def _quarantine(self, segment: _Segment, start: int, end: int, why: str) -> None:
        self.quarantine.mkdir(exist_ok=True)
        target = self.quarantine / f"{segment.stem}.{start}.bad"
        target.write_bytes(os.pread(segment.file.fileno(), end - start, start))
        with self.metrics.lock:
            self.metrics.corrupt += 1
        log.error("segment %s: bytes %d-%d set aside in %s: %s", segment.path.name, start, end, target, why)

    def _update_backlog(self) -> None:
        backlog = [(s, s.size - max(s.confirmed, len(FILE_HEADER))) for s in self._segments.values()]
        backlog = [(s, n) for s, n in backlog if n > 0]
        oldest = None
        for segment, _ in backlog:
            head = os.pread(segment.file.fileno(), 65536, max(segment.confirmed, len(FILE_HEADER)))
            try:
                records, _ = decode(head, 0)
            except Corrupt as corrupt:
                records = corrupt.records
            if records:
                oldest = min(oldest or records[0].timestamp_ms, records[0].timestamp_ms)
        with self.metrics.lock:
            self.metrics.backlog_bytes = sum(n for _, n in backlog)
            self.metrics.backlog_files = len(backlog)
            self.metrics.oldest_age = max(0.0, time.time() - oldest / 1000) if oldest else 0.0

    # --- producers ------------------------------------------------------------------------------
    def _route(self, topic: str) -> Producer:
        producer = self._route_cache[topic] = self._producer(self.routes.cluster(topic))
        return producer

    def _producer(self, cluster: Cluster) -> Producer:
        if cluster.name not in self._producers:
            self._producers[cluster.name] = cluster.producer(on_error=self._on_delivery)
        return self._producers[cluster.name]

    def _audit_producer(self) -> Producer:
        return self._producer(self.routes.audit_cluster or self.routes.default)


def bucket_spans(stamps: list[int], topics: list[str]) -> tuple[list[int], list[tuple[str, int, int, int]]]:
    """Events' timestamps and topics -> the timestamps, sorted per topic, and (topic, bucket start
    ms, first, end) index spans into them per topic and minute: found by bisection when the events
    are of one topic in time order (a writer's chunk, nearly always), else one by one."""
    if topics.count(topics[0]) == len(topics) and stamps == sorted(stamps):
        spans, lo, topic = [], 0, topics[0]
        while lo < len(stamps):
            bucket = stamps[lo] - stamps[lo] % BUCKET_MS
            hi = bisect_left(stamps, bucket + BUCKET_MS, lo)
            spans.append((topic, bucket, lo, hi))
            lo = hi
        return stamps, spans
    ordered = sorted(zip(topics, stamps))
    stamps, spans = [t for _, t in ordered], []
    lo = 0
    while lo < len(ordered):
        topic, bucket = ordered[lo][0], stamps[lo] - stamps[lo] % BUCKET_MS
        hi = lo + 1
        while hi < len(ordered) and ordered[hi][0] == topic and stamps[hi] < bucket + BUCKET_MS:
            hi += 1
        spans.append((topic, bucket, lo, hi))
        lo = hi
    return stamps, spans


def _find(chunk: _Chunk, sequence: int) -> Record | None:
    """The record of the chunk with this sequence number (read again from disk: a rare path)."""
    data = os.pread(chunk.segment.file.fileno(), chunk.end - chunk.start, chunk.start)
    try:
        records = decode(data, 0, base=chunk.start)[0]
    except Corrupt as corrupt:
        records = corrupt.records
    return next((r for r in records if r.sequence == sequence), None)


def _read_position(path: Path) -> int:
    try:
        return int(path.read_text().strip() or 0)
    except (FileNotFoundError, ValueError):
        return 0


# --- command line -------------------------------------------------------------------------------
def cluster_config(bootstrap: str, username: str | None, password_file: str | None,
                   security_protocol: str | None = None, mechanism: str = "SCRAM-SHA-512") -> dict:
    config = {"bootstrap.servers": bootstrap}
    if username:
        if not password_file:
            raise SystemExit("twostep: a SASL username needs a password file (--sasl-password-file)")
        config |= {"security.protocol": security_protocol or "SASL_PLAINTEXT", "sasl.mechanism": mechanism,
                   "sasl.username": username, "sasl.password": Path(password_file).read_text().strip()}
    elif security_protocol:
        config["security.protocol"] = security_protocol
    return config


def routes_from(args) -> Routes:
    """Routes from the command line, or from a TOML file:

        [clusters.default]   bootstrap_servers, sasl_username, sasl_password_file, security_protocol
        [clusters.payments]  ...
        [[routes]]           topic_prefix = "payments.", cluster = "payments"
        [audit]              cluster = "audit", topic = "twostep-audit"
    """
    if args.config:
        data = tomllib.loads(Path(args.config).read_text())
        clusters = {name: Cluster(name, cluster_config(c["bootstrap_servers"], c.get("sasl_username"),
                                                       c.get("sasl_password_file"), c.get("security_protocol")))
                    for name, c in data.get("clusters", {}).items()}
        if "default" not in clusters:
            raise SystemExit(f"{args.config}: [clusters.default] is required")
        try:
            prefixes = [(r["topic_prefix"], clusters[r["cluster"]]) for r in data.get("routes", [])]
            audit_cluster = clusters[data["audit"]["cluster"]] if data.get("audit", {}).get("cluster") else None
        except KeyError as missing:
            raise SystemExit(f"{args.config}: no cluster {missing} under [clusters]") from None
        return Routes(clusters["default"], prefixes, audit_cluster, data.get("audit", {}).get("topic", args.audit_topic))
    if not args.bootstrap_servers:
        raise SystemExit("twostep-forwarder: give --bootstrap-servers or --config")
    default = Cluster("default", cluster_config(args.bootstrap_servers, args.sasl_username, args.sasl_password_file,
                                                args.security_protocol))
    audit_cluster = None
    if args.audit_bootstrap_servers:
        audit_cluster = Cluster("audit", cluster_config(args.audit_bootstrap_servers, args.audit_sasl_username,
                                                        args.audit_sasl_password_file, args.security_protocol))
    return Routes(default, [], audit_cluster, args.audit_topic)


def _stop_within(forwarder: Forwarder, seconds: float) -> None:
    """Ask the loop to stop, and exit regardless after `seconds`: a client library that hangs in
    its teardown (librdkafka's rd_kafka_destroy can, on a pending request) must not hold the pod
    past its grace period. Exiting then loses nothing: positions are persisted, atomically, only
    for batches Kafka confirmed, and the rest is re-sent by the next run."""
    if forwarder.stop.is_set():
        return

    def exit_now() -> None:
        log.warning("shutdown did not finish in %.0fs: exiting; unconfirmed events are re-sent at the next start",
                    seconds)
        logging.shutdown()
        os._exit(0)

    watchdog = threading.Timer(seconds, exit_now)
    watchdog.daemon = True
    watchdog.start()
    forwarder.stop.set()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="twostep-forwarder", description=__doc__.split("\n\n")[0])
    parser.add_argument("--dir", required=True, help="the directory the writers append to")
    parser.add_argument("--config", help="a TOML file with clusters, routes and the audit cluster")
    parser.add_argument("--bootstrap-servers")
    parser.add_argument("--sasl-username")
    parser.add_argument("--sasl-password-file")
    parser.add_argument("--security-protocol", help="default: SASL_PLAINTEXT with a username, else PLAINTEXT")
    parser.add_argument("--audit-bootstrap-servers", help="the audit cluster (default: the events' cluster)")
    parser.add_argument("--audit-sasl-username")
    parser.add_argument("--audit-sasl-password-file")
    parser.add_argument("--audit-topic", default=audit.DEFAULT_TOPIC)
    parser.add_argument("--metrics-port", type=int, default=0, help="serve /metrics here (0: off)")
    parser.add_argument("--batch-events", type=int, default=50_000)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    forwarder = Forwarder(args.dir, routes_from(args), batch_events=args.batch_events)
    if args.metrics_port:
        forwarder.metrics.serve(args.metrics_port)
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: _stop_within(forwarder, forwarder.shutdown_seconds + 10))
    log.info("forwarding %s", args.dir)
    forwarder.run()
    log.info("stopped")
    return 0


if __name__ == "__main__":
    sys.exit(main())
