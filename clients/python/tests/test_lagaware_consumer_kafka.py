"""The lag-aware consumer group as members come and go, each member its own process (KRaft broker):
two members start, a third joins, one leaves with close(), the coordinator is killed with SIGKILL,
a fourth joins, and a member that is not the coordinator is killed, while a keyed producer offers
40 msg/s (each member can do 50)."""

from __future__ import annotations

import json
import os
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

from kafka_usecase_clients.lagaware import LagAwareConsumer, LagAwareCoordinator
from kafka_usecase_clients.lagaware.consumer import control_topic_name, ensure_control_topic

pytestmark = pytest.mark.kafka
MEMBER = Path(__file__).with_name("lagaware_member.py")
RATE, KEYS, PARTITIONS, SERVICE_MS = 40, 50, 10, 20
LEAVE_BOUND = 2.0  # s a partition may stay unowned after its member leaves with close()
# After a member is killed: the coordinator's member_timeout (6 s) from its last heartbeat, then a
# tick (0.5 s) and the next member's poll.
CRASH_BOUND = 7.0
# After the coordinator's own member is killed: the candidates' session timeout (6 s, the broker's
# minimum), their rebalance (a heartbeat or two, two rounds of cooperative assignment), the new
# coordinator's catch-up, then a tick. Members judged from when their heartbeats were written are
# already due.
COORDINATOR_CRASH_BOUND = 10.0
# A killed member's messages processed after its last commit come again: 200 ms of commits at
# 50 msg/s, plus the message in hand on each of its partitions.
TWICE_PER_CRASH = 10 + PARTITIONS


class Member:
    def __init__(self, kafka, topic, group, name, directory: Path):
        self.name, self.output = name, directory / f"{name}.log"
        self.process = subprocess.Popen([sys.executable, str(MEMBER), topic, group, name, str(SERVICE_MS),
                                         str(self.output)],
                                        env={**os.environ, "LAGAWARE_CLIENT_CONFIG": json.dumps(kafka.client_config())})

    def is_coordinator(self) -> bool:
        return Path(f"{self.output}.coordinator").exists()

    def holdings(self) -> list[tuple[float, set[int], str]]:
        """(time, the partitions it held from then on, member) at each change."""
        path = Path(f"{self.output}.held")
        if not path.exists():
            return []
        return [(float(t), {int(p) for p in ps.split(",") if p}, self.name)
                for t, _, ps in (line.partition(" ") for line in path.read_text().splitlines())]

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
    admin = AdminClient(config)  # held until the topic exists: a dropped client fails its futures
    admin.create_topics([NewTopic(topic, PARTITIONS, -1)])[topic].result(timeout=60)
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
    crashes = []  # (member, unix time, whether it was the coordinator)

    def kill(member: Member) -> None:
        crashes.append((member, time.time(), member.is_coordinator()))
        member.process.kill()
        member.process.wait()

    try:
        producer.start()
        _wait_until(lambda: all(m.records() for m in members.values()), 60, "both members processing")
        time.sleep(10)
        members["c"] = Member(kafka_kraft, topic, group, "c", tmp_path)
        time.sleep(10)
        left_at = time.time()
        members["a"].process.send_signal(signal.SIGTERM)
        assert members["a"].process.wait(30) == 0
        time.sleep(10)
        kill(next((m for m in (members["b"], members["c"]) if m.is_coordinator()), members["b"]))
        time.sleep(6)
        members["d"] = Member(kafka_kraft, topic, group, "d", tmp_path)
        time.sleep(14)
        kill(next(m for m in members.values() if m.process.poll() is None and not m.is_coordinator()))
        time.sleep(10)
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
    crashed = {member.name for member, _, _ in crashes}
    print(f"\nproduced {produced[0]}, processed {len(records)}; killed "
          + ", ".join(f"{m.name}{' (the coordinator)' if was else ''}" for m, _, was in crashes))
    assert {r[3] for r in records} >= set(range(produced[0])), "messages lost"

    # Order: apart from what the killed members processed (redelivered after their last commit),
    # every key's sequence only grows, across every hand-off.
    last, backwards = {}, []
    for _, partition, key, sequence, name in records:
        if name in crashed:
            continue
        if key in last and sequence <= last[key]:
            backwards.append((key, sequence, last[key], name))
        last[key] = sequence
    assert backwards == [], backwards[:10]
    # Processed twice: only what a killed member processed after its last commit.
    by_sequence = defaultdict(list)
    for r in records:
        by_sequence[r[3]].append(r[4])
    twice = {s: names for s, names in by_sequence.items() if len(names) > 1}
    assert all(crashed & set(names) for names in twice.values()), twice
    assert len(twice) <= TWICE_PER_CRASH * len(crashes), f"{len(twice)} processed twice"

    holdings = sorted(h for m in members.values() for h in m.holdings())
    leave_gap = _unowned_after(holdings, "a", left_at)
    crash_gaps = [(m.name, was, _unowned_after(holdings, m.name, at)) for m, at, was in crashes]
    print(f"longest a partition went unowned: {leave_gap:.1f} s after a left; "
          + "; ".join(f"{gap:.1f} s after {name}{' (the coordinator)' if was else ''} was killed"
                      for name, was, gap in crash_gaps) + f"; {len(twice)} processed twice")
    assert leave_gap <= LEAVE_BOUND, leave_gap
    for name, was, gap in crash_gaps:
        assert gap <= (COORDINATOR_CRASH_BOUND if was else CRASH_BOUND), (name, was, gap)


def _unowned_after(holdings, name: str, at: float) -> float:
    """The longest any partition `name` held at `at` stayed unowned, until another member held it."""
    held_then = set()
    for t, partitions, member in holdings:
        if member == name and t <= at:
            held_then = partitions
    gaps = []
    for partition in held_then:
        taken = [t for t, partitions, member in holdings if member != name and t > at and partition in partitions]
        gaps.append(taken[0] - at if taken else float("inf"))
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
    admin = AdminClient(config)
    admin.create_topics([NewTopic(f"{group}-data", 2, -1)])[f"{group}-data"].result(timeout=60)
    ensure_control_topic(config, control_topic_name(group))
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


def test_a_member_whose_application_stops_polling_loses_its_partitions_then_rejoins(kafka_kraft):
    """As Kafka's max.poll.interval.ms: a member whose application has not called poll() for
    `max_poll_seconds` stops heartbeating, its partitions go to the other member, and when the
    application polls again it finds its lease gone, drops what it held and rejoins."""
    suffix = uuid.uuid4().hex[:6]
    topic, group = f"lagaware-stuck-{suffix}", f"stuck-{suffix}"
    config = kafka_kraft.client_config()
    admin = AdminClient(config)
    admin.create_topics([NewTopic(topic, 4, -1)])[topic].result(timeout=60)
    stuck = LagAwareConsumer(config, topic, group, name="stuck", max_poll_seconds=2)
    other = LagAwareConsumer(config, topic, group, name="other", coordinate=False)
    try:
        def poll_both_until(condition, what):
            deadline = time.monotonic() + 60
            while not condition():
                assert time.monotonic() < deadline, f"timed out waiting for {what}"
                stuck.poll(0.05)
                other.poll(0.05)

        poll_both_until(lambda: stuck.held and other.held, "both members to hold partitions")
        before = stuck.member
        deadline = time.monotonic() + 60
        while other.held != {0, 1, 2, 3}:  # the stuck application never polls here
            assert time.monotonic() < deadline, f"the other member holds only {other.held}"
            other.poll(0.05)
        stuck.poll(0.05)  # the application is back: its lease ran out, so it let go of everything
        assert stuck.fences == 1 and stuck.member != before and not stuck.held
        poll_both_until(lambda: stuck.held, "the stuck member to rejoin and get partitions back")
        assert not (stuck.held & other.held)
    finally:
        other.close()
        stuck.close()
