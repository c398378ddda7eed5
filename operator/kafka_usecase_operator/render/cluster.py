"""KafkaUseCase -> the Kubernetes objects of its cluster, as plain dicts (applied elsewhere).

Brokers: StatefulSet, headless and bootstrap Services, PodDisruptionBudget, ConfigMap (config
template, start script, log4j). The metadata quorum: a ZooKeeper ensemble or KRaft controllers,
each with the same set of objects, on dedicated nodes: one pod per node and never on a node of this
cluster's brokers, and brokers one per node (required anti-affinity). NetworkPolicies let in only
what must get in.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from kafka_usecase_operator.api.usecase import Placement, Resources, Storage
from kafka_usecase_operator.render import config
from kafka_usecase_operator.render.model import CONTROLLER_ID_OFFSET, ClusterModel, heap_options
from kafka_usecase_operator.usecase import configs

GROUP = "kafka.usecase.dev"
USE_CASE_LABEL = f"{GROUP}/use-case"
MANAGED_BY = "kafka-usecase-operator"
KAFKA_UID = 1000  # the kafka user of the project's image (images/kafka/Dockerfile)
# Long enough for a controlled shutdown (leadership moved off, logs flushed) of a busy broker.
GRACE_SECONDS = {"broker": 120, "controller": 60, "zookeeper": 30}


@dataclass(frozen=True)
class Owner:
    """The KafkaUseCase every child points back to, for garbage collection."""

    name: str
    uid: str

    def reference(self) -> dict[str, Any]:
        return {"apiVersion": f"{GROUP}/v1alpha1", "kind": "KafkaUseCase", "name": self.name, "uid": self.uid,
                "controller": True, "blockOwnerDeletion": True}


@dataclass(frozen=True)
class Live:
    """What the running cluster already has that the next version of its children must keep: the
    ConfigMaps' data (configuration versions pods still run, their pointers) by ConfigMap name, and
    how many brokers a voluntary disruption (a node drain) may take now (the roller decides)."""

    config_data: dict[str, dict[str, str]] = field(default_factory=dict)
    broker_disruptions: int = 0


@dataclass(frozen=True)
class OperatorIdentity:
    """Where the operator runs, so NetworkPolicies can let it reach brokers and the quorum."""

    namespace: str
    pod_labels: tuple[tuple[str, str], ...] = (("app.kubernetes.io/name", "kafka-usecase-operator"),)


@dataclass(frozen=True)
class Component:
    """One StatefulSet-backed part of the cluster: brokers, ZooKeeper, or KRaft controllers."""

    name: str  # app.kubernetes.io/component
    statefulset: str
    headless: str
    replicas: int
    image: str
    ports: dict[str, int]
    config_file: str  # the ConfigMap key holding this component's config
    storage: Storage
    resources: Resources | None
    placement: Placement
    heap: str | None = None
    node_id_offset: int = 0


def components(c: ClusterModel) -> tuple[Component, Component]:
    """(brokers, quorum)."""
    kafka = c.spec.kafka
    brokers = Component(
        "broker", c.broker_set, c.broker_headless, c.brokers, c.images.kafka(c.version, kafka and kafka.image),
        {"client": c.ports.client, "internal": c.ports.internal}, "server.properties",
        kafka.storage if kafka else Storage(), kafka.resources if kafka else None,
        kafka.placement if kafka else Placement(), kafka.heap if kafka else None)
    if c.mode == "zookeeper":
        zk = c.spec.zookeeper
        quorum = Component(
            "zookeeper", c.quorum_set, c.quorum_headless, c.quorum_size, c.images.zookeeper(zk and zk.image),
            {"client": c.ports.zookeeper, "peer": 2888, "election": 3888}, "zoo.cfg",
            zk.storage if zk else Storage(size="5Gi"), zk.resources if zk else None, zk.placement if zk else Placement(),
            zk.heap if zk else None)
    else:
        ctl = c.spec.controllers
        quorum = Component(
            "controller", c.quorum_set, c.quorum_headless, c.quorum_size, c.images.kafka(c.version, kafka and kafka.image),
            {"controller": c.ports.controller}, "controller.properties",
            ctl.storage if ctl else Storage(size="5Gi"), ctl.resources if ctl else None,
            ctl.placement if ctl else Placement(), ctl.heap if ctl else None, node_id_offset=CONTROLLER_ID_OFFSET)
    return brokers, quorum


def labels(c: ClusterModel, component: str | None = None) -> dict[str, str]:
    result = {"app.kubernetes.io/name": "kafka", "app.kubernetes.io/instance": c.name,
              "app.kubernetes.io/managed-by": MANAGED_BY, "app.kubernetes.io/part-of": MANAGED_BY,
              USE_CASE_LABEL: c.name}
    if component:
        result["app.kubernetes.io/component"] = component
    return result


def selector(c: ClusterModel, component: str) -> dict[str, str]:
    return {USE_CASE_LABEL: c.name, "app.kubernetes.io/component": component}


def component_files(c: ClusterModel) -> tuple[dict[str, str], dict[str, str]]:
    """(brokers', quorum's) files: what one configuration version of each is made of."""
    brokers, quorum = components(c)
    log4j1 = c.version.startswith("3.")  # Kafka 4 logs through log4j2 only
    logging = {"log4j.properties": config.log4j_properties()} if log4j1 else \
        {"log4j2.properties": config.log4j2_properties()}
    broker_files = {"server.properties": config.broker_properties(c), "start.sh": _start_script(c, brokers, log4j1),
                    **logging}
    if c.mode == "zookeeper":
        quorum_files = {"zoo.cfg": config.zoo_cfg(c), "start.sh": config.zookeeper_start_script(c),
                        "log4j.properties": config.log4j_properties()}
    else:
        quorum_files = {"controller.properties": config.controller_properties(c),
                        "start.sh": _start_script(c, quorum, log4j1), **logging}
    return broker_files, quorum_files


def config_map_name(component: Component) -> str:
    return f"{component.statefulset}-config"


def config_maps(c: ClusterModel, live: Live = Live()) -> list[dict]:
    """The brokers' and the quorum's ConfigMaps: the desired files as the newest version, beside the
    versions pods still run (usecase/configs.py)."""
    result = []
    for component, files in zip(components(c), component_files(c)):
        data = configs.versioned_data(files, component.replicas, live.config_data.get(config_map_name(component)))
        result.append({"apiVersion": "v1", "kind": "ConfigMap",
                       "metadata": _meta(c, config_map_name(component), component.name), "data": data})
    return result


def build(c: ClusterModel, owner: Owner, operator: OperatorIdentity, cluster_id: str = "",
          live: Live = Live()) -> list[dict]:
    """Every child object of the use case, in apply order (config before the pods that read it)."""
    brokers, quorum = components(c)
    objects = config_maps(c, live)
    for component in (quorum, brokers):
        budget = live.broker_disruptions if component is brokers else 1
        objects += [_headless_service(c, component), _statefulset(c, component, cluster_id),
                    _pod_disruption_budget(c, component, budget)]
    objects.append(_bootstrap_service(c))
    if c.mode == "zookeeper":
        objects.append(_zookeeper_client_service(c))
    objects += network_policies(c, operator)
    for obj in objects:
        obj["metadata"].setdefault("namespace", c.namespace)
        obj["metadata"]["ownerReferences"] = [owner.reference()]
    return objects


def credentials_secret(c: ClusterModel, name: str, owner: Owner | None, data: dict[str, str]) -> dict:
    """A generated credentials Secret; the operator creates it once and never overwrites it.
    Without an owner it outlives the use case (kept beside kept volumes)."""
    metadata = {**_meta(c, name), "namespace": c.namespace}
    if owner:
        metadata["ownerReferences"] = [owner.reference()]
    return {"apiVersion": "v1", "kind": "Secret", "type": "Opaque", "metadata": metadata, "stringData": data}


def network_policies(c: ClusterModel, operator: OperatorIdentity) -> list[dict]:
    """Brokers: clients from the namespaces spec.access admits, the cluster's own brokers, the
    operator. The quorum: this cluster's brokers, its own peers, the operator."""
    from_operator = {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": operator.namespace}},
                     "podSelector": {"matchLabels": dict(operator.pod_labels)}}
    brokers = {"podSelector": {"matchLabels": selector(c, "broker")}}
    quorum_component = "zookeeper" if c.mode == "zookeeper" else "controller"
    quorum = {"podSelector": {"matchLabels": selector(c, quorum_component)}}
    return [
        _network_policy(c, "broker", [
            {"from": _admitted_clients(c), "ports": [{"port": c.ports.client, "protocol": "TCP"}]},
            {"from": [brokers, from_operator]},
        ]),
        _network_policy(c, quorum_component, [{"from": [brokers, quorum, from_operator]}]),
    ]


# --- the objects ---------------------------------------------------------------------------------

def _meta(c: ClusterModel, name: str, component: str | None = None) -> dict:
    return {"name": name, "labels": labels(c, component)}


def _start_script(c: ClusterModel, component: Component, log4j1: bool) -> str:
    return config.kafka_start_script(c, component.name, component.node_id_offset, component.headless,
                                     component.config_file, log4j1)


def _headless_service(c: ClusterModel, component: Component) -> dict:
    return {"apiVersion": "v1", "kind": "Service", "metadata": _meta(c, component.headless, component.name),
            "spec": {"clusterIP": "None", "publishNotReadyAddresses": True,  # peers find each other while starting
                     "selector": selector(c, component.name),
                     "ports": [{"name": name, "port": port, "targetPort": port} for name, port in component.ports.items()]}}


def _bootstrap_service(c: ClusterModel) -> dict:
    return {"apiVersion": "v1", "kind": "Service", "metadata": _meta(c, c.bootstrap_service, "broker"),
            "spec": {"type": "ClusterIP", "selector": selector(c, "broker"),
                     "ports": [{"name": "client", "port": c.ports.client, "targetPort": c.ports.client}]}}


def _zookeeper_client_service(c: ClusterModel) -> dict:
    return {"apiVersion": "v1", "kind": "Service", "metadata": _meta(c, c.zookeeper_client_service, "zookeeper"),
            "spec": {"type": "ClusterIP", "selector": selector(c, "zookeeper"),
                     "ports": [{"name": "client", "port": c.ports.zookeeper, "targetPort": c.ports.zookeeper}]}}


def _pod_disruption_budget(c: ClusterModel, component: Component, max_unavailable: int) -> dict:
    """A drain evicts only what the budget allows. The quorum's: one member at a time. The brokers':
    the roller's judgement (Live.broker_disruptions), since a PDB alone knows nothing of ISR: 1
    only while no partition would fall below min ISR whichever broker goes, and no roll runs."""
    return {"apiVersion": "policy/v1", "kind": "PodDisruptionBudget",
            "metadata": _meta(c, component.statefulset, component.name),
            "spec": {"maxUnavailable": max_unavailable, "selector": {"matchLabels": selector(c, component.name)}}}


def _statefulset(c: ClusterModel, component: Component, cluster_id: str) -> dict:
    pod_labels = labels(c, component.name)
    return {
        "apiVersion": "apps/v1", "kind": "StatefulSet", "metadata": _meta(c, component.statefulset, component.name),
        "spec": {
            "serviceName": component.headless,
            "replicas": component.replicas,
            "podManagementPolicy": "Parallel",  # a quorum needs its members up together
            # The operator's roller restarts the pods, one at a time and only when Kafka can spare
            # each (usecase/roller.py): the StatefulSet controller never does.
            "updateStrategy": {"type": "OnDelete"},
            # The claims go with the use case only when asked (storage.deleteClaim); a scale-down keeps them.
            "persistentVolumeClaimRetentionPolicy": {
                "whenDeleted": "Delete" if component.storage.delete_claim else "Retain", "whenScaled": "Retain"},
            "selector": {"matchLabels": selector(c, component.name)},
            "template": {
                "metadata": {"labels": pod_labels},
                "spec": {
                    "securityContext": {"runAsNonRoot": True, "runAsUser": KAFKA_UID, "runAsGroup": KAFKA_UID,
                                        "fsGroup": KAFKA_UID, "seccompProfile": {"type": "RuntimeDefault"}},
                    "terminationGracePeriodSeconds": GRACE_SECONDS[component.name],
                    "imagePullSecrets": [{"name": name} for name in c.images.pull_secrets],
                    "nodeSelector": dict(component.placement.node_selector),
                    "tolerations": [t.model_dump(by_alias=True, exclude_none=True) for t in component.placement.tolerations],
                    "affinity": _affinity(c, component),
                    "containers": [_container(c, component, cluster_id)],
                    "volumes": [
                        {"name": "config", "configMap": {"name": config_map_name(component)}},
                        # The filled-in configuration holds passwords: memory only, never the node's disk.
                        {"name": "run", "emptyDir": {"medium": "Memory", "sizeLimit": "16Mi"}},
                        {"name": "tmp", "emptyDir": {"sizeLimit": "256Mi"}},
                    ],
                },
            },
            "volumeClaimTemplates": [_claim(component.storage)],
        },
    }


def _container(c: ClusterModel, component: Component, cluster_id: str) -> dict:
    zookeeper = component.name == "zookeeper"
    env = [{"name": "POD_NAMESPACE", "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}},
           {"name": "KAFKA_HEAP_OPTS", "value": heap_options(component.heap, component.resources,
                                                              default_mi=512 if component.name != "broker" else 1024)},
           {"name": "KAFKA_JVM_OPTS", "value": "-XX:+ExitOnOutOfMemoryError -XX:-UsePerfData"}]
    if not zookeeper:
        env.append(_secret_env("ADMIN_PASSWORD", c.admin_secret, "password"))
        if c.mode == "kraft":
            env += [_secret_env("CONTROLLER_PASSWORD", c.controller_secret, "password"),
                    {"name": "CLUSTER_ID", "value": cluster_id}]
        if component.name == "controller":  # read only when the volume is formatted: a new cluster's voters
            env.append({"name": "INITIAL_CONTROLLERS", "value": c.initial_controllers(cluster_id)})
    container = {
        "name": component.name,
        "image": component.image,
        "imagePullPolicy": c.images.pull_policy,
        "command": ["/bin/bash", f"/config/{configs.LAUNCHER}"],
        "env": env,
        "ports": [{"name": name, "containerPort": port} for name, port in component.ports.items()],
        **_probes(c, component),
        "securityContext": {"allowPrivilegeEscalation": False, "readOnlyRootFilesystem": True,
                            "capabilities": {"drop": ["ALL"]}},
        "volumeMounts": [{"name": "data", "mountPath": c.zookeeper_mount if zookeeper else c.data_mount},
                         {"name": "config", "mountPath": "/config"},
                         {"name": "run", "mountPath": "/run/kafka"}, {"name": "tmp", "mountPath": "/tmp"}],
    }
    if component.resources:
        container["resources"] = component.resources.model_dump(by_alias=True, exclude_defaults=True)
    return container


# What "ready" means. A broker: its lifecycle reached STARTED (KRaft: registered, caught up with
# the metadata, unfenced, logs recovered; ZooKeeper mode: registered, logs recovered), which the
# log4j templates copy into a marker file; the client port alone opens before log recovery is
# done. ZooKeeper: it answers `ruok`. A KRaft controller: its listener accepts.
BROKER_STARTED = {"kraft": "Transition from STARTING to STARTED", "zookeeper": "] started"}
_RUOK = 'exec 3<>/dev/tcp/127.0.0.1/{port} && printf ruok >&3 && [ "$(timeout 3 head -c 4 <&3)" = imok ]'


def _probes(c: ClusterModel, component: Component) -> dict:
    port = next(iter(component.ports.values()))
    if component.name == "broker":
        ready = {"exec": {"command": ["grep", "-qF", BROKER_STARTED[c.mode], config.STATE_FILE]}}
    elif component.name == "zookeeper":
        ready = {"exec": {"command": ["bash", "-c", _RUOK.format(port=port)]}}
    else:
        ready = {"tcpSocket": {"port": port}}
    # The startup probe allows an hour of log recovery before liveness may restart the pod.
    return {"startupProbe": {**ready, "periodSeconds": 5, "failureThreshold": 720, "timeoutSeconds": 5},
            "readinessProbe": {**ready, "periodSeconds": 10, "timeoutSeconds": 5},
            "livenessProbe": {"tcpSocket": {"port": port}, "periodSeconds": 20, "failureThreshold": 3}}


def _secret_env(name: str, secret: str, key: str) -> dict:
    return {"name": name, "valueFrom": {"secretKeyRef": {"name": secret, "key": key}}}


def _claim(storage: Storage) -> dict:
    spec = {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": storage.size}}}
    if storage.storage_class:
        spec["storageClassName"] = storage.storage_class
    return {"metadata": {"name": "data"}, "spec": spec}


def _affinity(c: ClusterModel, component: Component) -> dict:
    """The user's affinity, plus what isolation needs: one pod per node for brokers and for the
    quorum (a lost node costs one replica, never two), and the quorum never beside this cluster's
    brokers. A pod without a node of its own stays Pending, and the status names it."""
    host = "kubernetes.io/hostname"
    affinity = json.loads(json.dumps(component.placement.affinity or {}))
    anti = affinity.setdefault("podAntiAffinity", {})
    required = anti.setdefault("requiredDuringSchedulingIgnoredDuringExecution", [])
    quorum = "zookeeper" if c.mode == "zookeeper" else "controller"
    for other in ("broker", quorum):
        required.append({"labelSelector": {"matchLabels": selector(c, other)}, "topologyKey": host})
    return affinity


def _admitted_clients(c: ClusterModel) -> list[dict]:
    access = c.spec.access.namespaces
    if access.from_ == "All":
        return [{"namespaceSelector": {}}]
    if access.from_ == "Selector":
        return [{"namespaceSelector": access.selector.model_dump(by_alias=True, exclude_defaults=True)}]
    return [{"podSelector": {}}]  # Same: any pod of this namespace


def _network_policy(c: ClusterModel, component: str, ingress: list[dict]) -> dict:
    return {"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
            "metadata": _meta(c, f"{c.name}-{component}", component),
            "spec": {"podSelector": {"matchLabels": selector(c, component)}, "policyTypes": ["Ingress"],
                     "ingress": ingress}}
