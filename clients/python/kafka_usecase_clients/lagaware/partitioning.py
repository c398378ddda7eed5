"""Pure partition choosers for the lag-aware producer (no I/O; the producer feeds them lag).

Keyed messages keep Kafka's own placement (murmur2, as the Java client), so per-key order holds;
only keyless messages are balanced. Both choosers spread uniformly (round robin) when they have no
lag data or it is stale.

- SameQueueLength: water-filling. Each message goes to the partition with the shortest estimated
  queue (its lag at the last refresh plus what this producer sent there since), so queues tend to
  equal length and a burst spreads instead of herding onto the partition that looked emptiest.
- OutlierDetection: partitions whose lag is an outlier are tripped like circuit breakers: open (no
  messages) for `open_seconds`, then half-open (a small share) until their lag is no longer an
  outlier, then closed (full share) again. An outlier lags the baseline (the median of the
  least-lagging quarter of the partitions) by more than k robust standard deviations of that
  quarter (from its median absolute deviation), and by at least `min_lag`.
"""

from __future__ import annotations

import heapq
import itertools
import statistics


def murmur2(data: bytes) -> int:
    """Kafka's murmur2 (org.apache.kafka.common.utils.Utils.murmur2), as a signed 32-bit int."""
    m, mask = 0x5BD1E995, 0xFFFFFFFF
    length = len(data)
    h = (0x9747B28C ^ length) & mask
    for i in range(0, length - length % 4, 4):
        k = int.from_bytes(data[i:i + 4], "little")
        k = (k * m) & mask
        k ^= k >> 24
        k = (k * m) & mask
        h = ((h * m) & mask) ^ k
    tail = length - length % 4
    rest = length % 4
    if rest == 3:
        h ^= data[tail + 2] << 16
    if rest >= 2:
        h ^= data[tail + 1] << 8
    if rest >= 1:
        h ^= data[tail]
        h = (h * m) & mask
    h ^= h >> 13
    h = (h * m) & mask
    h ^= h >> 15
    return h - (1 << 32) if h & 0x80000000 else h


def key_partition(key: bytes, partitions: int) -> int:
    """The partition the Java producer's default partitioner picks for a key."""
    return (murmur2(key) & 0x7FFFFFFF) % partitions


class RoundRobin:
    def __init__(self, partitions: int):
        self.partitions = partitions
        self._next = itertools.cycle(range(partitions))

    def update(self, lags: dict[int, int] | None, now: float) -> None:
        pass  # lag does not matter to it

    def choose(self) -> int:
        return next(self._next)


class SameQueueLength:
    def __init__(self, partitions: int):
        self.partitions = partitions
        self._uniform = RoundRobin(partitions)
        self._heap: list[tuple[int, int, int]] | None = None  # (estimated queue, tie-break, partition)
        self._tie = itertools.count()

    def update(self, lags: dict[int, int] | None, now: float = 0.0) -> None:
        """New lag per partition; None (no data, or stale) falls back to round robin."""
        if not lags or len(lags) < self.partitions:
            self._heap = None
            return
        self._heap = [(max(0, lags[p]), next(self._tie), p) for p in range(self.partitions)]
        heapq.heapify(self._heap)

    def choose(self) -> int:
        if self._heap is None:
            return self._uniform.choose()
        queue, _, partition = self._heap[0]
        heapq.heapreplace(self._heap, (queue + 1, next(self._tie), partition))
        return partition


class OutlierDetection:
    CLOSED, HALF_OPEN, OPEN = "closed", "half-open", "open"

    def __init__(self, partitions: int, k: float = 3.0, open_seconds: float = 5.0, half_open_share: float = 0.1,
                 min_lag: int = 100):
        """`min_lag`: a lag less than this above the baseline is never an outlier (tiny lags would
        make a tiny deviation twitchy)."""
        self.partitions, self.k, self.open_seconds = partitions, k, open_seconds
        self.half_open_share, self.min_lag = half_open_share, min_lag
        self.state = {p: self.CLOSED for p in range(partitions)}
        self._opened_at: dict[int, float] = {}
        self._weights = {p: 1.0 for p in range(partitions)}
        self._credit = {p: 0.0 for p in range(partitions)}

    def outliers(self, lags: dict[int, int]) -> set[int]:
        """Lags above baseline + max(k * sigma, `min_lag`), both from the least-lagging quarter of
        the partitions (at least 3). Statistics over all partitions break down when many lag:
        quartiles (IQR) at a quarter, the median at a half, and long before that the partitions of
        a busy but healthy worker widen the spread until a slow worker's lag no longer stands out.
        The partitions keeping up best are what "normal" means, however many lag."""
        values = sorted(lags.values())
        if len(values) < 3:
            return set()
        healthy = values[:max(3, len(values) // 4)]
        baseline = statistics.median(healthy)
        sigma = 1.4826 * statistics.median(abs(v - baseline) for v in healthy)
        limit = baseline + max(self.k * sigma, self.min_lag)
        return {p for p, lag in lags.items() if lag > limit}

    def update(self, lags: dict[int, int] | None, now: float) -> None:
        if not lags or len(lags) < self.partitions:
            self.state = {p: self.CLOSED for p in range(self.partitions)}  # no data: uniform
        else:
            outliers = self.outliers(lags)
            for p in range(self.partitions):
                state = self.state[p]
                if p in outliers:
                    if state == self.CLOSED or (state == self.HALF_OPEN and
                                                now - self._opened_at[p] >= self.open_seconds):
                        self.state[p], self._opened_at[p] = self.OPEN, now
                    elif state == self.OPEN and now - self._opened_at[p] >= self.open_seconds:
                        self.state[p], self._opened_at[p] = self.HALF_OPEN, now
                elif state != self.CLOSED:
                    self.state[p] = self.CLOSED if state == self.HALF_OPEN else self.HALF_OPEN
        share = {self.CLOSED: 1.0, self.HALF_OPEN: self.half_open_share, self.OPEN: 0.0}
        self._weights = {p: share[s] for p, s in self.state.items()}
        if not any(self._weights.values()):  # every partition an outlier cannot be: keep them all
            self._weights = dict.fromkeys(self._weights, 1.0)

    def choose(self) -> int:
        """Smooth weighted round robin (as nginx): exact shares, no bursts onto one partition."""
        total = 0.0
        best = None
        for p, weight in self._weights.items():
            self._credit[p] += weight
            total += weight
            if weight and (best is None or self._credit[p] > self._credit[best]):
                best = p
        self._credit[best] -= total
        return best
