"""A producer that sends fewer keyless messages to the partitions a consumer group lags on.

    producer = LagAwareProducer({"bootstrap.servers": ...}, "tasks", group="processor")
    producer.produce(b"payload")                 # keyless: placed by lag
    producer.produce(b"payload", key=b"order-7")  # keyed: murmur2, as the Java client (order per key holds)
    producer.flush(); producer.close()

A background thread refreshes the group's lag (`LagCache`); between refreshes the chooser counts
what it sent itself, so a burst does not herd onto the partition that looked emptiest. When lag
is unavailable or stale, keyless messages are spread evenly (round robin).
"""

from __future__ import annotations

import time
from collections import Counter

from confluent_kafka import Producer

from kafka_usecase_clients.lagaware.lag import LagCache
from kafka_usecase_clients.lagaware.partitioning import OutlierDetection, RoundRobin, SameQueueLength, key_partition

ALGORITHMS = {"same-queue-length": SameQueueLength, "outlier-detection": OutlierDetection, "round-robin": RoundRobin}
# Settings a client and the admin client that reads lag share: where the cluster is, and how to log in.
_CONNECTION_PREFIXES = ("bootstrap.servers", "security.protocol", "sasl.", "ssl.", "client.id", "client.dns")


def connection_settings(config: dict) -> dict:
    return {k: v for k, v in config.items() if k.startswith(_CONNECTION_PREFIXES)}


class LagAwareProducer:
    def __init__(self, config: dict, topic: str, group: str, *, algorithm: str = "same-queue-length",
                 refresh_seconds: float = 0.5, stale_seconds: float = 5.0, **algorithm_options):
        """`config`: librdkafka producer settings; `group`: the consumer group whose lag counts;
        `algorithm`: same-queue-length, outlier-detection or round-robin (the baseline);
        `algorithm_options`: passed to the chooser (e.g. OutlierDetection's k, min_lag)."""
        if algorithm not in ALGORITHMS:
            raise ValueError(f"algorithm must be one of {', '.join(ALGORITHMS)}, not {algorithm!r}")
        self.topic, self.algorithm = topic, algorithm
        self.lag = LagCache(connection_settings(config), topic, group, refresh_seconds=refresh_seconds, stale_seconds=stale_seconds)
        self.partitions = len(self.lag.partitions())  # the first metadata fetch: fails loudly if the topic is missing
        self.chooser = ALGORITHMS[algorithm](self.partitions, **algorithm_options)
        self.producer = Producer(config)
        self.sent: Counter[int] = Counter()  # messages per partition
        self._applied: dict[int, int] | None = None
        self.lag.start()

    def produce(self, value: bytes | None, key: bytes | None = None, **kwargs) -> int:
        """Produce to the chosen partition (other arguments as Producer.produce); returns it."""
        partition = key_partition(key, self.partitions) if key is not None else self._choose()
        self.producer.produce(self.topic, value, key, partition=partition, **kwargs)
        self.sent[partition] += 1
        return partition

    def _choose(self) -> int:
        lags = self.lag.lags()
        if lags is not self._applied:  # a refresh arrived, or the lag went stale (None)
            self.chooser.update(lags, time.monotonic())
            self._applied = lags
        return self.chooser.choose()

    def metrics(self) -> dict:
        """Messages per partition, the lag the choice is based on and its age, admin requests/s."""
        return {"algorithm": self.algorithm, "sent": dict(sorted(self.sent.items())), "lags": self._applied,
                "lag_age_seconds": self.lag.age(), "admin_requests_per_second": self.lag.admin_requests_per_second(),
                "lag_errors": self.lag.errors,
                "states": dict(self.chooser.state) if isinstance(self.chooser, OutlierDetection) else None}

    def poll(self, timeout: float = 0) -> int:
        return self.producer.poll(timeout)

    def flush(self, timeout: float = -1) -> int:
        return self.producer.flush(timeout)

    def close(self, timeout: float = 30) -> int:
        """Stop refreshing lag and wait for what was produced; returns how many are still undelivered."""
        self.lag.close()
        return self.producer.flush(timeout)
