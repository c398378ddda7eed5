"""A consumer group's lag per partition of one topic, refreshed in the background.

Lag = log-end offset (ListOffsets, latest) - the group's committed offset (OffsetFetch). It is as
fresh as the consumers' commits: a group committing every 200 ms shows lag at most that old, plus
the refresh interval. Two requests per refresh (and the topic's metadata every 30 s), whatever the
message rate.

Committed offsets are read through a consumer handle of the group, never AdminClient's
list_consumer_group_offsets: when the group's coordinator answers NOT_COORDINATOR (a group new to
the cluster, a coordinator moving), librdkafka (2.16 included) then dereferences the consumer-group
handle an admin client does not have and the process dies of SIGSEGV (librdkafka #5040). A
consumer's `committed()` retries through its own coordinator lookup. The handle never subscribes,
so it never joins the group.
"""

from __future__ import annotations

import logging
import threading
import time
from concurrent.futures import wait

from confluent_kafka import Consumer, KafkaError, KafkaException, TopicPartition
from confluent_kafka.admin import AdminClient, OffsetSpec

log = logging.getLogger("lagaware.lag")
METADATA_SECONDS = 30.0  # partitions added to the topic are seen within this


class LagCache:
    def __init__(self, admin_config: dict, topic: str, group: str, *, refresh_seconds: float = 0.5,
                 stale_seconds: float = 5.0, request_timeout: float = 5.0):
        """`admin_config`: librdkafka settings (bootstrap.servers, security); `stale_seconds`: lag
        older than this is no lag at all (the producer then spreads uniformly)."""
        self.topic, self.group = topic, group
        self.refresh_seconds, self.stale_seconds, self.request_timeout = refresh_seconds, stale_seconds, request_timeout
        self._admin = AdminClient({**admin_config, "log_level": 3})
        self._offsets = Consumer({**admin_config, "group.id": group, "enable.auto.commit": False, "log_level": 3})
        self._lags: dict[int, int] | None = None
        self.ends: dict[int, int] = {}  # log-end offset per partition, at the last refresh
        self._refreshed_at = 0.0  # monotonic
        self._partitions: list[TopicPartition] = []
        self._partitions_at = -METADATA_SECONDS
        self.admin_requests = self.errors = 0
        self._started_at = time.monotonic()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> "LagCache":
        self._thread = threading.Thread(target=self._run, name=f"lag-{self.topic}", daemon=True)
        self._thread.start()
        return self

    def close(self) -> None:
        self._stop.set()
        if self._thread:
            self._thread.join(timeout=2 * self.request_timeout + 1)
        self._offsets.close()

    def lags(self) -> dict[int, int] | None:
        """Lag per partition, or None when there is none fresh enough to act on."""
        if self._lags is None or self.age() > self.stale_seconds:
            return None
        return self._lags

    def age(self) -> float:
        return time.monotonic() - self._refreshed_at if self._refreshed_at else float("inf")

    def admin_requests_per_second(self) -> float:
        return self.admin_requests / max(time.monotonic() - self._started_at, 1e-9)

    def refresh(self) -> dict[int, int]:
        """One refresh, now (the background thread calls this every `refresh_seconds`)."""
        partitions = self.partitions()
        ends = self._admin.list_offsets({tp: OffsetSpec.latest() for tp in partitions},
                                        request_timeout=self.request_timeout)
        committed = self._offsets.committed(partitions, timeout=self.request_timeout)  # meanwhile
        self.admin_requests += 2
        # Failures are read with exception(), never raised by result(): a raised exception's
        # traceback would tie the futures, this frame and so the admin client into a reference
        # cycle. The garbage collector may then free the client on one of librdkafka's own threads
        # (it runs Python there, for the futures), and librdkafka aborts the process on that.
        _, unanswered = wait(ends.values(), timeout=self.request_timeout)
        if unanswered:  # a slow broker: as stale as a refused request, never a thread-ending error
            raise KafkaException(KafkaError(KafkaError._TIMED_OUT,
                                            f"ListOffsets not answered within {self.request_timeout:g} s"))
        failed = next((e for e in (f.exception() for f in ends.values()) if e), None)
        if failed is not None:
            raise KafkaException(failed.args[0] if failed.args else failed)
        end = {tp.partition: future.result().offset for tp, future in ends.items()}
        done = {tp.partition: max(tp.offset, 0) for tp in committed}  # none yet: 0
        lags = {p: max(0, end[p] - done.get(p, 0)) for p in end}
        self._lags, self.ends, self._refreshed_at = lags, end, time.monotonic()
        return lags

    def partitions(self) -> list[TopicPartition]:
        """The topic's partitions, from metadata fetched at most every METADATA_SECONDS."""
        if time.monotonic() - self._partitions_at > METADATA_SECONDS:
            metadata = self._admin.list_topics(self.topic, timeout=self.request_timeout).topics[self.topic]
            self.admin_requests += 1
            if metadata.error is not None:
                raise KafkaException(metadata.error)
            self._partitions = [TopicPartition(self.topic, p) for p in sorted(metadata.partitions)]
            self._partitions_at = time.monotonic()
        return self._partitions

    def _run(self) -> None:
        while not self._stop.is_set():
            started = time.monotonic()
            try:
                self.refresh()
            except KafkaException as error:  # brokers away: the lag goes stale, the producer spreads evenly
                self.errors += 1
                log.warning("lag of %s for group %s: %s", self.topic, self.group, error)
            self._stop.wait(max(0.0, self.refresh_seconds - (time.monotonic() - started)))
