"""Pure planning for the lag-aware consumer: which member should own which partition (no I/O; the
coordinator feeds it what members and the group's lag report).

A partition's demand is what it asks of its owner per second: the rate messages arrive at it, plus
its lag spread over `drain_seconds`, so a partition that fell behind asks for more until it has
caught up. A member's utilisation is the demand of its partitions over its measured capacity
(messages it can process per second). The plan keeps every member's utilisation as low as it can:

- partitions nobody owns (new, or their owner left or died) go, the most demanding first, to the
  member they load least;
- then, while moving a partition off the busiest member leaves both it and the receiver below its
  utilisation by more than `tolerance` (a share), the best such move is taken, at most `max_moves`
  at a time. Everything else stays where it is, so a
  plan never reshuffles partitions for nothing, and members that fall behind shed partitions first.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Move:
    partition: int
    source: str | None  # None: nobody owned it
    target: str


# Every partition asks at least this much, so that without traffic (or before it is measured)
# partitions are still spread over the members in proportion to their capacity.
MIN_DEMAND = 1e-3


def demand(rates: dict[int, float], lags: dict[int, int], drain_seconds: float) -> dict[int, float]:
    """Per partition: arrival rate (msg/s) plus lag spread over `drain_seconds`."""
    return {p: rates.get(p, 0.0) + lags.get(p, 0) / drain_seconds for p in set(rates) | set(lags)}


def utilisation(owners: dict[int, str | None], capacities: dict[str, float],
                demands: dict[int, float]) -> dict[str, float]:
    load = dict.fromkeys(capacities, 0.0)
    for partition, owner in owners.items():
        if owner in load:
            load[owner] += _demand(partition, demands)
    return {member: load[member] / capacities[member] for member in capacities}


def plan(owners: dict[int, str | None], capacities: dict[str, float], demands: dict[int, float], *,
         max_moves: int = 1, tolerance: float = 0.05) -> list[Move]:
    """The moves that take `owners` (partition -> member, None if unowned) towards balanced
    utilisation. `capacities`: the live members' messages/s (all > 0); `demands`: per partition."""
    if not capacities:
        return []
    owners = {p: (o if o in capacities else None) for p, o in owners.items()}
    moves = []
    for partition in sorted((p for p, o in owners.items() if o is None), key=lambda p: -_demand(p, demands)):
        target = _least_loaded_after(partition, owners, capacities, demands)
        owners[partition] = target
        moves.append(Move(partition, None, target))
    for _ in range(max_moves):
        move = _best_move(owners, capacities, demands, tolerance)
        if move is None:
            break
        owners[move.partition] = move.target
        moves.append(move)
    return moves


def _demand(partition: int, demands: dict[int, float]) -> float:
    return max(demands.get(partition, 0.0), MIN_DEMAND)


def _least_loaded_after(partition: int, owners, capacities, demands) -> str:
    load = utilisation(owners, capacities, demands)
    extra = _demand(partition, demands)
    # Ties (e.g. no demand yet) go to the member with the fewest partitions, so a cold start spreads.
    count = {m: sum(1 for o in owners.values() if o == m) for m in capacities}
    return min(capacities, key=lambda m: (load[m] + extra / capacities[m], count[m], m))


def _best_move(owners, capacities, demands, tolerance) -> Move | None:
    """From the busiest member, the move after which the busier of it and the target is least
    busy; only if that is below the busiest's utilisation by more than `tolerance` (so members tied
    at the top still shed, one move each)."""
    load = utilisation(owners, capacities, demands)
    busiest = max(load, key=lambda m: (load[m], m))
    best = None
    for partition in (p for p, o in owners.items() if o == busiest):
        d = _demand(partition, demands)
        for target in (m for m in capacities if m != busiest):
            after = max(load[busiest] - d / capacities[busiest], load[target] + d / capacities[target])
            if after < load[busiest] * (1 - tolerance) and (best is None or after < best[0]):
                best = (after, Move(partition, busiest, target))
    return best[1] if best else None
