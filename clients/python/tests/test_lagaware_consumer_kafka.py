"""The lag-aware consumer group as members come and go, each member its own process (KRaft broker):
two members start, a third joins, one leaves with close(), the coordinator is killed with SIGKILL,
and a fourth joins, while a keyed producer offers 40 msg/s (each member can do 50)."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections import defaultdict
from pathlib import Path

import pytest
from confluent_kafka import KafkaException, Producer
from confluent_kafka.admin import AdminClient, NewTopic

from kafka_usecase_clients.lagaware import LagAwareCoordinator
from kafka_usecase_clients.lagaware.consumer import control_topic_name

pytestmark = pytest.mark.kafka
MEMBER = Path(__file__).with_name("lagaware_member.py")
RATE, KEYS, PARTITIONS, SERVICE_MS = 40, 50, 10, 20
LEAVE_BOUND = 3.0  # s a partition may go unprocessed after its member leaves with close()
# After a crash: the coordinator's member_timeout (6 s), or, when the coordinator itself died, the
# candidates' session timeout (6 s) before another is elected; then a tick or two and a fetch.
CRASH_BOUND = 10.0


class Member:
    def __init__(self, kafka, topic, group, name, directory: Path):
        self.name, self.output = name, directory / f"{name}.log"
        self.process = subprocess.Popen([sys.executable, str(MEMBER), kafka.client_config()["bootstrap.servers"],
                                         topic, group, name, str(SERVICE_MS), str(self.output)])

    def is_coordinator(self) -> bool:
        return Path(f"{self.output}.coordinator").exists()

    def records(self) -> list[tuple[float, int, str, int, str]]:
        """(time, partition, key, sequence, member) per message this member processed."""
        if not self.output.exists():
            return []
        return [(float(t), int(p), k, int(s), self.name)
                for t, p, k, s in (line.split() for line in self.output.read_text().splitlines())]


def test_members_join_leave_and_crash_without_loss_or_reordering(kafka_kraft, tmp_path):
    suffix = uuid.uuid4().hex[:6]
    topic, group = f"lagaware-members-{suffix}", f"members-{suffix}"
    config = kafka_kraft.client_config()
    AdminClient(config).create_topics([NewTopic(topic, PARTITIONS, -1)])[topic].result(timeout=60)
    members = {name: Member(kafka_kraft, topic, group, name, tmp_path) for name in ("a", "b")}
    produced, stop = [0], threading.Event()

    def produce() -> None:
        producer, next_at = Producer(config), time.monotonic()
        while not stop.is_set():
            sequence = produced[0]
            producer.produce(topic, json.dumps([sequence, time.time()]).encode(), key=str(sequence % KEYS).encode())
            producer.poll(0)
            produced[0] += 1
            next_at += 1 / RATE
            time.sleep(max(0.0, next_at - time.monotonic()))
        assert producer.flush(30) == 0

    producer = threading.Thread(target=produce, daemon=True)
    try:
        _wait_until(lambda: all(m.records() for m in members.values()), 60, "both members processing")
        producer.start()
        time.sleep(10)
        members["c"] = Member(kafka_kraft, topic, group, "c", tmp_path)
        time.sleep(10)
        left_at = time.time()
        members["a"].process.send_signal(signal.SIGTERM)
        assert members["a"].process.wait(30) == 0
        time.sleep(10)
        crashed = next((m for m in (members["b"], members["c"]) if m.is_coordinator()), members["b"])
        was_coordinator, crashed_at = crashed.is_coordinator(), time.time()
        crashed.process.kill()
        crashed.process.wait()
        time.sleep(6)
        members["d"] = Member(kafka_kraft, topic, group, "d", tmp_path)
        time.sleep(14)
        stop.set()
        producer.join()
        everything = lambda: {r[3] for m in members.values() for r in m.records()} >= set(range(produced[0]))  # noqa: E731
        _wait_until(everything, 90, "every message processed")
    finally:
        stop.set()
        for member in members.values():
            if member.process.poll() is None:
                member.process.send_signal(signal.SIGTERM)
        for member in members.values():
            member.process.wait(30)

    records = sorted(r for m in members.values() for r in m.records())
    print(f"\nproduced {produced[0]}, processed {len(records)}; killed {crashed.name}"
          f"{' (the coordinator)' if was_coordinator else ''}")
    assert {r[3] for r in records} >= set(range(produced[0])), "messages lost"

    # Order: apart from what the crashed member processed (redelivered after its last commit), every
    # key's sequence only grows, across every hand-off.
    last, backwards = {}, []
    for _, partition, key, sequence, name in records:
        if name == crashed.name:
            continue
        if key in last and sequence <= last[key]:
            backwards.append((key, sequence, last[key], name))
        last[key] = sequence
    assert backwards == [], backwards[:10]
    # Processed twice: only messages the crashed member processed after its last commit.
    by_sequence = defaultdict(list)
    for r in records:
        by_sequence[r[3]].append(r[4])
    twice = {s: names for s, names in by_sequence.items() if len(names) > 1}
    assert all(crashed.name in names for names in twice.values()), twice
    assert len(twice) <= RATE * 1.0, f"{len(twice)} processed twice: more than a second's worth"

    leave_gap = _unowned_after(records, "a", left_at)
    crash_gap = _unowned_after(records, crashed.name, crashed_at)
    print(f"longest a partition went unprocessed: {leave_gap:.1f} s after a left, {crash_gap:.1f} s after "
          f"{crashed.name} was killed; {len(twice)} processed twice")
    assert leave_gap <= LEAVE_BOUND and crash_gap <= CRASH_BOUND, (leave_gap, crash_gap)


def _unowned_after(records, name: str, at: float) -> float:
    """The longest any partition `name` was processing at `at` went unprocessed from then until
    another member processed it."""
    gaps = []
    for partition in {r[1] for r in records}:
        mine = [r for r in records if r[1] == partition]
        before = [r for r in mine if r[0] <= at]
        if not before or before[-1][4] != name:
            continue
        later = [r[0] for r in mine if r[0] > at and r[4] != name]
        gaps.append(later[0] - at if later else float("inf"))
    return max(gaps, default=0.0)


def _wait_until(condition, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.2)


def test_a_coordinator_replaced_behind_its_back_is_fenced_then_stands_again(kafka_kraft):
    """A producer that takes the coordinator's transactional id (as a coordinator elected while this
    one was paused would) fences it: it stops publishing assignments, leaves the election and, the
    only candidate, is elected again, which in turn fences the usurper."""
    group = f"fencing-{uuid.uuid4().hex[:6]}"
    config = kafka_kraft.client_config()
    AdminClient(config).create_topics([NewTopic(f"{group}-data", 2, -1)])[f"{group}-data"].result(timeout=60)
    coordinator = LagAwareCoordinator(config, f"{group}-data", group, name="first").start()
    try:
        _wait_until(lambda: coordinator.active, 60, "the first election")
        usurper = Producer({**config, "transactional.id": f"{group}.lagaware-coordinator"})
        usurper.init_transactions(30)
        _wait_until(lambda: not coordinator.active, 10, "the coordinator to notice it was fenced")
        _wait_until(lambda: coordinator.active and coordinator.elections == 2, 60, "the second election")
        with pytest.raises(KafkaException) as fenced:
            usurper.begin_transaction()
            usurper.produce(control_topic_name(group), b"{}")
            usurper.commit_transaction(30)
        assert fenced.value.args[0].fatal(), fenced.value
    finally:
        coordinator.close()
