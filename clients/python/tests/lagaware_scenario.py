"""The seed's 20/20/10 scenario, time-compressed, against a real broker: three workers of one
consumer group with service times 20/20/40 ms per message (capacities 50/50/25 msg/s, 125 in all),
a topic of 10 partitions, and a producer offering a share of the total capacity. Several runs
(variants) go side by side, each on its own topic and group; the broker and two cores carry them
easily at these rates.

A worker serves one message at a time: each message keeps it busy for its service time from when it
is free (`busy_until`), so its capacity is exact however late `sleep` wakes. Workers store the
offset of what they finished and commit every 200 ms; lag is what the group's commits show.
"""

from __future__ import annotations

import itertools
import json
import statistics
import threading
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field

from confluent_kafka import Consumer, KafkaException, Producer, ShareConsumer, TopicPartition
from confluent_kafka.admin import AdminClient, AlterConfigOpType, ConfigEntry, ConfigResource, NewTopic

from kafka_usecase_clients.lagaware import LagAwareConsumer, LagAwareProducer, LagCache
from kafka_usecase_clients.lagaware.partitioning import key_partition

SERVICE_MS = (20, 20, 40)
CAPACITY = sum(1000 / ms for ms in SERVICE_MS)  # 125 msg/s
BOUNDED_SHARE = 0.02  # bounded lag: total lag's slope over the last 30 s at most 2% of the offered rate
WINDOW_SECONDS = 30


class Worker:
    def __init__(self, run: "Run", index: int, service_ms: float, static: list[int] | None):
        self.run, self.name = run, f"worker-{index}"
        self.service_seconds = service_ms / 1000
        self.static = static  # the oracle's fixed partitions; None: the group assigns
        self.owned: set[int] = set()
        self.processed = 0
        self.thread = threading.Thread(target=self._loop, name=f"{run.name}-{self.name}", daemon=True)

    def _assigned(self, _, partitions) -> None:
        if self.run.producing.is_set():
            self.run.result.hand_offs += len(partitions)
        self.owned.update(p.partition for p in partitions)

    def _serve(self, message) -> None:
        """Keep this worker busy for its service time, then record the message as processed."""
        now = time.monotonic()
        self.busy_until = max(now, self.busy_until) + self.service_seconds
        if self.busy_until > now:
            time.sleep(self.busy_until - now)
        self.run.arrived(message)
        self.processed += 1

    def _loop(self) -> None:
        self.busy_until = 0.0
        if self.run.lag_aware_consumer:
            return self._loop_lag_aware()
        if self.run.share_group:
            return self._loop_share_group()
        consumer = Consumer({**self.run.config, "group.id": self.run.group, "auto.offset.reset": "earliest",
                             "enable.auto.commit": True, "auto.commit.interval.ms": 200,
                             "enable.auto.offset.store": False, "partition.assignment.strategy": "cooperative-sticky",
                             "log_level": 3})
        if self.static is not None:
            consumer.assign([TopicPartition(self.run.topic, p) for p in self.static])
            self.owned = set(self.static)
        else:
            consumer.subscribe([self.run.topic], on_assign=self._assigned,
                               on_revoke=lambda _, ps: self.owned.difference_update(p.partition for p in ps))
        while not self.run.stopped.is_set():
            message = consumer.poll(0.05)
            if message is None or message.error():
                continue
            self._serve(message)
            consumer.store_offsets(message)
        consumer.close()

    def _loop_share_group(self) -> None:
        """A member of a share group (KIP-932): up to 5 records per poll from whatever the group
        gives it, acknowledged at its next poll. (Kafka 4.3 gave each of 10 partitions to one of 3
        members, so `owned` is what a share group may give, not what it did.)"""
        consumer = ShareConsumer({**self.run.config, "group.id": self.run.group, "max.poll.records": 5,
                                  "log_level": 3})
        consumer.subscribe([self.run.topic])
        self.owned = set(range(self.run.partitions))
        while not self.run.stopped.is_set():
            for message in consumer.poll(0.05):
                if not message.error():
                    self._serve(message)
        consumer.close()

    def _loop_lag_aware(self) -> None:
        consumer = self.consumer = LagAwareConsumer(self.run.config, self.run.topic, self.run.group,
                                                    name=f"{self.run.name}-{self.name}", **self.run.consumer_options)
        while not self.run.stopped.is_set():
            message = consumer.poll(0.05)
            self.owned = set(consumer.held)
            if message is None or message.error():
                continue
            self._serve(message)
            consumer.done(message)
        consumer.close()


@dataclass
class Result:
    name: str
    rate: float
    produced: int
    consumed: set = field(default_factory=set)
    lag: list[tuple[float, int]] = field(default_factory=list)  # (seconds since start, total lag)
    spread: list[int] = field(default_factory=list)  # per sample: the largest minus the smallest partition lag
    arrivals: int = 0  # messages consumed, duplicates included
    hand_offs: int = 0  # partitions assigned after the group's first assignment
    admin_requests_per_second: float = 0.0  # the producer's, for lag
    slowed_at: float | None = None  # seconds since start
    latencies: list[float] = field(default_factory=list)
    sent: list[float] = field(default_factory=list)  # per latency: when its message was sent (unix time)
    # When a worker slowed: over the last WINDOW_SECONDS, the share of messages sent to its
    # partitions, the most it can take (its capacity / the offered rate), and its share of the
    # partitions (what round robin sends it).
    sent_share_of_slowed: float | None = None
    slowed_most_share: float | None = None
    slowed_partition_share: float | None = None
    error: str | None = None  # what went wrong in the run's producer thread
    window_from: float = 0.0  # unix time: the last WINDOW_SECONDS of the run start here
    workers: list[str] = field(default_factory=list)  # per worker when the load stopped: processed, partitions
    lag_errors: int = 0  # the producer's failed lag refreshes
    order: list[tuple[str, int]] = field(default_factory=list)  # keyed runs: (key, sequence) as processed

    def order_violations(self) -> list[tuple[str, int, int]]:
        """(key, sequence, the highest sequence processed before it) wherever a key's message was
        first processed after a later one of the same key. A message processed again (a replay
        after a member lost its partitions uncommitted) is a duplicate, counted apart, not this."""
        highest: dict[str, int] = {}
        seen: set[tuple[str, int]] = set()
        violations = []
        for key, sequence in self.order:
            if (key, sequence) in seen:
                continue
            seen.add((key, sequence))
            if sequence < highest.get(key, -1):
                violations.append((key, sequence, highest[key]))
            highest[key] = max(sequence, highest.get(key, -1))
        return violations

    def slope(self) -> float:
        """Least-squares slope (messages/s) of total lag over the last WINDOW_SECONDS."""
        end = self.lag[-1][0]
        window = [(t, lag) for t, lag in self.lag if t >= end - WINDOW_SECONDS]
        mean_t = statistics.fmean(t for t, _ in window)
        mean_lag = statistics.fmean(lag for _, lag in window)
        return (sum((t - mean_t) * (lag - mean_lag) for t, lag in window)
                / sum((t - mean_t) ** 2 for t, _ in window))

    def bounded(self) -> bool:
        return self.slope() <= BOUNDED_SHARE * self.rate

    def recovery_seconds(self) -> float | None:
        """After the slowdown, how long until total lag is back within twice its level before
        (plus 5 messages) for good; None if it never is."""
        before = [lag for t, lag in self.lag if self.slowed_at - 10 <= t < self.slowed_at]
        limit = 2 * statistics.fmean(before) + 5
        after = [(t, lag) for t, lag in self.lag if t >= self.slowed_at]
        last_above = max((t for t, lag in after if lag > limit), default=self.slowed_at)
        return None if last_above == after[-1][0] else last_above - self.slowed_at

    def percentile(self, q: float, sent_after: float | None = None) -> float:
        """Of end-to-end latencies; `sent_after` (unix time): only of messages sent after it."""
        chosen = self.latencies if sent_after is None else [
            latency for latency, sent in zip(self.latencies, self.sent) if sent > sent_after]
        ordered = sorted(chosen) or [float("nan")]
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))]

    def summary(self) -> str:
        return (f"{self.name}: slope {self.slope():+.2f} msg/s (bound {BOUNDED_SHARE * self.rate:.2f}), final lag "
                f"{self.lag[-1][1]}, p50 {self.percentile(0.5) * 1000:.0f} ms, p99 {self.percentile(0.99) * 1000:.0f} ms, "
                f"lost {self.produced - len(self.consumed)}, processed twice {self.arrivals - len(self.consumed)}, "
                f"hand-offs {self.hand_offs}, lag refreshes failed {self.lag_errors}, workers {'; '.join(self.workers)}"
                + (f", producer failed: {self.error}" if self.error else ""))


class Run:
    """One variant: a topic, a group of three workers, a producer at `load` x CAPACITY msg/s."""

    def __init__(self, kafka, name: str, *, algorithm: str, load: float, static: bool = False,
                 slow_down: tuple[float, int, float] | None = None, partitions: int = 10,
                 lag_aware_consumer: dict | None = None, keys: int = 0, share_group: bool = False,
                 **algorithm_options):
        """`algorithm`: the producer's (round-robin is the baseline); `static`: the oracle, each
        worker assigned partitions in proportion to its capacity; `slow_down`: (after seconds,
        worker, new service ms); `lag_aware_consumer`: the workers are LagAwareConsumers (these
        are their options); `share_group`: the workers are a share group (KIP-932, the reference;
        its lag is what was produced minus what was processed); `keys`: messages are keyed, round
        robin over this many keys, chosen so that every partition gets the same number."""
        suffix = uuid.uuid4().hex[:6]
        self.name, self.topic, self.group = name, f"lagaware-{name}-{suffix}", f"workers-{name}-{suffix}"
        self.config, self.partitions, self.rate = kafka.client_config(), partitions, load * CAPACITY
        self.algorithm, self.algorithm_options, self.slow_down = algorithm, algorithm_options, slow_down
        self.lag_aware_consumer, self.consumer_options = lag_aware_consumer is not None, lag_aware_consumer or {}
        self.share_group = share_group
        self.keys = _uniform_keys(keys, partitions) if keys else []
        admin = AdminClient(self.config)
        # One replica: the scenario measures how the clients balance, which replication does not
        # change, and on 2 cores 3 replicas (acks=all, followers fetching each message) kept three
        # brokers near 160% CPU, so every worker woke late and even the static oracle fell to 70%
        # of its capacity. Leaders are still spread over every broker of the devstack.
        admin.create_topics([NewTopic(self.topic, partitions, 1)])[self.topic].result(timeout=60)
        self._wait_for_leaders()
        if share_group:  # a share group starts at the latest offset by default: it would skip the first messages
            resource = ConfigResource(ConfigResource.Type.GROUP, self.group, incremental_configs=[
                ConfigEntry("share.auto.offset.reset", "earliest", incremental_operation=AlterConfigOpType.SET)])
            admin.incremental_alter_configs([resource])[resource].result(timeout=30)
        shares = _weighted_partitions(partitions) if static else [None] * len(SERVICE_MS)
        self.stopped, self.producing = threading.Event(), threading.Event()
        self.workers = [Worker(self, i, ms, shares[i]) for i, ms in enumerate(SERVICE_MS)]
        self.result = Result(name, self.rate, 0)
        self._lock = threading.Lock()

    def _wait_for_leaders(self, timeout: float = 30) -> None:
        """Until every partition answers ListOffsets (its leader is elected and known)."""
        lag, deadline = LagCache(self.config, self.topic, self.group), time.monotonic() + timeout
        try:
            while True:
                try:
                    lag.refresh()
                    return
                except KafkaException:
                    if time.monotonic() > deadline:
                        raise
                    time.sleep(0.2)
        finally:
            lag.close()

    def arrived(self, message) -> None:
        sequence, sent_at = json.loads(message.value())
        with self._lock:
            if self.keys:
                self.result.order.append((message.key().decode(), sequence))
            self.result.consumed.add(sequence)
            self.result.arrivals += 1
            self.result.latencies.append(time.time() - sent_at)
            self.result.sent.append(sent_at)

    def start_workers(self) -> None:
        for worker in self.workers:
            worker.thread.start()

    def assigned(self) -> bool:
        owned = [w.owned for w in self.workers]
        return all(owned) and set().union(*owned) == set(range(self.partitions))

    def produce(self, seconds: float, started: float) -> None:
        try:
            self._produce(seconds, started)
        except Exception as error:  # noqa: BLE001 - reported by the test, not lost in a thread
            # Not re-raised: the traceback would keep the producer's clients alive in a reference
            # cycle, for the garbage collector to free on any thread (see LagCache.refresh).
            self.result.error = repr(error)

    def _produce(self, seconds: float, started: float) -> None:
        """Offer `rate` msg/s for `seconds` (keyless); slow a worker down on schedule."""
        producer = LagAwareProducer(self.config, self.topic, self.group, algorithm=self.algorithm,
                                    **self.algorithm_options)
        sent_at_window: Counter | None = None  # what was sent before the last WINDOW_SECONDS
        sequence, next_at = 0, time.monotonic()
        while time.monotonic() - started < seconds:
            elapsed = time.monotonic() - started
            if self.slow_down and self.result.slowed_at is None and elapsed >= self.slow_down[0]:
                self.workers[self.slow_down[1]].service_seconds = self.slow_down[2] / 1000
                self.result.slowed_at = elapsed
            if sent_at_window is None and elapsed >= seconds - WINDOW_SECONDS:
                sent_at_window = Counter(producer.sent)
            key = self.keys[sequence % len(self.keys)] if self.keys else None
            producer.produce(json.dumps([sequence, time.time()]).encode(), key=key)
            producer.poll(0)
            sequence += 1
            next_at += 1 / self.rate
            time.sleep(max(0.0, next_at - time.monotonic()))
        self.result.admin_requests_per_second = producer.lag.admin_requests_per_second()
        self.result.lag_errors = producer.lag.errors
        assert producer.close() == 0, f"{self.name}: messages left undelivered"
        self.result.produced = sequence
        if self.result.slowed_at is not None and self.result.slowed_at <= seconds - WINDOW_SECONDS:
            after = Counter(producer.sent)
            after.subtract(sent_at_window)
            slowed = self.workers[self.slow_down[1]]
            self.result.sent_share_of_slowed = sum(after[p] for p in slowed.owned) / sum(after.values())
            self.result.slowed_most_share = 1000 / self.slow_down[2] / self.rate
            self.result.slowed_partition_share = len(slowed.owned) / self.partitions

    def drain(self, timeout: float) -> None:
        """Workers at full speed until everything produced was consumed (or the timeout)."""
        if self.lag_aware_consumer:
            self.result.hand_offs = sum(w.consumer.hand_offs for w in self.workers) - self.initial_hand_offs
        for worker in self.workers:
            worker.service_seconds = 0.0
        deadline = time.monotonic() + timeout
        while len(self.result.consumed) < self.result.produced and time.monotonic() < deadline:
            time.sleep(0.2)
        self.stopped.set()
        for worker in self.workers:
            worker.thread.join(timeout=30)


def _uniform_keys(count: int, partitions: int) -> list[bytes]:
    """`count` keys that murmur2 spreads evenly (count / partitions to each partition), so that a
    keyed run offers every partition the same rate, as round robin does."""
    keys, per_partition = [], Counter()
    for i in itertools.count():
        key = f"key-{i}".encode()
        partition = key_partition(key, partitions)
        if per_partition[partition] < count // partitions:
            keys.append(key)
            per_partition[partition] += 1
            if len(keys) == count // partitions * partitions:
                return keys


def _weighted_partitions(partitions: int) -> list[list[int]]:
    """Partitions dealt in proportion to capacity (2:2:1 -> 4, 4, 2 of 10): the static oracle."""
    weights = [1 / ms for ms in SERVICE_MS]
    counts = [round(partitions * w / sum(weights)) for w in weights]
    counts[0] += partitions - sum(counts)
    out, start = [], 0
    for count in counts:
        out.append(list(range(start, start + count)))
        start += count
    return out


def _create_internal_topics(config: dict) -> None:
    """Make the broker create __consumer_offsets and __transaction_state (50 partitions each) now,
    if this cluster never had them: on the 3-broker devstack that stalls it for seconds, which in
    the middle of a run looks like a fault (lag-aware members fence themselves)."""
    producer = Producer({**config, "transactional.id": "lagaware-scenario-warm-up", "log_level": 3})
    producer.init_transactions(60)
    consumer = Consumer({**config, "group.id": "lagaware-scenario-warm-up", "log_level": 3})
    consumer.committed([TopicPartition("lagaware-scenario-warm-up", 0)], timeout=60)
    consumer.close()


def run_side_by_side(runs: list[Run], seconds: float, drain_timeout: float = 120) -> dict[str, Result]:
    """Start every run's workers, wait until each group has all its partitions, offer load for
    `seconds` while sampling each group's total lag every second, then drain and stop."""
    _create_internal_topics(runs[0].config)
    for run in runs:
        run.start_workers()
    deadline = time.monotonic() + 60
    while not all(run.assigned() for run in runs):
        assert time.monotonic() < deadline, {run.name: [w.owned for w in run.workers] for run in runs}
        time.sleep(0.2)
    started = time.monotonic()
    for run in runs:
        run.result.window_from = time.time() + seconds - WINDOW_SECONDS  # unix time the last window starts
    for run in runs:
        run.producing.set()
        if run.lag_aware_consumer:
            run.initial_hand_offs = sum(w.consumer.hand_offs for w in run.workers)
    producers = [threading.Thread(target=run.produce, args=(seconds, started), daemon=True) for run in runs]
    for thread in producers:
        thread.start()
    samplers = {run.name: LagCache(run.config, run.topic, run.group) for run in runs}
    while any(thread.is_alive() for thread in producers):
        tick = time.monotonic()
        for run in runs:
            try:
                lags = samplers[run.name].refresh().values()
            except KafkaException:  # a slow answer: this second goes unsampled
                continue
            if run.share_group:  # no committed offsets: what was produced minus what was processed
                lags = [sum(samplers[run.name].ends.values()) - len(run.result.consumed)]
            run.result.lag.append((tick - started, sum(lags)))
            run.result.spread.append(max(lags) - min(lags))
        time.sleep(max(0.0, 1.0 - (time.monotonic() - tick)))
    for thread in producers:
        thread.join()
    for run in runs:
        run.result.workers = [f"{w.name} {w.processed} msgs, partitions {sorted(w.owned)}" for w in run.workers]
    for sampler in samplers.values():
        sampler.close()
    for run in runs:
        run.drain(drain_timeout)
    return {run.name: run.result for run in runs}
