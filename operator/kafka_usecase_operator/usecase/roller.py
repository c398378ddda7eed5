"""Which pod of a use case's cluster restarts next, or why none may yet: a pure function of what
was observed, so every blocking case is a unit test. The actor (usecase/reconciler.py) restarts the
one pod this names, waits for it, and asks again (Strimzi's KafkaRoller asks `canRoll` and its
quorum check the same way before each restart).

The rule:
- One pod at a time. While any pod of the cluster is missing or not ready, nothing else restarts,
  except a pod that is itself due and not ready (crash-looping on the old revision, stuck): it
  serves nothing, so restarting it costs nothing, and it goes first.
- The quorum before the brokers (a version upgrade: controllers first), the ZooKeeper leader or
  the active KRaft controller last, and a quorum member only while, without it, a majority of the
  quorum is still caught up with the leader.
- A broker only if no partition with a replica on it would fall below `min.insync.replicas`:
  replicas <= minISR never blocks (acks=all writes to it stop whenever any replica is down);
  otherwise the partition's in-sync replicas other than this broker must still number minISR.
  That is: ISR < minISR with this broker a replica blocks; ISR = minISR with this broker in the
  ISR blocks. The broker that is the (ZooKeeper-mode) controller goes last.
- The next pod only once the restarted one is back: ready, registered, in the ISR of all of its
  partitions (a broker) or caught up with the leader (a quorum member).
"""

from __future__ import annotations

from dataclasses import dataclass, field

BROKER = "broker"
QUORUM_COMPONENTS = ("zookeeper", "controller")


@dataclass(frozen=True)
class PodView:
    name: str
    component: str  # broker | controller | zookeeper
    node_id: int  # broker.id / node.id; ZooKeeper: myid
    exists: bool = True
    ready: bool = False
    reasons: tuple[str, ...] = ()  # why it must restart; empty: it need not


@dataclass(frozen=True)
class PartitionView:
    topic: str
    partition: int
    replicas: tuple[int, ...]
    isr: tuple[int, ...]
    min_isr: int

    @property
    def label(self) -> str:
        return f"{self.topic}-{self.partition}"


@dataclass(frozen=True)
class QuorumView:
    """The metadata quorum as its leader sees it."""

    size: int
    leader: int | None  # node id (ZooKeeper: myid) of the leader, None while there is none
    caught_up: frozenset[int] = field(default_factory=frozenset)  # members in sync, the leader included


@dataclass(frozen=True)
class KafkaView:
    """What the brokers said; None where they could not be asked."""

    partitions: tuple[PartitionView, ...]
    registered: frozenset[int]  # broker ids in the cluster's metadata
    controller: int | None = None  # ZooKeeper mode: the broker that is the controller


@dataclass(frozen=True)
class Restart:
    pod: str
    reasons: tuple[str, ...]


@dataclass(frozen=True)
class Wait:
    reason: str  # PodNotReady | BrokerCatchingUp | QuorumCatchingUp | UnderMinIsr | QuorumAtRisk | KafkaUnknown
    message: str


def broker_blocker(broker: int, partitions: tuple[PartitionView, ...]) -> PartitionView | None:
    """The first partition a restart of `broker` would take below its min ISR, or None."""
    for p in partitions:
        if broker not in p.replicas or len(p.replicas) <= p.min_isr:
            continue
        if len([b for b in p.isr if b != broker]) < p.min_isr:
            return p
    return None


def quorum_allows(member: int, quorum: QuorumView) -> bool:
    """Without `member`, a majority of the quorum is still caught up with the leader. A quorum of one
    has no majority to keep: its restart is the outage a single member means."""
    if quorum.size == 1:
        return True
    return quorum.leader is not None and len(quorum.caught_up - {member}) >= quorum.size // 2 + 1


def next_step(pods: list[PodView], kafka: KafkaView | None, quorum: QuorumView | None) -> Restart | Wait | None:
    """The one pod to restart now, why nothing may restart yet, or None when no pod is due."""
    due = [p for p in pods if p.reasons]
    if not due:
        return None
    stuck = [p for p in due if p.exists and not p.ready]
    if stuck:
        return Restart(stuck[0].name, stuck[0].reasons)
    waiting = _not_ready(pods) or _not_back(pods, kafka, quorum)
    if waiting:
        return waiting
    quorum_due = [p for p in due if p.component in QUORUM_COMPONENTS]
    if quorum_due:
        return _next_quorum_member(quorum_due, quorum)
    return _next_broker(due, kafka)


def roll_unsettled(pods: list[PodView], kafka: KafkaView | None, quorum: QuorumView | None) -> Wait | None:
    """After the last restart of a roll: what it still waits for before it is over (leadership goes
    back to the preferred replicas, and an upgrade's protocol level goes up, only once every pod is
    back), or None."""
    if kafka is None:
        return Wait("KafkaUnknown", "the brokers could not be asked whether the restarted pods are back")
    return _not_ready(pods) or _not_back(pods, kafka, quorum)


def _not_ready(pods: list[PodView]) -> Wait | None:
    absent = [p.name for p in pods if not p.exists or not p.ready]
    return Wait("PodNotReady", f"waiting for {', '.join(absent)} to be ready") if absent else None


def _not_back(pods: list[PodView], kafka: KafkaView | None, quorum: QuorumView | None) -> Wait | None:
    """A pod that is not due and has not caught up yet: the one restarted last, or one lagging for
    another reason. (A due pod that lags is judged by the availability rule like any other.)"""
    pods = [p for p in pods if not p.reasons]
    if quorum is None and any(p.component in QUORUM_COMPONENTS for p in pods):
        return Wait("KafkaUnknown", "the metadata quorum's state could not be read: whether its members caught up "
                                    "is unknown")
    if quorum is not None:
        lagging = sorted(p.name for p in pods if p.component in QUORUM_COMPONENTS and p.node_id not in quorum.caught_up)
        if lagging:
            return Wait("QuorumCatchingUp", f"{', '.join(lagging)} not caught up with the quorum leader yet")
    if kafka is not None:
        brokers = [p for p in pods if p.component == BROKER]
        unregistered = [p.name for p in brokers if p.node_id not in kafka.registered]
        if unregistered:
            return Wait("BrokerCatchingUp", f"{', '.join(unregistered)} not registered with the cluster yet")
        for p in brokers:
            behind = [q.label for q in kafka.partitions if p.node_id in q.replicas and p.node_id not in q.isr]
            if behind:
                return Wait("BrokerCatchingUp", f"{p.name} (broker {p.node_id}) not in the ISR of "
                                                f"{_few(behind)} yet")
    return None


def _next_quorum_member(due: list[PodView], quorum: QuorumView | None) -> Restart | Wait:
    if quorum is None:
        return Wait("KafkaUnknown", "the metadata quorum's state could not be read: no quorum member is restarted")
    leader_last = sorted(due, key=lambda p: p.node_id == quorum.leader)
    for pod in leader_last:
        if quorum_allows(pod.node_id, quorum):
            return Restart(pod.name, pod.reasons)
    return Wait("QuorumAtRisk", f"restarting {leader_last[0].name} would leave fewer than a majority of the "
                                f"{quorum.size} quorum members caught up "
                                f"({len(quorum.caught_up)} caught up, leader {quorum.leader})")


def _next_broker(due: list[PodView], kafka: KafkaView | None) -> Restart | Wait:
    if kafka is None:
        return Wait("KafkaUnknown", "the brokers could not be asked for their partitions: no broker is restarted")
    controller_last = sorted(due, key=lambda p: p.node_id == kafka.controller)
    blocked = []
    for pod in controller_last:
        partition = broker_blocker(pod.node_id, kafka.partitions)
        if partition is None:
            return Restart(pod.name, pod.reasons)
        blocked.append((pod, partition))
    pod, p = blocked[0]
    return Wait("UnderMinIsr", f"restarting {pod.name} (broker {pod.node_id}) would take partition {p.label} below "
                               f"min.insync.replicas={p.min_isr}: in sync {list(p.isr)} of replicas {list(p.replicas)}")


def _few(labels: list[str], shown: int = 5) -> str:
    return ", ".join(labels[:shown]) + (f" and {len(labels) - shown} more" if len(labels) > shown else "")


def drain_budget(pods: list[PodView], kafka: KafkaView | None) -> int:
    """How many brokers a voluntary disruption (a node drain) may take now: 1 only while every pod
    is up and whichever broker goes, no partition falls below its min ISR; unknown counts as no."""
    if kafka is None or any(not p.exists or not p.ready for p in pods):
        return 0
    brokers = [p.node_id for p in pods if p.component == BROKER]
    return int(all(b in kafka.registered and broker_blocker(b, kafka.partitions) is None for b in brokers))
