"""Changes admission cannot judge because they depend on what already runs. A refused change
leaves everything as it is: the handler applies nothing and reports `Ready=False`."""

from __future__ import annotations

from kafka_usecase_operator.api.common import Reason
from kafka_usecase_operator.conditions import Observed
from kafka_usecase_operator.render.model import ClusterModel

REFUSALS = (Reason.QUORUM_SHRINK, Reason.CONTROLLER_CHANGE, Reason.VERSION_DOWNGRADE, Reason.TOO_FEW_BROKERS)


def _version(text: str) -> tuple[int, ...]:
    return tuple(int(part) for part in text.split("."))


def refuse_change(c: ClusterModel, running_quorum: int | None, running_version: str | None,
                  largest_topic_replication: int) -> Observed | None:
    """Why the desired cluster must not replace the running one, or None when it may."""
    if c.mode == "kraft" and running_quorum and c.quorum_size != running_quorum:
        return Observed("Ready", False, Reason.CONTROLLER_CHANGE,
                        f"{running_quorum} KRaft controllers run; changing to {c.quorum_size} is not supported yet: "
                        "the voters live in the metadata log (a KIP-853 dynamic quorum) and are changed only with "
                        "Kafka's AddRaftVoter/RemoveRaftVoter requests, which neither confluent-kafka 2.16.1 nor "
                        "kafka-python implements")
    if running_quorum and c.quorum_size < running_quorum // 2 + 1:
        return Observed("Ready", False, Reason.QUORUM_SHRINK,
                        f"{c.quorum_size} {c.mode} quorum node(s) would be fewer than a majority of the "
                        f"{running_quorum} running; shrink by at most {running_quorum - (running_quorum // 2 + 1)} "
                        "at a time")
    if running_version and _version(c.version) < _version(running_version):
        return Observed("Ready", False, Reason.VERSION_DOWNGRADE,
                        f"Kafka {running_version} runs; downgrading to {c.version} is not supported")
    if largest_topic_replication > c.brokers:
        return Observed("Ready", False, Reason.TOO_FEW_BROKERS,
                        f"{c.brokers} broker(s) cannot hold a topic with replication factor {largest_topic_replication}")
    return None
