"""2-step logging throughput, latency and writer cost on the devstack's 1-broker KRaft cluster.

    .venv/bin/python bench/twostep.py [--events 1000000] [--rate 10000] [--seconds 20]

1. Throughput, 100-byte events, the sender pinned to one core (the broker has the other): the
   forwarder draining a directory of --events pre-written events, side by side with a raw
   confluent-kafka producer sending the same events (same headers and timestamps) from memory, the
   ceiling. Both wait for every acknowledgement. --rounds times each; medians are printed. Then
   once more with the forwarder's read loop in Python (as installed without a C compiler).
2. Latency at a steady --rate events/s for --seconds, after a 3 s warm-up: from `send` returning
   to the broker's acknowledgement, as the forwarder sees it (p50/p99).
3. Writer cost per event: fsync "interval" (the default) and fsync "always".
Prints one line. The devstack is reused if running, else started and stopped here.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import os
import statistics
import tempfile
import threading
import time
import uuid
from pathlib import Path

from confluent_kafka.admin import AdminClient, NewTopic

from devstack import kafka, paths, proc
from kafka_usecase_clients.twostep import EventLog
from kafka_usecase_clients.twostep import forwarder as forwarder_module
from kafka_usecase_clients.twostep.forwarder import Cluster, Forwarder, Routes
from kafka_usecase_clients.twostep.segment import FILE_HEADER, decode


def cluster_config() -> tuple[dict, bool]:
    run_root = paths.run_dir()
    plan = kafka.plan("kraft", brokers=1)
    started = not ((stack := proc.Stack.load(plan.name, run_root)) and stack.running())
    stack = kafka.up(plan, run_root)
    return kafka.admin_config(stack), started


def new_topics(config: dict, partitions: int = 3) -> tuple[str, str]:
    suffix = uuid.uuid4().hex[:6]
    topic, audit_topic = f"bench-twostep-{suffix}", f"bench-twostep-audit-{suffix}"
    admin = AdminClient(config)
    for future in admin.create_topics([NewTopic(topic, partitions, -1), NewTopic(audit_topic, 1, -1)]).values():
        future.result(timeout=60)
    return topic, audit_topic


def forwarder_for(directory: Path, config: dict, audit_topic: str, record_delays: bool = False) -> Forwarder:
    return Forwarder(directory, Routes(Cluster("default", config), audit_topic=audit_topic),
                     record_delays=record_delays)


def drain(forwarder: Forwarder, events: int) -> float:
    """Seconds the forwarder takes to deliver `events` events (every acknowledgement)."""
    started, delivered = time.perf_counter(), 0
    while delivered < events:
        moved = forwarder.cycle()
        delivered = sum(forwarder.metrics.events.values())
        if not moved:
            time.sleep(0.001)
    return time.perf_counter() - started


def raw_producer(config: dict, topic: str, directory: Path) -> tuple[float, int]:
    """The same events, read from the same segments into memory first, sent by a bare producer."""
    records = []
    for path in sorted(directory.glob("*.seg")):
        data = path.read_bytes()
        records += decode(data, len(FILE_HEADER))[0]
    messages = [(r.value, r.key, [*r.headers, ("twostep.id", b"bench:%d" % r.sequence)], r.timestamp_ms)
                for r in records]
    gc.freeze()  # a million messages held in memory: the garbage collector need not walk them
    producer = Cluster("raw", config).producer()
    started = time.perf_counter()
    for value, key, headers, timestamp in messages:
        while True:
            try:
                producer.produce(topic, value, key, headers=headers, timestamp=timestamp)
                break
            except BufferError:
                producer.poll(0.05)
    producer.flush(300)
    seconds = time.perf_counter() - started
    gc.unfreeze()
    return seconds, len(messages)


def throughput(config: dict, events: int) -> tuple[float, float]:
    topic, audit_topic = new_topics(config)
    with tempfile.TemporaryDirectory() as tmp:
        directory = Path(tmp)
        with EventLog(directory, fsync="never") as log:
            for i in range(events):
                log.send(topic, b"%099d" % i)
        raw_seconds, sent = raw_producer(config, topic, directory)
        forwarder = forwarder_for(directory, config, audit_topic)
        forwarder_seconds = drain(forwarder, events)
        forwarder.close()
    assert sent == events
    return events / forwarder_seconds, events / raw_seconds


@contextlib.contextmanager
def python_read_loop():
    """The forwarder as installed without a C compiler."""
    scan, forwarder_module._scan = forwarder_module._scan, None
    try:
        yield
    finally:
        forwarder_module._scan = scan


def latency(config: dict, rate: int, seconds: float, warm_up_seconds: float = 3.0) -> tuple[float, float, int]:
    """Send->ack delays at a steady rate, after a warm-up (the producer's connection and the topic's
    metadata are fetched once, at start: that is no steady-state delay)."""
    topic, audit_topic = new_topics(config)
    with tempfile.TemporaryDirectory() as tmp:
        forwarder = forwarder_for(Path(tmp), config, audit_topic, record_delays=True)
        running = threading.Thread(target=forwarder.run)
        running.start()
        with EventLog(tmp) as log:
            warm_up = send_steadily(log, topic, rate, warm_up_seconds)
            while sum(forwarder.metrics.events.values()) < warm_up:
                time.sleep(0.01)
            forwarder.delays_ms.clear()
            measured = send_steadily(log, topic, rate, seconds)
        while sum(forwarder.metrics.events.values()) < warm_up + measured:
            time.sleep(0.05)
        forwarder.stop.set()
        running.join()
    delays = sorted(forwarder.delays_ms)
    return delays[len(delays) // 2], delays[int(len(delays) * 0.99)], len(delays)


def send_steadily(log: EventLog, topic: str, rate: int, seconds: float) -> int:
    began, count = time.monotonic(), int(rate * seconds)
    for i in range(count):
        log.send(topic, b"%099d" % i)
        if i % 100 == 99:
            ahead = began + (i + 1) / rate - time.monotonic()
            if ahead > 0:
                time.sleep(ahead)
    return count


def writer_cost(fsync: str, events: int) -> float:
    """Microseconds per `send` of a 100-byte event."""
    with tempfile.TemporaryDirectory() as tmp, EventLog(tmp, fsync=fsync) as log:
        started = time.perf_counter()
        for i in range(events):
            log.send("t", b"%099d" % i)
        return (time.perf_counter() - started) / events * 1e6


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--rate", type=int, default=10_000)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--rounds", type=int, default=3, help="throughput rounds, forwarder and raw each")
    args = parser.parse_args()
    config, started = cluster_config()
    try:
        os.sched_setaffinity(0, {0})  # the sender on one core; the broker keeps the other
        rounds = [throughput(config, args.events) for _ in range(args.rounds)]  # one core is noisy: a median
        forwarded, raw = statistics.median(r[0] for r in rounds), statistics.median(r[1] for r in rounds)
        ratios = sorted(f / r for f, r in rounds)
        with python_read_loop():
            python_loop, _ = throughput(config, args.events)
        p50, p99, measured = latency(config, args.rate, args.seconds)
        interval_us, always_us = writer_cost("interval", 200_000), writer_cost("always", 2_000)
    finally:
        if started:
            proc.Stack.load(kafka.plan("kraft", brokers=1).name, paths.run_dir()).stop()
    print(f"twostep bench (1-broker KRaft devstack, 100-byte events, sender on 1 core): "
          f"forwarder {forwarded:,.0f} events/s vs raw producer {raw:,.0f} events/s (medians of {len(rounds)} "
          f"rounds; ratio per round {ratios[0]:.2f}-{ratios[-1]:.2f}x), without the C read loop "
          f"{python_loop:,.0f} events/s | "
          f"send->ack at {args.rate:,}/s: p50 {p50:.0f} ms, p99 {p99:.0f} ms ({measured:,} events) | "
          f"writer {interval_us:.1f} us/event (fsync interval), {always_us:.0f} us/event (fsync always)")


if __name__ == "__main__":
    main()
