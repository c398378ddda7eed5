"""A KafkaUseCase's status from what is observed: pure, so every case is a unit test.

In-cluster: `Ready` follows the StatefulSets (every replica ready and updated to the current
revision) and, while a pod cannot be scheduled, says why. External: the admin connection check.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from kafka_usecase_operator.api.common import Reason
from kafka_usecase_operator.conditions import Observed
from kafka_usecase_operator.render.model import ClusterModel

QUORUM_CONDITION = {"zookeeper": "ZooKeeperReady", "kraft": "ControllersReady"}
QUORUM_NOUN = {"zookeeper": "ZooKeeper nodes", "kraft": "KRaft controllers"}


@dataclass(frozen=True)
class SetObservation:
    """A StatefulSet's observed rollout, and why any of its pods is not scheduled."""

    desired: int
    ready: int = 0
    updated: int = 0
    current: bool = False  # the controller has seen the latest spec (status.observedGeneration)
    unschedulable: tuple[str, ...] = field(default_factory=tuple)  # "pod: scheduler message"
    stuck: tuple[str, ...] = field(default_factory=tuple)  # "pod: the container's own words" (crash loops...)

    @classmethod
    def from_objects(cls, statefulset: dict | None, pods: list[dict]) -> SetObservation | None:
        if statefulset is None:
            return None
        spec, status = statefulset.get("spec", {}), statefulset.get("status") or {}
        waiting = []
        for pod in pods:
            for condition in (pod.get("status") or {}).get("conditions") or []:
                if condition.get("type") == "PodScheduled" and condition.get("status") == "False":
                    waiting.append(f"{pod['metadata']['name']}: {condition.get('message', condition.get('reason'))}")
        stuck = [f"{pod['metadata']['name']}: {words}" for pod in pods if (words := _stuck(pod))]
        return cls(desired=spec.get("replicas", 0), ready=status.get("readyReplicas", 0) or 0,
                   updated=status.get("updatedReplicas", 0) or 0,
                   current=(status.get("observedGeneration") or 0) >= statefulset["metadata"].get("generation", 0),
                   unschedulable=tuple(sorted(waiting)), stuck=tuple(sorted(stuck)))

    @property
    def done(self) -> bool:
        return self.current and self.ready == self.desired and self.updated == self.desired

    def summary(self) -> str:
        return f"{self.ready}/{self.desired}"


# A container waiting for one of these is starting, not stuck.
_STARTING = ("ContainerCreating", "PodInitializing")


def _stuck(pod: dict) -> str | None:
    """Why a pod's container does not run or keeps failing, in the kubelet's and its own words;
    None for a pod that runs or is still starting."""
    for container in (pod.get("status") or {}).get("containerStatuses") or []:
        if container.get("ready"):
            continue
        waiting = (container.get("state") or {}).get("waiting") or {}
        last = (container.get("lastState") or {}).get("terminated") or {}
        if waiting and waiting.get("reason") not in _STARTING:
            words = f"{waiting.get('reason')}: {waiting.get('message', '')}".rstrip(": ")
            if last:
                words += f" (last exit code {last.get('exitCode')}, {last.get('reason', 'terminated')}"
                words += f": {last['message'].strip()[-300:]})" if last.get("message") else ")"
            return f"{words}; restarted {container.get('restartCount', 0)} time(s)"
    return None


def _set_condition(kind: str, label: str, observation: SetObservation | None, stuck_reason: str) -> Observed:
    if observation is None:
        return Observed(kind, False, Reason.RECONCILING, f"{label}: not created yet")
    if observation.done:
        return Observed(kind, True, Reason.READY, f"{observation.summary()} {label} ready")
    if observation.unschedulable:
        return Observed(kind, False, Reason.UNSCHEDULABLE,
                        f"{observation.summary()} {label} ready; cannot be scheduled: " + "; ".join(observation.unschedulable))
    if observation.stuck:
        return Observed(kind, False, stuck_reason,
                        f"{observation.summary()} {label} ready; " + "; ".join(observation.stuck))
    return Observed(kind, False, Reason.RECONCILING, f"{observation.summary()} {label} ready, rolling out")


def in_cluster_conditions(c: ClusterModel, brokers: SetObservation | None,
                          quorum: SetObservation | None) -> list[Observed]:
    quorum_condition = _set_condition(QUORUM_CONDITION[c.mode], QUORUM_NOUN[c.mode], quorum, Reason.QUORUM_NOT_READY)
    brokers_condition = _set_condition("BrokersReady", "brokers", brokers, Reason.BROKER_NOT_READY)
    blocking = [cond for cond in (quorum_condition, brokers_condition) if not cond.status]
    ready = (Observed("Ready", True, Reason.READY, f"Kafka {c.version} ({c.mode}) ready at {c.bootstrap_servers}")
             if not blocking else Observed("Ready", False, blocking[0].reason, blocking[0].message))
    return [ready, quorum_condition, brokers_condition]


def in_cluster_fields(c: ClusterModel, brokers: SetObservation | None, quorum: SetObservation | None,
                      cluster_id: str | None) -> dict:
    fields = {"mode": c.mode, "kafkaVersion": c.version, "bootstrapServers": c.bootstrap_servers,
              "clusterId": cluster_id, "brokers": brokers.summary() if brokers else f"0/{c.brokers}",
              "quorum": quorum.summary() if quorum else f"0/{c.quorum_size}", "adminSecret": c.admin_secret}
    if c.mode == "zookeeper":
        fields["interBrokerProtocolVersion"] = c.inter_broker_protocol
    return fields


def external_conditions(error: str | None, bootstrap_servers: str) -> list[Observed]:
    if error is None:
        return [Observed("Ready", True, Reason.CONNECTED, f"admin connection to {bootstrap_servers} works")]
    return [Observed("Ready", False, Reason.UNREACHABLE, f"{bootstrap_servers}: {error}")]
