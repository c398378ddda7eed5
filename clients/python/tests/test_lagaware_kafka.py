"""The lag-aware producer on the seed's 20/20/10 scenario against a real broker (KRaft): workers of
50/50/25 msg/s, 10 partitions, the variants side by side (see lagaware_scenario.py).

Bounded lag: over the last 30 s of a run, the least-squares slope of the group's total lag is at
most 2% of the offered rate."""

from __future__ import annotations

import pytest

from lagaware_scenario import Run, run_side_by_side

pytestmark = [pytest.mark.kafka]
LOAD = 0.9
SECONDS = 60


@pytest.fixture(scope="module")
def results(kafka_kraft):
    """Every variant at once (one minute of load), plus a run whose fast worker slows mid-run."""
    runs = [Run(kafka_kraft, "round-robin", algorithm="round-robin", load=LOAD),
            Run(kafka_kraft, "static-weighted", algorithm="round-robin", load=LOAD, static=True),
            Run(kafka_kraft, "same-queue-length", algorithm="same-queue-length", load=LOAD),
            Run(kafka_kraft, "outlier-detection", algorithm="outlier-detection", load=LOAD, min_lag=20),
            # At 70%, after 20 s a fast worker slows from 20 to 40 ms: 87.5 msg/s offered to the
            # 100 msg/s of capacity left; an equal share of partitions would now be too much for it.
            Run(kafka_kraft, "slowed-same-queue-length", algorithm="same-queue-length", load=0.7,
                slow_down=(20, 0, 40))]
    results = run_side_by_side(runs, SECONDS)
    print("\n" + "\n".join(r.summary() for r in results.values()))
    return results


def test_round_robin_lets_lag_grow_when_the_slow_worker_gets_an_equal_share(results):
    baseline = results["round-robin"]
    assert not baseline.bounded(), baseline.summary()


def test_lag_aware_producers_keep_lag_bounded_like_the_static_oracle(results):
    for name in ("static-weighted", "same-queue-length", "outlier-detection"):
        assert results[name].bounded(), results[name].summary()


def test_a_worker_slowed_mid_run_is_relieved_and_lag_recovers(results):
    slowed = results["slowed-same-queue-length"]
    assert slowed.bounded(), slowed.summary()
    # After it slowed, its partitions got about its share of the capacity, less than their share
    # of the partitions (what round robin sends them).
    shares = (slowed.sent_share_of_slowed, slowed.slowed_capacity_share, slowed.slowed_partition_share)
    assert slowed.sent_share_of_slowed <= min(slowed.slowed_capacity_share + 0.03,
                                              slowed.slowed_partition_share - 0.02), shares


def test_nothing_produced_is_lost(results):
    for result in results.values():
        assert result.error is None, result.error
        assert result.produced > 0 and len(result.consumed) == result.produced, result.summary()
