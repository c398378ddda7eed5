"""Lag-aware producer and consumer vs round robin on the seed's 20/20/10 scenario (1-broker KRaft devstack).

    .venv/bin/python bench/lagaware.py [--loads 0.6,0.8,0.9,0.96] [--seconds 90] [--variants a,b]

Workers of 50/50/25 msg/s (service times 20/20/40 ms), 10 partitions (clients/python/tests/
lagaware_scenario.py). For each offered load, every variant runs side by side for --seconds:
round robin (the baseline), static weighted assignment (the oracle), the lag-aware producer with
each algorithm, and the lag-aware consumer (keyed messages, so per-key order is checked); a share
group, the reference, only when --variants names it. Then, at 60% load, a fast worker slows from 20
to 60 ms after 20 s.

Prints one line per variant: the highest load it holds with bounded lag (total lag's slope over
the last 30 s at most 2% of the offered rate); the slope and end-to-end p99 at each load (of the
whole run, and of the messages sent in its last 30 s); at 90% the p50/p99 and the mean lag spread
across partitions; after the slowdown whether lag stayed bounded and when it was back to its level
before (within twice it, plus 5 messages); hand-offs, losses, duplicates, keys out of order; and the
admin requests per second the producer spends on lag (the consumer's coordinator spends as many).
~12 minutes.
"""

from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "clients/python/tests"))

from devstack import kafka, paths, proc  # noqa: E402
from lagaware_scenario import CAPACITY, Result, Run, run_side_by_side  # noqa: E402

VARIANTS = {  # name: Run options
    "round-robin": {"algorithm": "round-robin"},
    "static-weighted": {"algorithm": "round-robin", "static": True},
    "same-queue-length": {"algorithm": "same-queue-length"},
    "outlier-detection": {"algorithm": "outlier-detection", "min_lag": 20, "open_seconds": 1.0,  # time-compressed
                          "half_open_share": 0.5},
    # Keyed messages (200 keys, murmur2) to a group of LagAwareConsumers.
    "lag-aware-consumer": {"algorithm": "round-robin", "keys": 200, "lag_aware_consumer": {}},
}
# The reference, run on its own (`--variants round-robin,share-group`): beside the others its share
# fetches slowed the whole broker. A share group (KIP-932, Kafka 4.2+; confluent-kafka's ShareConsumer
# is a preview), each worker taking up to 5 records per poll. No order per key.
REFERENCE = {"share-group": {"algorithm": "round-robin", "share_group": True}}


class Endpoint:
    """The devstack's 1-broker KRaft cluster as the scenario wants it (client_config())."""

    def __init__(self):
        plan = kafka.plan("kraft", brokers=1)
        stack = proc.Stack.load(plan.name, paths.run_dir())
        self.started = not (stack and stack.running())
        self.plan, self.config = plan, kafka.admin_config(kafka.up(plan, paths.run_dir()))

    def client_config(self) -> dict:
        return dict(self.config)

    def stop(self) -> None:
        if self.started:
            proc.Stack.load(self.plan.name, paths.run_dir()).stop()


def _steady_p99(result: Result) -> float:
    """p99 of the messages sent in the last 30 s: where the run settled, without its start."""
    return result.percentile(0.99, sent_after=result.window_from)


def options_keyed(name: str) -> bool:
    return bool(VARIANTS[name].get("keys"))


def _slowdown(result: Result | None) -> str:
    if result is None:
        return "-"
    recovery = result.recovery_seconds()
    return (f"lag {'bounded' if result.bounded() else 'GROWING'} (slope {result.slope():+.1f} msg/s), back to its "
            f"level before {'never' if recovery is None else f'after {recovery:.0f} s'}")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--loads", default="0.6,0.8,0.9,0.96")
    parser.add_argument("--variants", default=",".join(VARIANTS))
    parser.add_argument("--seconds", type=float, default=90)  # as the tests: start-up and the slowdown, then 30 s judged
    args = parser.parse_args()
    loads = [float(x) for x in args.loads.split(",")]
    variants = {name: {**VARIANTS, **REFERENCE}[name] for name in args.variants.split(",")}
    endpoint = Endpoint()
    try:
        by_load: dict[float, dict[str, Result]] = {}
        for load in loads:
            by_load[load] = run_side_by_side([Run(endpoint, name, load=load, **options)
                                              for name, options in variants.items()], args.seconds)
        slowed = run_side_by_side([Run(endpoint, name, load=0.6, slow_down=(20, 0, 60), **options)
                                   for name, options in variants.items() if not options.get("static")], args.seconds)
    finally:
        endpoint.stop()
    reference = by_load.get(0.9) or by_load[max(loads)]
    for name in variants:
        held = [load for load in loads if by_load[load][name].bounded()]
        at = reference[name]
        per_load = ", ".join(f"{load * 100:.0f}%: {by_load[load][name].slope():+.1f} msg/s, "
                             f"{by_load[load][name].percentile(0.99):.1f} s "
                             f"({_steady_p99(by_load[load][name]):.1f} s)" for load in loads)
        everything = [r[name] for r in by_load.values()] + ([slowed[name]] if name in slowed else [])
        lost = sum(r.produced - len(r.consumed) for r in everything)
        duplicated = sum(r.arrivals - len(r.consumed) for r in everything)
        reordered = sum(len(r.order_violations()) for r in everything)
        print(f"lagaware bench {name} (capacity {CAPACITY:.0f} msg/s, 10 partitions, {args.seconds:.0f} s runs): "
              f"bounded up to {max(held) * 100 if held else 0:.0f}% of capacity "
              f"(slope, p99 (p99 of the last 30 s) by load: {per_load}) | "
              f"at {at.rate / CAPACITY * 100:.0f}%: p50 {at.percentile(0.5) * 1000:.0f} ms, "
              f"p99 {at.percentile(0.99) * 1000:.0f} ms, lag spread {statistics.fmean(at.spread[-30:]):.0f} | "
              f"slowdown: {_slowdown(slowed.get(name))} | "
              f"hand-offs {sum(r.hand_offs for r in everything)}, lost {lost}, duplicated {duplicated}"
              f"{f', keys out of order {reordered}' if options_keyed(name) else ''} | "
              f"admin {at.admin_requests_per_second:.1f} req/s", flush=True)


if __name__ == "__main__":
    main()
