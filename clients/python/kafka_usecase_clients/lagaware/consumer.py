"""A consumer group whose assignment follows each member's measured capacity and each partition's lag.

    consumer = LagAwareConsumer({"bootstrap.servers": ...}, "tasks", group="processor")
    while running:
        message = consumer.poll(0.1)
        if message is None or message.error():
            continue
        process(message)
        consumer.done(message)  # committed within 200 ms, and always before the partition moves
    consumer.close()            # hands its partitions over at once

Why not Kafka's own group protocol: librdkafka has no client-side assignor to plug in and no way
to force a rebalance, and KIP-848's server-side assignors see no member capacity. So members take
partitions with `incremental_assign` (never `subscribe`) and follow a coordinator:

- **Control topic** (`<group>.lagaware`, one partition, created when missing): members write
  heartbeats (what they hold, the assignment epoch they applied, messages processed and seconds
  spent processing them); the coordinator writes assignments (partition -> member, with an epoch
  that only grows), every tick, changed or not.
- **Coordinator**: every member runs a candidate; Kafka's group protocol elects one (the member of
  group `<group>.lagaware-coordinator` that is assigned the control topic's partition). The elected
  one writes through a transactional producer with one `transactional.id` per group, so a deposed
  coordinator that wakes up is fenced by the broker, and members read `read_committed`.
  It plans with `assignment.plan` (capacities from heartbeats, demand from the group's lag).
- **Hand-off without overlap**: a partition moves A -> B in two steps. The coordinator first
  withdraws it from A; A stops fetching it, commits what it processed, and says so in a heartbeat;
  only then is it given to B, which starts at A's commit. So no partition is consumed by two
  members, nothing is processed twice, and per-partition (so per-key) order holds.
- **Crashes**: a member whose heartbeats stop is dead after `member_timeout` (6 s) and its
  partitions are given away without waiting. A member fences itself first: when no heartbeat of its
  own has been acknowledged for `lease_seconds` (3 s), it drops every partition without committing
  and rejoins under a new incarnation id. Messages a dead member processed after its last commit
  (at most `commit_seconds` of work) are delivered again: at-least-once, as with any Kafka group.
- **Bounds** on how long a partition is unowned: about a tick after a member leaves with `close()`;
  `member_timeout` plus a tick after one crashes; about 10 s when the coordinator's own member
  crashes (a session timeout, 6 s, then the candidates' rebalance). While no coordinator runs,
  members keep what they have.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import statistics
import threading
import time
import uuid
from collections import deque
from dataclasses import dataclass, field

from confluent_kafka import OFFSET_END, Consumer, KafkaError, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from kafka_usecase_clients.lagaware.assignment import demand, plan, utilisation
from kafka_usecase_clients.lagaware.lag import LagCache
from kafka_usecase_clients.lagaware.producer import connection_settings

log = logging.getLogger("lagaware.consumer")


def control_topic_name(group: str) -> str:
    return f"{group}.lagaware"


def ensure_control_topic(connection: dict, topic: str, timeout: float = 30) -> None:
    """One partition (one order for heartbeats and assignments); an hour of history is plenty."""
    admin = AdminClient({**connection, "log_level": 3})
    future = admin.create_topics([NewTopic(topic, 1, -1, config={"retention.ms": "3600000"})])[topic]
    error = future.exception(timeout)  # read, not raised: see LagCache.refresh
    if error is not None and error.args[0].code() != KafkaError.TOPIC_ALREADY_EXISTS:
        raise KafkaException(error.args[0])


class LagAwareConsumer:
    def __init__(self, config: dict, topic: str, group: str, *, name: str | None = None, coordinate: bool = True,
                 heartbeat_seconds: float = 0.5, lease_seconds: float = 3.0, commit_seconds: float = 0.2,
                 max_poll_seconds: float = 300.0, control_topic: str | None = None, **coordinator_options):
        """`config`: librdkafka consumer settings (no group.id: `group` is the group whose offsets it
        commits); `name`: this member's name in heartbeats (default host-pid); `coordinate`: also
        stand for election as the group's coordinator (`coordinator_options` go to it);
        `max_poll_seconds`: as Kafka's max.poll.interval.ms, an application that has not called
        poll() for this long stops heartbeating, so its partitions go to the others."""
        self.topic, self.group = topic, group
        self.control = control_topic or control_topic_name(group)
        self.heartbeat_seconds, self.lease_seconds, self.commit_seconds = heartbeat_seconds, lease_seconds, commit_seconds
        self.max_poll_seconds, self._polled_at = max_poll_seconds, time.monotonic()
        connection = connection_settings(config)
        ensure_control_topic(connection, self.control)
        self.name = name or f"{socket.gethostname()}-{os.getpid()}"
        self.member = _incarnation(self.name)
        self._consumer = Consumer({"auto.offset.reset": "earliest", **config, "group.id": group,
                                   "enable.auto.commit": False, "enable.auto.offset.store": False})
        self._reader = Consumer({**connection, "group.id": f"{group}.lagaware-members", "enable.auto.commit": False,
                                 "isolation.level": "read_committed", "log_level": 3})
        self._reader.assign([TopicPartition(self.control, 0, OFFSET_END)])
        self._heartbeats = Producer({**connection, "acks": "all", "enable.idempotence": True, "linger.ms": 0,
                                     "log_level": 3})
        self._lock = threading.Lock()
        self._assignment: tuple[int, dict[int, str]] = (0, {})  # the newest read: epoch, owners
        self.epoch = 0  # the newest applied
        self.held: set[int] = set()
        self._done: dict[int, int] = {}  # partition -> next offset to commit
        self._committed: dict[int, int] = {}
        self._commit_at = 0.0
        self._lease_until = time.monotonic() + lease_seconds
        self._heartbeat_now = threading.Event()
        self._leaving = False
        self.processed, self.busy_seconds, self.hand_offs, self.fences = 0, 0.0, 0, 0
        self._message_at: float | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._control_loop, name=f"lagaware-{self.name}", daemon=True)
        self._thread.start()
        self.coordinator = (LagAwareCoordinator(config, topic, group, name=self.member, control_topic=self.control,
                                                **coordinator_options).start() if coordinate else None)

    # The application's side: poll, done, close.

    def poll(self, timeout: float = 1.0):
        """The next message of a partition this member holds (or an error, or None). Assignment
        changes are applied here, between messages, so a message in progress is finished first."""
        now = self._polled_at = time.monotonic()
        if self._message_at is not None:
            self.busy_seconds += now - self._message_at
            self._message_at = None
        if self.held and now > self._lease_until:
            self._fence()
        self._apply()
        if now >= self._commit_at:
            try:
                self._commit(self.held, asynchronous=True)
            except KafkaException as error:  # the next one covers it; a hand-off commits synchronously
                log.debug("%s: commit failed: %s", self.member, error)
            self._commit_at = now + self.commit_seconds
        message = self._consumer.poll(timeout)
        if message is None:
            return None
        if not message.error() and message.partition() not in self.held:
            return None  # fetched just before its partition was released
        self._message_at = time.monotonic()
        return message

    def done(self, message) -> None:
        """`message` is processed: its offset is committed within `commit_seconds`."""
        self._done[message.partition()] = message.offset() + 1
        self.processed += 1

    def close(self, timeout: float = 10) -> None:
        """Commit, hand every partition back and tell the coordinator at once; then stop."""
        if self._message_at is not None:
            self.busy_seconds += time.monotonic() - self._message_at
            self._message_at = None
        with self._lock:
            try:
                self._release(set(self.held))
            except KafkaException as error:  # not committed: the next owner starts at the last commit
                log.warning("%s: final commit failed: %s", self.member, error)
            self._leaving = True
        self._stop.set()
        self._thread.join(timeout)
        self._send_heartbeat()
        self._heartbeats.flush(timeout)
        self._heartbeats = None  # a producer has no close(): released here, not left retrying connections
        if self.coordinator:
            self.coordinator.close()
        self._consumer.close()
        self._reader.close()

    def metrics(self) -> dict:
        return {"member": self.member, "epoch": self.epoch, "held": sorted(self.held), "processed": self.processed,
                "busy_seconds": round(self.busy_seconds, 3), "hand_offs": self.hand_offs, "fences": self.fences,
                "coordinator": bool(self.coordinator and self.coordinator.active)}

    # Assignment: applied on the application's thread, reported by the control thread.

    def _apply(self) -> None:
        epoch, owners = self._assignment
        if epoch <= self.epoch:
            return
        mine = {p for p, member in owners.items() if member == self.member}
        with self._lock:
            try:
                self._release(self.held - mine)
            except KafkaException as error:  # keep them, and try again at the next poll
                log.warning("%s: commit before hand-off failed, keeping the partitions: %s", self.member, error)
                return
            take = mine - self.held
            if take:
                if time.monotonic() >= self._lease_until:
                    return  # not before a heartbeat of ours is acknowledged again
                self._consumer.incremental_assign([TopicPartition(self.topic, p) for p in sorted(take)])
                self.held |= take
                self.hand_offs += len(take)
            self.epoch = epoch
        self._heartbeat_now.set()

    def _release(self, partitions: set[int]) -> None:
        if not partitions:
            return
        self._commit(partitions, asynchronous=False)
        self._consumer.incremental_unassign([TopicPartition(self.topic, p) for p in sorted(partitions)])
        self.held -= partitions
        for p in partitions:
            self._done.pop(p, None)
            self._committed.pop(p, None)

    def _commit(self, partitions: set[int], *, asynchronous: bool) -> None:
        """Asynchronous: what changed since the last commit. Synchronous (before a hand-off): all of
        it, since an asynchronous commit may have failed unseen."""
        offsets = [TopicPartition(self.topic, p, self._done[p]) for p in sorted(partitions)
                   if p in self._done and (not asynchronous or self._done[p] != self._committed.get(p))]
        if offsets:
            self._consumer.commit(offsets=offsets, asynchronous=asynchronous)
            self._committed.update((tp.partition, tp.offset) for tp in offsets)

    def _fence(self) -> None:
        """No heartbeat acknowledged for `lease_seconds`: the coordinator may have given our
        partitions away. Drop them uncommitted and come back as a new member."""
        with self._lock:
            log.warning("%s: no heartbeat acknowledged for %.1f s; dropping %d partitions", self.member,
                        self.lease_seconds, len(self.held))
            self._consumer.incremental_unassign([TopicPartition(self.topic, p) for p in sorted(self.held)])
            self.held.clear()
            self._done.clear()
            self._committed.clear()
            self.member = _incarnation(self.name)
            self.fences += 1

    def _control_loop(self) -> None:
        next_heartbeat = 0.0
        while not self._stop.is_set():
            message = self._reader.poll(0.05)
            if message is not None and not message.error():
                record = json.loads(message.value())
                if record.get("type") == "assignment" and record["epoch"] >= self._assignment[0]:
                    self._assignment = (record["epoch"], {int(p): m for p, m in record["owners"].items()})
            stuck = time.monotonic() - self._polled_at > self.max_poll_seconds  # then the lease runs out
            if not stuck and (time.monotonic() >= next_heartbeat or self._heartbeat_now.is_set()):
                self._heartbeat_now.clear()
                self._send_heartbeat()
                next_heartbeat = time.monotonic() + self.heartbeat_seconds
            self._heartbeats.poll(0)

    def _send_heartbeat(self) -> None:
        with self._lock:
            record = {"type": "heartbeat", "member": self.member, "epoch": self.epoch, "held": sorted(self.held),
                      "processed": self.processed, "busy": self.busy_seconds, "leaving": self._leaving}
        sent_at = time.monotonic()

        def acknowledged(error, _message) -> None:
            if error is None:
                self._lease_until = max(self._lease_until, sent_at + self.lease_seconds)

        self._heartbeats.produce(self.control, json.dumps(record).encode(), key=self.name.encode(),
                                 on_delivery=acknowledged)


def _incarnation(name: str) -> str:
    return f"{name}.{uuid.uuid4().hex[:6]}"


@dataclass
class _Member:
    seen_at: float  # monotonic, when the coordinator read its last heartbeat
    epoch: int
    held: set[int]
    leaving: bool
    samples: deque = field(default_factory=lambda: deque(maxlen=64))  # (seen_at, processed, busy seconds)
    capacity: float | None = None  # messages/s while busy


class LagAwareCoordinator:
    """Stands for election; while elected, plans the group's assignment every `tick_seconds`. The
    control topic must exist (`ensure_control_topic`; each LagAwareConsumer makes sure of it)."""

    def __init__(self, config: dict, topic: str, group: str, *, name: str, control_topic: str | None = None,
                 tick_seconds: float = 0.5, member_timeout: float = 6.0, rebalance_seconds: float = 2.0,
                 drain_seconds: float = 30.0, capacity_window: float = 10.0, history_seconds: float = 60.0,
                 max_moves: int = 1, tolerance: float = 0.05):
        self.topic, self.group, self.name = topic, group, name
        self.control = control_topic or control_topic_name(group)
        self.tick_seconds, self.member_timeout, self.rebalance_seconds = tick_seconds, member_timeout, rebalance_seconds
        self.drain_seconds, self.capacity_window, self.history_seconds = drain_seconds, capacity_window, history_seconds
        self.max_moves, self.tolerance = max_moves, tolerance
        self._connection = connection_settings(config)
        self.active = False
        self.moves = self.elections = 0
        self.utilisation: dict[str, float] = {}  # per member, at the last tick
        self.group_utilisation = 0.0  # the arrival rate over all capacity
        self._overload_warned = False
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"lagaware-coordinator-{name}", daemon=True)

    def start(self) -> "LagAwareCoordinator":
        self._thread.start()
        return self

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=30)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self._stand()
            except KafkaException as error:
                log.warning("%s: standing for coordinator again after: %s", self.name, error)
            self._stop.wait(1.0)  # fenced or failed: stand again, as a new candidate

    def _stand(self) -> None:
        """Be a candidate until closed, fenced, or an error; coordinate while elected."""
        candidate = Consumer({**self._connection, "group.id": f"{self.group}.lagaware-coordinator",
                              "enable.auto.commit": False, "isolation.level": "read_committed",
                              "session.timeout.ms": 6000, "heartbeat.interval.ms": 500, "log_level": 3,
                              # the coordinator stays where it is when candidates join
                              "partition.assignment.strategy": "cooperative-sticky"})
        candidate.subscribe([self.control], on_assign=self._elected, on_revoke=self._deposed, on_lost=self._deposed)
        self._fenced = False
        next_tick = 0.0
        try:
            while not self._stop.is_set() and not self._fenced:
                message = candidate.poll(0.05)
                if message is not None and not message.error() and self.active:
                    self._read(json.loads(message.value()), message.offset(), message.timestamp()[1])
                # Not before the history is read: the epoch must grow past every earlier one.
                if self.active and self._caught_up and time.monotonic() >= next_tick:
                    next_tick = time.monotonic() + self.tick_seconds
                    self._tick()
        finally:
            self._step_down()
            candidate.close()  # leaves the group: another candidate is elected at once

    def _elected(self, candidate, partitions) -> None:
        """Assigned the control partition: fence any earlier coordinator, mark the end of the
        history with a record of our own, then read the last `history_seconds` up to that record
        (members and the last assignment) before planning."""
        if not partitions:
            return
        self._producer = Producer({**self._connection, "transactional.id": f"{self.group}.lagaware-coordinator",
                                   "log_level": 3})
        self._producer.init_transactions(30)  # fences the previous coordinator's producer
        self._lag = LagCache(self._connection, self.topic, self.group).start()
        self._members: dict[str, _Member] = {}
        self._epoch, self._owners, self._published = 0, {}, {}
        self._granted: dict[int, tuple[str, int]] = {}  # partition -> (member, epoch it was given at)
        self._ends: deque = deque(maxlen=64)  # (monotonic, log-end offsets)
        self._rebalance_at = time.monotonic() + self.rebalance_seconds
        self._last_tick: float | None = None
        self.active, self.elections = True, self.elections + 1
        self._caught_up, self._caught_up_at = False, self._publish({"type": "elected", "coordinator": self.name})
        if self._caught_up_at is None:
            self._fenced = True  # stand again
            return self._step_down()
        since = TopicPartition(self.control, 0, int((time.time() - self.history_seconds) * 1000))
        start = candidate.offsets_for_times([since], timeout=10)[0].offset
        candidate.incremental_assign([TopicPartition(self.control, 0, start if start >= 0 else self._caught_up_at)])
        log.info("%s: coordinating group %s", self.name, self.group)

    def _deposed(self, _candidate, partitions) -> None:
        if partitions:
            self._step_down()

    def _step_down(self) -> None:
        if not self.active:
            return
        self.active = False
        self._lag.close()
        self._producer = None  # fenced or not, a new election makes a new one
        log.info("%s: no longer coordinating group %s", self.name, self.group)

    def _read(self, record: dict, offset: int, written_ms: int) -> None:
        self._caught_up = self._caught_up or offset >= self._caught_up_at
        now = time.monotonic()
        if offset < self._caught_up_at:  # history: seen when it was written (wall clocks agree to well under a second)
            now -= max(0.0, time.time() - written_ms / 1000)
        if record.get("type") == "heartbeat":
            member = self._members.get(record["member"])
            if member is None:
                member = self._members[record["member"]] = _Member(now, 0, set(), False)
            member.seen_at, member.epoch, member.held = now, record["epoch"], set(record["held"])
            member.leaving = record["leaving"]
            member.samples.append((now, record["processed"], record["busy"]))
            member.capacity = _capacity(member.samples, self.capacity_window) or member.capacity
            self._epoch = max(self._epoch, record["epoch"])
        elif record.get("type") == "assignment" and offset < self._caught_up_at:  # history: where things were
            owners = {int(p): m for p, m in record["owners"].items()}
            self._epoch = max(self._epoch, record["epoch"])
            self._owners.update(owners)
            for p, m in owners.items():
                if m is not None:
                    self._granted[p] = (m, record["epoch"])

    def _tick(self) -> None:
        now = time.monotonic()
        if self._last_tick is not None and now - self._last_tick > 4 * self.tick_seconds:
            # We were paused (not the members): nobody is late because of that.
            for member in self._members.values():
                member.seen_at += now - self._last_tick
        self._last_tick = now
        for name in [n for n, m in self._members.items() if now - m.seen_at > self.member_timeout]:
            log.warning("%s: member %s is gone (no heartbeat for %.0f s)", self.name, name, self.member_timeout)
            del self._members[name]
        serving = {n: m for n, m in self._members.items() if not m.leaving}
        partitions = [tp.partition for tp in self._lag.partitions()]
        owners = {p: (self._owners.get(p) if self._owners.get(p) in serving else None) for p in partitions}
        capacities = _capacities(serving)
        self._ends.append((now, dict(self._lag.ends)))
        rates = self._rates()
        demands = demand(rates, self._lag.lags() or {}, self.drain_seconds)
        if capacities and (None in owners.values() or now >= self._rebalance_at):
            self._rebalance_at = now + self.rebalance_seconds
            for move in plan(owners, capacities, demands, max_moves=self.max_moves, tolerance=self.tolerance):
                owners[move.partition] = move.target
                self.moves += move.source is not None
        self._owners = owners
        published = {p: (o if o is not None and self._free_for(p, o) else None) for p, o in owners.items()}
        if published != self._published:
            self._epoch += 1
            for p, o in published.items():
                if o is not None and self._published.get(p) != o:
                    self._granted[p] = (o, self._epoch)
            self._published = published
        self.utilisation = {n: round(u, 3) for n, u in utilisation(owners, capacities, demands).items()}
        measured = serving and all(m.capacity for m in serving.values())  # guesses would warn for nothing
        # Arrivals only: a backlog drains by itself (demand adds it), and at 96% a moment's lag made
        # demand 104%, a warning to add members the group did not need.
        overall = sum(rates.values()) / sum(capacities.values()) if measured else 0.0
        if overall > 1 and not self._overload_warned:
            log.warning("%s: group %s is asked for %.0f%% of what its members can do; moving partitions will "
                        "not help, add members", self.name, self.group, overall * 100)
        self._overload_warned = overall > 1 or (self._overload_warned and overall > 0.9)  # once per episode
        self.group_utilisation = overall
        self._publish({"type": "assignment", "epoch": self._epoch, "owners": {str(p): o for p, o in published.items()},
                       "coordinator": self.name, "capacities": {n: round(c, 1) for n, c in capacities.items()},
                       "utilisation": self.utilisation, "group_utilisation": round(overall, 3)})

    def _free_for(self, partition: int, target: str) -> bool:
        """Whether no live member but `target` may hold `partition`: none lists it in its last
        heartbeat, and whoever it was last given to has since applied a newer assignment."""
        for name, member in self._members.items():
            if name == target:
                continue
            if partition in member.held:
                return False
            if member.leaving:  # it released everything before saying so
                continue
            granted = self._granted.get(partition)
            if granted and granted[0] == name and member.epoch < granted[1]:
                return False
        return True

    def _rates(self) -> dict[int, float]:
        """Messages/s arriving per partition, from log-end offsets over the last ~10 s."""
        if len(self._ends) < 2:
            return {}
        (t1, last) = self._ends[-1]
        (t0, first) = next((s for s in self._ends if t1 - s[0] <= 10.0), self._ends[0])
        if t1 - t0 <= 0:
            return {}
        return {p: max(0, last[p] - first.get(p, last[p])) / (t1 - t0) for p in last}

    def _publish(self, record: dict) -> int | None:
        """Write `record` in a transaction of its own; its offset, or None if it failed."""
        offsets = []
        try:
            self._producer.begin_transaction()
            self._producer.produce(self.control, json.dumps(record).encode(), key=record["type"].encode(),
                                   on_delivery=lambda error, message: error or offsets.append(message.offset()))
            self._producer.commit_transaction(10)
            self._producer.poll(0)
            return offsets[0] if offsets else None
        except KafkaException as error:
            if error.args[0].fatal() or error.args[0].code() == KafkaError._FENCED:
                log.warning("%s: fenced by a newer coordinator: %s", self.name, error)
                self._fenced = True
                self._step_down()
                return None
            log.warning("%s: publishing the %s failed: %s", self.name, record["type"], error)
            if error.args[0].txn_requires_abort():
                self._producer.abort_transaction(10)
            return None


def _capacity(samples: deque, window: float) -> float | None:
    """Messages processed per second of processing, over about `window` seconds of heartbeats;
    None when the member was busy too little to tell."""
    end = samples[-1]
    start = next((s for s in samples if end[0] - s[0] <= window), samples[0])
    busy = end[2] - start[2]
    return (end[1] - start[1]) / busy if busy >= 0.5 else None


def _capacities(members: dict[str, _Member]) -> dict[str, float]:
    """Measured capacity per member; one not measured yet counts as the median of the others (or 1)."""
    known = [m.capacity for m in members.values() if m.capacity]
    default = statistics.median(known) if known else 1.0
    return {name: member.capacity or default for name, member in members.items()}
