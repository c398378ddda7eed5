"""The lag-aware producer's partition choosers (pure)."""

from __future__ import annotations

from collections import Counter

import pytest

from kafka_usecase_clients.lagaware.partitioning import (OutlierDetection, SameQueueLength, key_partition,
                                                          murmur2)

pytestmark = pytest.mark.unit


def test_murmur2_matches_the_java_clients_hash():
    # Vectors from Apache Kafka's UtilsTest.testMurmur2.
    assert [murmur2(s) for s in (b"21", b"foobar", b"a-little-bit-long-string", b"a-little-bit-longer-string",
                                 b"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8")] == \
        [-973932308, -790332482, -985981536, -1486304829, -58897971]
    assert key_partition(b"21", 10) == (-973932308 & 0x7FFFFFFF) % 10


def test_same_queue_length_fills_the_shortest_queues_until_they_are_equal():
    chooser = SameQueueLength(3)
    chooser.update({0: 100, 1: 40, 2: 10})
    sent = Counter(chooser.choose() for _ in range(240))
    assert sent == {2: 120, 1: 90, 0: 30}  # every queue ends at 130


def test_same_queue_length_spreads_evenly_without_lag_data():
    chooser = SameQueueLength(4)
    chooser.update(None)
    assert Counter(chooser.choose() for _ in range(400)) == dict.fromkeys(range(4), 100)


def test_outlier_detection_opens_half_opens_and_closes_a_lagging_partition():
    chooser = OutlierDetection(5, open_seconds=5, half_open_share=0.1)
    lagging = {0: 10, 1: 12, 2: 11, 3: 9, 4: 5000}
    chooser.update(lagging, now=0)
    assert chooser.state[4] == "open"
    assert 4 not in Counter(chooser.choose() for _ in range(100))
    chooser.update(lagging, now=6)
    assert chooser.state[4] == "half-open"
    share = Counter(chooser.choose() for _ in range(410))
    assert share[4] == 10 and all(share[p] == 100 for p in range(4))
    chooser.update({p: 10 for p in range(5)}, now=7)
    assert chooser.state[4] == "closed"
    assert Counter(chooser.choose() for _ in range(500)) == dict.fromkeys(range(5), 100)


def test_small_lags_are_never_outliers():
    chooser = OutlierDetection(4, min_lag=100)
    chooser.update({0: 1, 1: 1, 2: 1, 3: 60}, now=0)
    assert set(chooser.state.values()) == {"closed"}


def test_a_slow_worker_stands_out_beside_a_busy_one():
    """Three workers: one keeping up (lag ~0), one busy but healthy (lag ~15), one slow (lag ~50).
    Over all partitions the busy worker's lags widen the spread until the slow one's hide in it
    (median 12, limit ~60); against the partitions keeping up best, the slow ones stand out."""
    chooser = OutlierDetection(10, min_lag=20)
    chooser.update({0: 11, 3: 12, 6: 11, 9: 12, 1: 0, 4: 1, 7: 0, 2: 49, 5: 50, 8: 50}, now=0)
    assert [p for p, state in chooser.state.items() if state == "open"] == [2, 5, 8]


def test_most_partitions_lagging_are_still_outliers():
    """Two workers of three behind (7 of 10 partitions lag): the median is a lagging partition."""
    chooser = OutlierDetection(10, min_lag=20)
    chooser.update({1: 0, 4: 2, 7: 1, 0: 60, 3: 62, 6: 58, 9: 61, 2: 140, 5: 150, 8: 145}, now=0)
    assert {p for p, state in chooser.state.items() if state == "open"} == {0, 2, 3, 5, 6, 8, 9}


@pytest.mark.unit
def test_a_third_of_the_partitions_lagging_are_outliers_too():
    """One slow worker of three owns a third of the partitions: its lags must still stand out."""
    chooser = OutlierDetection(9, min_lag=20)
    chooser.update({0: 5, 1: 8, 2: 6, 3: 7, 4: 9, 5: 4, 6: 300, 7: 280, 8: 320}, now=0)
    assert [p for p, state in chooser.state.items() if state == "open"] == [6, 7, 8]
