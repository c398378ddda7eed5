"""The cluster reconciler: keeps a running use case's children as declared and drives its roller.

Each pass: observe (the children, the pods, their configuration versions; Kafka and the quorum only
when a pod is due or the drain budget needs them), let the pure planners decide (configs.py,
roller.py), act on one thing, and say what happened. The handler calls it on a spec change and on a
timer; it never sleeps: the next pass comes with the next timer tick.
"""

from __future__ import annotations

import base64
import logging
from dataclasses import dataclass, field, replace
from typing import Callable

from kafka_usecase_operator.kafka.cluster_state import zookeeper_quorum
from kafka_usecase_operator.render import cluster
from kafka_usecase_operator.render.model import CONTROLLER_ID_OFFSET, ClusterModel, protocol_of
from kafka_usecase_operator.usecase import configs
from kafka_usecase_operator.usecase.roller import (PodView, QuorumView, Restart, Wait, drain_budget, next_step,
                                                   roll_unsettled)

log = logging.getLogger(__name__)
GROUP = cluster.GROUP
PAUSE_ANNOTATION = f"{GROUP}/pause-reconciliation"
MANUAL_ROLL_ANNOTATION = f"{GROUP}/manual-rolling-update"
REVISION_LABEL = "controller-revision-hash"
# The kinds of a use case's children, listed to notice one deleted (it is put back, with an Event).
CHILD_KINDS = (("v1", "ConfigMap"), ("v1", "Service"), ("apps/v1", "StatefulSet"),
               ("policy/v1", "PodDisruptionBudget"), ("networking.k8s.io/v1", "NetworkPolicy"))


def paused(meta: dict) -> bool:
    return (meta.get("annotations") or {}).get(PAUSE_ANNOTATION) == "true"


@dataclass
class Outcome:
    """What a pass did and saw: Events to post and the `Rolling` condition's content."""

    events: list[tuple[str, str, str]] = field(default_factory=list)  # (type, reason, message)
    rolling: tuple[bool, str, str] = (False, "Idle", "no pod is due for a restart")
    protocol: str | None = None  # ZooKeeper mode: the inter-broker protocol the brokers may now speak

    def event(self, reason: str, message: str, warning: bool = False) -> None:
        self.events.append(("Warning" if warning else "Normal", reason, message))


class ClusterReconciler:
    """One pass over one use case's cluster. `kafka` opens the admin view of the cluster (or raises)."""

    def __init__(self, kube, c: ClusterModel, owner: cluster.Owner, operator: cluster.OperatorIdentity,
                 cluster_id: str, kafka: Callable[[], object]):
        self.kube, self.c, self.owner, self.operator, self.cluster_id = kube, c, owner, operator, cluster_id
        self.kafka = kafka
        self.brokers, self.quorum = cluster.components(c)

    # --- children ----------------------------------------------------------------------------
    def apply_children(self, outcome: Outcome, broker_disruptions: int | None = None) -> None:
        """Apply every child as declared, keeping the configuration versions pods still run; a child
        someone deleted comes back with an Event."""
        existing = self._existing_children()
        live_pdb = existing.get(("PodDisruptionBudget", self.brokers.statefulset))
        if broker_disruptions is None:  # keep the budget the last pass decided
            broker_disruptions = ((live_pdb or {}).get("spec") or {}).get("maxUnavailable", 0)
        live = cluster.Live({name: (obj.get("data") or {}) for (kind, name), obj in existing.items() if kind == "ConfigMap"},
                            broker_disruptions)
        desired = cluster.build(self.c, self.owner, self.operator, cluster_id=self.cluster_id, live=live)
        first_time = not existing
        for obj in desired:
            key = (obj["kind"], obj["metadata"]["name"])
            if key not in existing and not first_time:
                outcome.event("ChildRestored", f"{obj['kind']} {key[1]} was missing and is re-created as declared",
                              warning=True)
            self.kube.apply(obj)

    def hold_drains(self) -> None:
        """The brokers' disruption budget to 0 now (a broker went or is not ready): an eviction must not
        slip in between its return and the next pass's ISR judgement."""
        live = self.kube.get("policy/v1", "PodDisruptionBudget", self.c.namespace, self.brokers.statefulset)
        if live is None or (live.get("spec") or {}).get("maxUnavailable") == 0:
            return
        budget = next(o for o in cluster.build(self.c, self.owner, self.operator, self.cluster_id)
                      if o["kind"] == "PodDisruptionBudget" and o["metadata"]["name"] == self.brokers.statefulset)
        self.kube.apply(budget)  # built with Live(): broker_disruptions 0

    def _existing_children(self) -> dict[tuple[str, str], dict]:
        selector = f"{cluster.USE_CASE_LABEL}={self.c.name}"
        found = {}
        for api_version, kind in CHILD_KINDS:
            for obj in self.kube.list(api_version, kind, self.c.namespace, selector):
                found[(kind, obj["metadata"]["name"])] = obj
        return found

    # --- the roll ----------------------------------------------------------------------------
    def roll(self, outcome: Outcome, annotations: dict, was_rolling: bool) -> int:
        """One step of the roller; returns the drain budget for the brokers (0 or 1). `was_rolling`:
        the last pass had pods due (when the last is done, leadership goes back to preferred replicas)."""
        if annotations.get(MANUAL_ROLL_ANNOTATION) == "true":
            self._manual_roll_of_every_pod(outcome)
        observed = {component.name: self._observe(component) for component in (self.brokers, self.quorum)}
        admin, kafka_view = self._ask_kafka(observed[self.brokers.name])
        # Runtime settings are known (and applied) only while a configuration change is pending.
        dynamic = self._runtime_settable(admin) if kafka_view and observed[self.brokers.name].config_pending \
            else frozenset()
        pods, runtime_only = self._pods(observed, dynamic)
        if dynamic:
            self._apply_at_runtime(admin, dynamic, runtime_only, observed, outcome)
        due = [p for p in pods if p.reasons]
        if not due:
            if was_rolling:
                waiting = roll_unsettled(pods, kafka_view, self._quorum_view(admin if kafka_view else None))
                if waiting:
                    outcome.rolling = (True, waiting.reason, f"the last restarted pod is not back: {waiting.message}")
                    return 0
                self._finish_roll(admin, outcome)
            return drain_budget(pods, kafka_view)
        quorum_view = self._quorum_view(admin if kafka_view else None)
        step = next_step(pods, kafka_view, quorum_view)
        if isinstance(step, Restart):
            self._restart(step, pods, observed, outcome)
        elif isinstance(step, Wait):
            outcome.rolling = (True, step.reason, f"{len(due)} pod(s) due ({', '.join(p.name for p in due)}): "
                                                  f"{step.message}")
        return 0

    def _observe(self, component: cluster.Component) -> _ComponentState:
        sts = self.kube.get("apps/v1", "StatefulSet", self.c.namespace, component.statefulset) or {}
        pods = self.kube.list("v1", "Pod", self.c.namespace,
                              f"{cluster.USE_CASE_LABEL}={self.c.name},app.kubernetes.io/component={component.name}")
        config_map = self.kube.get("v1", "ConfigMap", self.c.namespace, cluster.config_map_name(component)) or {}
        return _ComponentState(component, (sts.get("status") or {}).get("updateRevision"),
                               {p["metadata"]["name"]: p for p in pods}, config_map.get("data") or {})

    def _ask_kafka(self, brokers: _ComponentState):
        """(admin, KafkaView), or (admin or None, None) when the brokers cannot be asked."""
        admin = None
        if not any(pod_ready(pod) for pod in brokers.pods.values()):
            return admin, None  # none serves: not worth a metadata timeout
        try:
            admin = self.kafka()
            kafka_view = admin.kafka_view()
        except Exception as error:  # unreachable, not authenticated yet, timed out: nothing restarts
            log.info("use case %s/%s: brokers not asked: %s", self.c.namespace, self.c.name, error)
            return admin, None
        if self.c.mode == "kraft":  # a KRaft broker names any broker as "controller": no order to keep
            kafka_view = replace(kafka_view, controller=None)
        return admin, kafka_view

    def _finish_roll(self, admin, outcome: Outcome) -> None:
        """Leadership back to the preferred replicas; an upgrade's protocol level raised."""
        admin.elect_preferred_leaders()
        outcome.event("RollFinished", "every pod runs the declared configuration; preferred leaders elected")
        if self.c.mode == "kraft":
            self._finalize_metadata_version(admin, outcome)
        elif self.c.inter_broker_protocol != protocol_of(self.c.version):
            outcome.protocol = protocol_of(self.c.version)
            outcome.event("InterBrokerProtocolRaised",
                          f"every broker runs Kafka {self.c.version}: inter.broker.protocol.version goes from "
                          f"{self.c.inter_broker_protocol} to {outcome.protocol} (one more roll)")

    def _runtime_settable(self, admin) -> frozenset[str]:
        """What the brokers can change at runtime (none known: every change restarts)."""
        try:
            return admin.runtime_settable(0)
        except Exception as error:
            log.info("use case %s/%s: runtime settings not read: %s", self.c.namespace, self.c.name, error)
            return frozenset()

    def _pods(self, observed: dict[str, _ComponentState], dynamic: frozenset[str]) -> tuple[list[PodView], dict]:
        """Each pod with why it is due; and per component the ordinals whose new configuration
        Kafka can take at runtime (their pointers move without a restart)."""
        views, runtime_only = [], {}
        for state in observed.values():
            for ordinal in range(state.component.replicas):
                reasons, runtime = state.reasons(ordinal, dynamic)
                if runtime:
                    runtime_only.setdefault(state.component.name, []).append(ordinal)
                pod = state.pods.get(f"{state.component.statefulset}-{ordinal}")
                views.append(PodView(f"{state.component.statefulset}-{ordinal}", state.component.name,
                                     _node_id(state.component, ordinal), exists=pod is not None and not
                                     pod["metadata"].get("deletionTimestamp"), ready=pod_ready(pod), reasons=reasons))
        return views, runtime_only

    def _apply_at_runtime(self, admin, dynamic: frozenset[str], runtime_only: dict[str, list[int]], observed,
                          outcome: Outcome) -> None:
        """The spec's runtime settings as cluster-wide defaults (they win over any broker's file, so they
        follow every change, a mixed one too), then pods whose change was only those move on."""
        plan = configs.dynamic_plan(self.c.broker_config, admin.cluster_defaults(), dynamic)
        if plan:
            try:
                admin.alter_cluster_defaults(plan)
            except Exception as error:  # Kafka's words; the pods stay on their version until it is fixed
                outcome.event("ConfigNotApplied", f"Kafka refused the runtime settings: {error}", warning=True)
                return
            changed = ", ".join([*(f"{k}={v}" for k, v in plan.set.items()), *(f"{k} (default)" for k in plan.delete)])
            outcome.event("ConfigApplied", f"applied at runtime on every broker: {changed}")
        for name, ordinals in runtime_only.items():
            self._advance(observed[name], frozenset(ordinals))

    def _advance(self, state: _ComponentState, ordinals: frozenset[int]) -> None:
        """Move pods' configuration pointers to the newest version (the ConfigMap applied whole)."""
        files = cluster.component_files(self.c)[0 if state.component is self.brokers else 1]
        data = configs.versioned_data(files, state.component.replicas, state.data, advance=ordinals)
        self.kube.apply({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {
            "name": cluster.config_map_name(state.component), "namespace": self.c.namespace,
            "labels": cluster.labels(self.c, state.component.name), "ownerReferences": [self.owner.reference()]},
            "data": data})
        state.data = data  # a later step of this pass builds on these pointers

    def _restart(self, step: Restart, pods: list[PodView], observed, outcome: Outcome) -> None:
        state = next(s for s in observed.values() if step.pod.startswith(f"{s.component.statefulset}-"))
        ordinal = int(step.pod.rsplit("-", 1)[1])
        if state.pointer(ordinal) != state.latest:
            self._advance(state, frozenset({ordinal}))
        self.kube.delete("v1", "Pod", self.c.namespace, step.pod)
        due = [p.name for p in pods if p.reasons]
        why = "; ".join(step.reasons)
        outcome.event("RollingRestart", f"restarting {step.pod}: {why}")
        outcome.rolling = (True, "Restarting", f"restarting {step.pod} ({why}); {len(due)} pod(s) due: {', '.join(due)}")

    def _finalize_metadata_version(self, admin, outcome: Outcome) -> None:
        """After a roll every node runs the declared version: its features can be finalized (an
        upgrade's metadata.version goes up only now, never while older brokers run)."""
        try:
            raised = admin.finalize_metadata_version()
        except Exception as error:
            outcome.event("MetadataVersionNotRaised", f"metadata.version not raised: {error}", warning=True)
            return
        if raised:
            outcome.event("MetadataVersionRaised", f"metadata.version raised from level {raised[0]} to {raised[1]}: "
                                                   f"every node runs Kafka {self.c.version}")

    def _quorum_view(self, admin) -> QuorumView | None:
        try:
            if self.c.mode == "kraft":
                return admin.kraft_quorum() if admin is not None else None
            return zookeeper_quorum({s.id: s.host for s in self.c.zookeeper_servers}, self.c.ports.zookeeper)
        except Exception as error:
            log.info("use case %s/%s: quorum not described: %s", self.c.namespace, self.c.name, error)
            return None

    def _manual_roll_of_every_pod(self, outcome: Outcome) -> None:
        """The use case's annotation becomes every pod's, then goes: each pod then rolls once."""
        selector = f"{cluster.USE_CASE_LABEL}={self.c.name}"
        for pod in self.kube.list("v1", "Pod", self.c.namespace, selector):
            self.kube.annotate("v1", "Pod", self.c.namespace, pod["metadata"]["name"], {MANUAL_ROLL_ANNOTATION: "true"})
        self.kube.annotate(f"{GROUP}/v1alpha1", "KafkaUseCase", self.c.namespace, self.c.name,
                           {MANUAL_ROLL_ANNOTATION: None})
        outcome.event("ManualRollingUpdate", "every pod of the cluster is to be restarted, one at a time")


@dataclass
class _ComponentState:
    component: cluster.Component
    update_revision: str | None
    pods: dict[str, dict]
    data: dict[str, str]  # the ConfigMap's

    @property
    def latest(self) -> str | None:
        return self.data.get("latest")

    def pointer(self, ordinal: int) -> str | None:
        return configs.pointers(self.data).get(ordinal)

    @property
    def config_pending(self) -> bool:
        return any(self.pointer(i) != self.latest for i in range(self.component.replicas))

    def reasons(self, ordinal: int, dynamic: frozenset[str]) -> tuple[tuple[str, ...], bool]:
        """Why this pod must restart, and whether its new configuration is all Kafka can take at runtime."""
        pod = self.pods.get(f"{self.component.statefulset}-{ordinal}")
        if pod is None:
            return (), False
        reasons = []
        revision = (pod["metadata"].get("labels") or {}).get(REVISION_LABEL)
        if self.update_revision and revision and revision != self.update_revision:
            reasons.append("pod template changed")
        if (pod["metadata"].get("annotations") or {}).get(MANUAL_ROLL_ANNOTATION) == "true":
            reasons.append("manual rolling update requested")
        runtime = False
        pointer = self.pointer(ordinal)
        if self.latest and pointer != self.latest:
            properties_file = "server.properties" if self.component.name == "broker" else None
            change = configs.change_between(configs.files_of(self.data, pointer) if pointer else None,
                                            configs.files_of(self.data, self.latest) or {}, properties_file, dynamic)
            reasons += change.restart
            runtime = not change.restart
        return tuple(reasons), runtime and not reasons


def _node_id(component: cluster.Component, ordinal: int) -> int:
    if component.name == "zookeeper":
        return ordinal + 1
    return ordinal + (CONTROLLER_ID_OFFSET if component.name == "controller" else 0)


def pod_ready(pod: dict | None) -> bool:
    if pod is None or pod["metadata"].get("deletionTimestamp"):
        return False
    return any(c.get("type") == "Ready" and c.get("status") == "True"
               for c in (pod.get("status") or {}).get("conditions") or [])


def admin_config(c: ClusterModel, secret: dict) -> dict:
    """confluent-kafka settings of the use case's admin, from its generated Secret."""
    data = {k: base64.b64decode(v).decode() for k, v in (secret.get("data") or {}).items()}
    return {"bootstrap.servers": c.bootstrap_servers, "security.protocol": "SASL_PLAINTEXT",
            "sasl.mechanism": "SCRAM-SHA-512", "sasl.username": data["username"], "sasl.password": data["password"]}
