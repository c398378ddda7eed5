"""The lag-aware consumer's assignment planner (pure)."""

from __future__ import annotations

from collections import Counter

import pytest

from kafka_usecase_clients.lagaware.assignment import Move, demand, plan, utilisation

pytestmark = pytest.mark.unit

CAPACITIES = {"fast-1": 50.0, "fast-2": 50.0, "slow": 25.0}  # the seed's 20/20/10, time-compressed
EVEN = {p: 11.25 for p in range(10)}  # 90% of 125 msg/s over 10 partitions


def converge(owners, capacities, demands, rounds=20):
    owners = dict(owners)
    for _ in range(rounds):
        for move in plan(owners, capacities, demands):
            owners[move.partition] = move.target
    return owners


def test_a_cold_start_spreads_partitions_by_capacity():
    owners = converge(dict.fromkeys(range(10)), CAPACITIES, {})
    assert Counter(owners.values()) == {"fast-1": 4, "fast-2": 4, "slow": 2}


def test_partitions_follow_capacity_as_the_static_oracle_would():
    start = {p: ("fast-1", "fast-2", "slow")[p % 3] for p in range(10)}  # round robin: slow at 135%
    owners = converge(start, CAPACITIES, EVEN)
    assert Counter(owners.values()) == {"fast-1": 4, "fast-2": 4, "slow": 2}
    assert max(utilisation(owners, CAPACITIES, EVEN).values()) == pytest.approx(0.9)


def test_the_member_that_falls_behind_sheds_first_and_one_move_at_a_time():
    start = {p: ("fast-1", "fast-2", "slow")[p % 3] for p in range(10)}
    moves = plan(start, CAPACITIES, EVEN)
    assert len(moves) == 1 and moves[0].source == "slow"


def test_a_balanced_assignment_is_left_alone():
    owners = {p: ("fast-1", "fast-2")[p % 2] for p in range(8)} | {8: "slow", 9: "slow"}
    assert plan(owners, CAPACITIES, EVEN) == []


def test_lag_adds_demand_until_it_is_drained():
    demands = demand({p: 10.0 for p in range(4)}, {0: 300}, drain_seconds=30)
    assert demands == {0: 20.0, 1: 10.0, 2: 10.0, 3: 10.0}
    owners, capacities = {0: "a", 1: "a", 2: "b", 3: "b"}, {"a": 30.0, "b": 40.0}
    assert plan(owners, capacities, {p: 10.0 for p in range(4)}) == []  # no lag: a at 67%, b at 50%
    assert plan(owners, capacities, demands) == [Move(1, "a", "b")]  # a's lagging partition keeps it, b takes 1


def test_partitions_of_a_member_that_left_go_to_those_they_load_least():
    owners = {p: ("fast-1", "fast-2", "gone")[p % 3] for p in range(9)}
    moves = plan(owners, {"fast-1": 50.0, "fast-2": 50.0}, {p: 5.0 for p in range(9)}, max_moves=0)
    assert {m.partition for m in moves} == {2, 5, 8} and all(m.source is None for m in moves)
    assert Counter(m.target for m in moves) in (Counter({"fast-1": 2, "fast-2": 1}), Counter({"fast-1": 1, "fast-2": 2}))


def test_a_new_member_takes_partitions_from_the_busiest():
    owners = {p: ("a", "b")[p % 2] for p in range(6)}
    moves = plan(owners, {"a": 10.0, "b": 10.0, "new": 10.0}, {p: 3.0 for p in range(6)})
    assert moves and moves[0] == Move(moves[0].partition, moves[0].source, "new")


def test_no_members_no_plan():
    assert plan({0: None}, {}, {0: 1.0}) == []


def test_members_that_join_before_any_traffic_still_get_partitions():
    owners = dict.fromkeys(range(10), "first")  # it was alone when the partitions were handed out
    owners = converge(owners, {"first": 1.0, "second": 1.0, "third": 1.0}, {})
    assert sorted(Counter(owners.values()).values()) == [3, 3, 4]
