"""Audit counts: how many events of each topic, per 1-minute bucket of their write time, were
written (by the writers), delivered (acknowledged by Kafka, counted by the forwarder) and consumed
(counted by `ConsumedAudit` in the consuming application); and the completeness report over them.

Counts are JSON messages on an audit topic, in production on a dedicated audit cluster:
    {"stage": "written" | "delivered" | "consumed" | "delays", "source": "...", "topic": "...",
     "bucket": <epoch seconds of the minute>, "count": n, "distinct": n (consumed), "histogram": [...] (delays)}
"""

from __future__ import annotations

import argparse
import json
import os
import re
import socket
import sys
import time
import uuid
from bisect import bisect_left
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timezone

DEFAULT_TOPIC = "twostep-audit"
ID_HEADER = "twostep.id"
# Delay histogram bucket bounds, in ms (the last bucket is everything above the last bound).
DELAY_BOUNDS_MS = (5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10_000, 30_000, 60_000, 300_000)


def written(source: str, topic: str, bucket: int, count: int, sequence: int) -> bytes:
    """`sequence`: the count's own number at its writer; a count the forwarder sends twice (after a
    kill) is counted once."""
    return _message("written", source, topic, bucket, count=count, sequence=sequence)


def delivered(source: str, topic: str, bucket: int, count: int) -> bytes:
    return _message("delivered", source, topic, bucket, count=count)


def delays(source: str, topic: str, bucket: int, histogram: list[int]) -> bytes:
    return _message("delays", source, topic, bucket, histogram=histogram)


def consumed(source: str, topic: str, bucket: int, count: int, distinct: int) -> bytes:
    return _message("consumed", source, topic, bucket, count=count, distinct=distinct)


def _message(stage: str, source: str, topic: str, bucket: int, **fields) -> bytes:
    return json.dumps({"stage": stage, "source": source, "topic": topic, "bucket": bucket, **fields},
                      separators=(",", ":")).encode()


class DelayHistogram:
    def __init__(self):
        self.counts = [0] * (len(DELAY_BOUNDS_MS) + 1)

    def add(self, delay_ms: float) -> None:
        self.counts[bisect_left(DELAY_BOUNDS_MS, delay_ms)] += 1

    def add_sorted(self, stamps: list[int], lo: int, hi: int, now_ms: float) -> None:
        """The delays now_ms - t of the sorted timestamps stamps[lo:hi], by bisection, not one by one."""
        within_previous = 0
        for i, bound in enumerate(DELAY_BOUNDS_MS):
            within = hi - bisect_left(stamps, now_ms - bound, lo, hi)  # delay <= bound: t >= now - bound
            self.counts[i] += within - within_previous
            within_previous = within
        self.counts[-1] += (hi - lo) - within_previous

    def merge(self, counts: list[int]) -> None:
        for i, n in enumerate(counts[:len(self.counts)]):
            self.counts[i] += n

    def percentile(self, q: float) -> float | None:
        """The upper bound (ms) of the bucket holding the q-th quantile; inf above the last bound."""
        total = sum(self.counts)
        if not total:
            return None
        rank, seen = q * total, 0
        for i, n in enumerate(self.counts):
            seen += n
            if seen >= rank:
                return DELAY_BOUNDS_MS[i] if i < len(DELAY_BOUNDS_MS) else float("inf")
        return float("inf")


class SeenSequences:
    """Which sequence numbers of one writer were seen: sorted disjoint [start, end) ranges, so a
    writer's mostly consecutive events cost a few integers, not one entry each."""

    def __init__(self):
        self.starts: list[int] = []
        self.ends: list[int] = []

    def add(self, n: int) -> bool:
        """Record n; False if it was seen before (a duplicate)."""
        i = bisect_left(self.ends, n + 1)  # first range ending after n
        if i < len(self.starts) and self.starts[i] <= n:
            return False
        joins_left = i > 0 and self.ends[i - 1] == n
        joins_right = i < len(self.starts) and self.starts[i] == n + 1
        if joins_left and joins_right:
            self.ends[i - 1] = self.ends[i]
            del self.starts[i], self.ends[i]
        elif joins_left:
            self.ends[i - 1] = n + 1
        elif joins_right:
            self.starts[i] = n
        else:
            self.starts.insert(i, n)
            self.ends.insert(i, n + 1)
        return True


class ConsumedAudit:
    """The consumer side: call `record(message)` for each message read; counts (and distinct counts,
    by the forwarder's `twostep.id` header) are published to the audit topic every `interval`
    seconds, on `flush()` and on `close()`.

        audit = ConsumedAudit({"bootstrap.servers": "audit-kafka:9092", ...})
        for message in ...: audit.record(message)
        audit.close()
    """

    def __init__(self, producer_config: dict, topic: str = DEFAULT_TOPIC, source: str | None = None,
                 interval: float = 5.0):
        from confluent_kafka import Producer
        self.producer = Producer({"enable.idempotence": True, "acks": "all", "log_level": 3, **producer_config})
        self.topic, self.interval = topic, interval
        self.source = source or f"consumer-{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}"
        self._seen: dict[bytes, SeenSequences] = defaultdict(SeenSequences)
        self._counts: dict[tuple[str, int], list[int]] = defaultdict(lambda: [0, 0])  # -> [count, distinct]
        self._last_flush = time.monotonic()

    def record(self, message) -> bool:
        """Count a consumed message; False if this consumer saw the event before."""
        bucket = message.timestamp()[1] // 1000
        bucket -= bucket % 60
        event = next((v for k, v in message.headers() or () if k == ID_HEADER), None)
        new = True
        if event is not None:
            writer, _, sequence = event.rpartition(b":")
            new = self._seen[writer].add(int(sequence))
        counts = self._counts[(message.topic(), bucket)]
        counts[0] += 1
        counts[1] += new
        if time.monotonic() - self._last_flush >= self.interval:
            self.flush(wait=False)
        return new

    def flush(self, wait: bool = True) -> None:
        for (topic, bucket), (count, distinct) in self._counts.items():
            self.producer.produce(self.topic, consumed(self.source, topic, bucket, count, distinct), key=topic.encode())
        self._counts.clear()
        self._last_flush = time.monotonic()
        if wait:
            if self.producer.flush(60) > 0:
                raise RuntimeError(f"audit counts not acknowledged by the audit cluster within 60 s ({self.topic})")
        else:
            self.producer.poll(0)

    def close(self) -> None:
        self.flush(wait=True)


# --- the report -----------------------------------------------------------------------------------
@dataclass
class Row:
    topic: str
    bucket: int
    written: int = 0
    delivered: int = 0
    consumed: int = 0
    distinct: int = 0
    has_consumer: bool = False
    delays: DelayHistogram = field(default_factory=DelayHistogram)

    @property
    def missing(self) -> int:
        """Written but never arrived: by the consumers' distinct counts when a consumer reports this
        topic, else by the forwarder's deliveries."""
        arrived = self.distinct if self.has_consumer else self.delivered
        return max(0, self.written - arrived)

    @property
    def duplicated(self) -> int:
        arrivals = self.consumed if self.has_consumer else self.delivered
        return max(0, arrivals - (self.written - self.missing))


def aggregate(messages: list[dict]) -> list[Row]:
    """Rows per (topic, bucket) from audit messages (pure)."""
    rows: dict[tuple[str, int], Row] = {}
    consumed_topics = {m["topic"] for m in messages if m.get("stage") == "consumed"}
    written_seen: set[tuple[str, int]] = set()
    for m in messages:
        key = (m["topic"], m["bucket"])
        row = rows.get(key) or rows.setdefault(key, Row(*key, has_consumer=m["topic"] in consumed_topics))
        stage = m.get("stage")
        if stage == "written":
            if (m["source"], m["sequence"]) not in written_seen:  # a count sent again after a kill: once
                written_seen.add((m["source"], m["sequence"]))
                row.written += m["count"]
        elif stage == "delivered":
            row.delivered += m["count"]
        elif stage == "consumed":
            row.consumed += m["count"]
            row.distinct += m["distinct"]
        elif stage == "delays":
            row.delays.merge(m["histogram"])
    return sorted(rows.values(), key=lambda r: (r.topic, r.bucket))


def render(rows: list[Row]) -> str:
    header = ("topic", "minute (UTC)", "written", "delivered", "consumed", "missing", "duplicated", "p50 ms", "p99 ms")
    lines = [header]
    for r in rows:
        p50, p99 = r.delays.percentile(0.5), r.delays.percentile(0.99)
        lines.append((r.topic, datetime.fromtimestamp(r.bucket, timezone.utc).strftime("%Y-%m-%d %H:%M"),
                      str(r.written), str(r.delivered), str(r.consumed) if r.has_consumer else "-",
                      str(r.missing), str(r.duplicated), _ms(p50), _ms(p99)))
    widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
    text = "\n".join("  ".join(cell.ljust(w) for cell, w in zip(line, widths)).rstrip() for line in lines)
    missing, duplicated = sum(r.missing for r in rows), sum(r.duplicated for r in rows)
    verdict = f"INCOMPLETE: {missing} events missing" if missing else "complete: nothing missing"
    return f"{text}\n{verdict}; {duplicated} duplicated"


def _ms(value: float | None) -> str:
    if value is None:
        return "-"
    return f">{DELAY_BOUNDS_MS[-1]}" if value == float("inf") else f"<={value}"


def read_audit(config: dict, topic: str, since_seconds: float, timeout: float = 30.0) -> list[dict]:
    """Every audit message for buckets in the last `since_seconds`, read up to the end of the topic."""
    from confluent_kafka import Consumer, KafkaException, TopicPartition
    consumer = Consumer({"group.id": f"twostep-audit-{uuid.uuid4().hex[:8]}", "enable.auto.commit": False,
                         "log_level": 3, **config})
    try:
        metadata = consumer.list_topics(topic, timeout=timeout).topics.get(topic)
        if metadata is None or metadata.error is not None:
            raise SystemExit(f"twostep-audit: cannot read topic {topic}: "
                             f"{metadata.error if metadata else 'no such topic'}")
        # Messages are written after their bucket starts: reading from a minute before `since` is enough.
        start_ms = int((time.time() - since_seconds - 60) * 1000)
        partitions = consumer.offsets_for_times([TopicPartition(topic, p, start_ms) for p in metadata.partitions],
                                                timeout=timeout)
        ends = {}
        for tp in partitions:
            ends[tp.partition] = consumer.get_watermark_offsets(tp, timeout=timeout)[1]
        pending = {tp.partition for tp in partitions if tp.offset >= 0 and tp.offset < ends[tp.partition]}
        consumer.assign([tp for tp in partitions if tp.partition in pending])
        cutoff = time.time() - since_seconds
        messages, deadline = [], time.monotonic() + timeout
        while pending and time.monotonic() < deadline:
            for message in consumer.consume(1000, 1.0):
                if message.error():
                    raise KafkaException(message.error())
                value = json.loads(message.value())
                if value.get("bucket", 0) + 60 > cutoff:
                    messages.append(value)
                if message.offset() + 1 >= ends[message.partition()]:
                    pending.discard(message.partition())
        if pending:
            raise SystemExit(f"twostep-audit: could not read {topic} to its end within {timeout:.0f} s")
        return messages
    finally:
        consumer.close()


def parse_duration(text: str) -> float:
    match = re.fullmatch(r"(\d+(?:\.\d+)?)\s*([smhd]?)", text.strip())
    if not match:
        raise argparse.ArgumentTypeError(f"not a duration: {text!r} (e.g. 90s, 15m, 1h, 2d)")
    return float(match[1]) * {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}[match[2]]


def main(argv: list[str] | None = None) -> int:
    from kafka_usecase_clients.twostep.forwarder import cluster_config
    parser = argparse.ArgumentParser(prog="twostep-audit", description="2-step logging completeness report")
    commands = parser.add_subparsers(dest="command", required=True)
    report = commands.add_parser("report", help="written / delivered / consumed per topic and minute; exit 1 if "
                                                "anything is missing")
    report.add_argument("--since", type=parse_duration, default=3600.0, help="e.g. 15m, 1h (default 1h)")
    report.add_argument("--bootstrap-servers", required=True, help="the audit cluster")
    report.add_argument("--sasl-username")
    report.add_argument("--sasl-password-file")
    report.add_argument("--security-protocol")
    report.add_argument("--topic", default=DEFAULT_TOPIC)
    report.add_argument("--json", action="store_true", help="rows as JSON lines")
    args = parser.parse_args(argv)
    config = cluster_config(args.bootstrap_servers, args.sasl_username, args.sasl_password_file,
                            args.security_protocol)
    rows = aggregate(read_audit(config, args.topic, args.since))
    if args.json:
        for r in rows:
            print(json.dumps({"topic": r.topic, "bucket": r.bucket, "written": r.written, "delivered": r.delivered,
                              "consumed": r.consumed if r.has_consumer else None, "missing": r.missing,
                              "duplicated": r.duplicated, "p50_ms": r.delays.percentile(0.5),
                              "p99_ms": r.delays.percentile(0.99)}))
    else:
        print(render(rows))
    return 1 if any(r.missing for r in rows) else 0


if __name__ == "__main__":
    sys.exit(main())
