"""Use cases running for real: the operator installed with Helm as a pod, and one use case per
metadata mode (Kafka 4.3.1 with its own KRaft controller, Kafka 3.9.2 with its own ZooKeeper)
as pods on real nodes, from the project's own images. Clients in another namespace produce and
consume through the generated Secrets; a user without ACLs is refused; no password is on any
process's command line; a broker and its quorum killed come back on their volumes, data intact.

The shape follows DEVSTACK_BROKERS (1 in `make test`: data survives on the volume; 3 in
`make test-slow`). Everything is created once per module and shared by the tests, in order.
"""

from __future__ import annotations

import base64
import json
import os
import uuid
from pathlib import Path

import pytest
import yaml

from chart import CHART, helm
from devstack import images, nodes
from waiting import eventually

pytestmark = [pytest.mark.kube, pytest.mark.e2e]
MODES = ("kraft", "zookeeper")
RELEASE = "kuo-real"
MESSAGES = 200
BROKERS = int(os.environ.get("DEVSTACK_BROKERS") or 1)
READY_SECONDS = 420  # two use cases' JVMs starting together on 2 shared cores

CLIENT = r"""
import json, sys
from confluent_kafka import Consumer, KafkaError, Producer, TopicPartition
secret = lambda key: open(f"/etc/kafka/{key}").read()
conf = {"bootstrap.servers": secret("bootstrap.servers"), "security.protocol": secret("security.protocol"),
        "sasl.mechanism": secret("sasl.mechanism"), "sasl.username": secret("username"),
        "sasl.password": secret("password")}
action, topic, count = sys.argv[1], sys.argv[2], int(sys.argv[3])
if action == "produce":
    acked, errors = [], []
    producer = Producer({**conf, "acks": "all", "message.timeout.ms": 60000})
    def delivered(error, message):
        (errors.append(error.name()) if error else acked.append(message.value().decode()))
    for i in range(count):
        producer.produce(topic, f"m-{i}".encode(), on_delivery=delivered)
        producer.poll(0)
    producer.flush(90)
    print(json.dumps({"acked": len(acked), "errors": sorted(set(errors))}))
else:
    consumer = Consumer({**conf, "group.id": "e2e-reader", "enable.auto.commit": False})
    partitions = consumer.list_topics(topic, timeout=30).topics[topic].partitions
    consumer.assign([TopicPartition(topic, p, -2) for p in partitions])  # -2: from the beginning
    seen, idle = set(), 0
    while len(seen) < count and idle < 20:
        message = consumer.poll(1.0)
        if message is None or message.error():
            idle += 1
            continue
        seen.add(message.value().decode())
    print(json.dumps({"read": len(seen)}))
"""


def use_case(mode: str, namespace: str) -> dict:
    def placement(pool):
        return {"nodeSelector": nodes.placement(pool)["nodeSelector"], "tolerations": nodes.placement(pool)["tolerations"]}

    replication = min(BROKERS, 3)
    quorum = {"replicas": 1 if BROKERS == 1 else 3, "storage": {"size": "1Gi", "storageClass": nodes.STORAGE_CLASS},
              "resources": {"requests": {"memory": "384Mi", "cpu": "50m"}, "limits": {"memory": "384Mi"}},
              "placement": placement("metadata")}
    return {"apiVersion": "kafka.usecase.dev/v1alpha1", "kind": "KafkaUseCase",
            "metadata": {"name": "orders", "namespace": namespace},
            "spec": {"profile": "realtime", "metadataQuorum": {"mode": mode},
                     "access": {"namespaces": {"from": "All"}},
                     "kafka": {"replicas": BROKERS,
                               "storage": {"size": "1Gi", "storageClass": nodes.STORAGE_CLASS},
                               "resources": {"requests": {"memory": "768Mi", "cpu": "100m"},
                                             "limits": {"memory": "768Mi"}},
                               "config": {"offsets.topic.replication.factor": str(replication),
                                          "transaction.state.log.replication.factor": str(replication),
                                          "transaction.state.log.min.isr": str(min(replication, 2)),
                                          "default.replication.factor": str(replication),
                                          "min.insync.replicas": str(min(replication, 2))},
                               "placement": placement("broker")},
                     ("controllers" if mode == "kraft" else "zookeeper"): quorum}}


class RealFlow:
    def __init__(self, kube_cluster, tmp: Path):
        self.kube = kube_cluster
        self.tmp = tmp
        suffix = uuid.uuid4().hex[:5]
        self.operator_ns = f"kuo-real-{suffix}"
        self.cluster_ns = {mode: f"uc-{mode}-{suffix}" for mode in MODES}
        self.apps_ns = {mode: f"apps-{mode}-{suffix}" for mode in MODES}

    def kubectl(self, *args: str, input: str | None = None, timeout: float = 120) -> str:
        return self.kube.kubectl(*args, input=input, timeout=timeout)

    def apply(self, *docs: dict) -> None:
        self.kubectl("apply", "-f", "-", input=json.dumps({"apiVersion": "v1", "kind": "List", "items": list(docs)}))

    def get(self, kind: str, namespace: str, name: str) -> dict | None:
        out = self.kubectl("get", kind, name, "-n", namespace, "-o", "json", "--ignore-not-found")
        return json.loads(out) if out.strip() else None

    def ready(self, kind: str, namespace: str, name: str) -> dict | None:
        obj = self.get(kind, namespace, name) or {}
        conditions = (obj.get("status") or {}).get("conditions", [])
        return obj if any(c["type"] == "Ready" and c["status"] == "True" for c in conditions) else None

    def secret(self, namespace: str, name: str) -> dict[str, str]:
        data = json.loads(self.kubectl("get", "secret", name, "-n", namespace, "-o", "json"))["data"]
        return {k: base64.b64decode(v).decode() for k, v in data.items()}

    def run_client(self, mode: str, user: str, action: str, topic: str, count: int) -> dict:
        """A client pod on a real node, with the user's generated Secret mounted; its one line of JSON."""
        namespace = self.apps_ns[mode]
        name = f"{action}-{user}-{uuid.uuid4().hex[:5]}"
        placement = nodes.placement(None)
        pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": namespace},
               "spec": {"restartPolicy": "Never", **placement,
                        "securityContext": {"runAsNonRoot": True, "runAsUser": 10001},
                        "containers": [{"name": "client", "image": images.OPERATOR.ref, "imagePullPolicy": "Never",
                                        "command": ["python3", "-c", CLIENT, action, topic, str(count)],
                                        "volumeMounts": [{"name": "kafka", "mountPath": "/etc/kafka"}]}],
                        "volumes": [{"name": "kafka", "secret": {"secretName": user}}]}}
        self.apply(pod)

        def finished():
            """the client pod finished"""
            phase = ((self.get("pod", namespace, name) or {}).get("status") or {}).get("phase")
            return phase if phase in ("Succeeded", "Failed") else None

        phase = eventually(finished, timeout=180, interval=1)
        logs = self.kubectl("logs", name, "-n", namespace)
        assert phase == "Succeeded", logs
        return json.loads(logs.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def flow(kube_cluster, real_nodes, tmp_path_factory):
    flow = RealFlow(kube_cluster, tmp_path_factory.mktemp("real"))
    values = flow.tmp / "values.yaml"
    general = nodes.placement(None)
    values.write_text(yaml.safe_dump({
        "image": {"repository": images.OPERATOR.ref.rsplit(":", 1)[0], "tag": images.OPERATOR.tag, "pullPolicy": "Never"},
        "kafkaImages": {"registry": images.REGISTRY, "pullPolicy": "Never"},
        "nodeSelector": general["nodeSelector"], "tolerations": general["tolerations"],
        "operator": {"retrySeconds": 5}}))
    helm(kube_cluster, "install", RELEASE, str(CHART), "-n", flow.operator_ns, "--create-namespace",
         "-f", str(values), "--wait", "--timeout", "180s")
    for namespace in [*flow.cluster_ns.values(), *flow.apps_ns.values()]:
        flow.kubectl("create", "namespace", namespace)
    flow.apply(*(use_case(mode, flow.cluster_ns[mode]) for mode in MODES))
    yield flow
    # While the operator runs: it releases the finalizers of the topics and users it manages.
    flow.kubectl("delete", "namespace", *flow.apps_ns.values(), *flow.cluster_ns.values(), "--wait=true", timeout=300)
    helm(kube_cluster, "uninstall", RELEASE, "-n", flow.operator_ns, "--wait", "--timeout", "120s")
    flow.kubectl("delete", "namespace", flow.operator_ns, "--wait=false")


def test_the_operator_runs_as_a_pod_on_a_real_node(flow):
    pods = json.loads(flow.kubectl("get", "pods", "-n", flow.operator_ns, "-o", "json"))["items"]
    assert [p["spec"]["nodeName"] for p in pods] == ["real-general-0"]
    assert all(p["status"]["phase"] == "Running" for p in pods)


@pytest.mark.parametrize("mode", MODES)
def test_a_use_case_becomes_ready_only_once_its_pods_really_serve(flow, mode):
    namespace = flow.cluster_ns[mode]
    ready = eventually(lambda: flow.ready("kafkausecase", namespace, "orders"), timeout=READY_SECONDS, interval=3)
    pods = json.loads(flow.kubectl("get", "pods", "-n", namespace, "-o", "json"))["items"]
    by_component = {}
    for pod in pods:
        by_component.setdefault(pod["metadata"]["labels"]["app.kubernetes.io/component"], []).append(pod)
    quorum = "controller" if mode == "kraft" else "zookeeper"
    assert len(by_component["broker"]) == BROKERS
    broker_nodes = {p["spec"]["nodeName"] for p in by_component["broker"]}
    quorum_nodes = {p["spec"]["nodeName"] for p in by_component[quorum]}
    assert len(broker_nodes) == BROKERS and not broker_nodes & quorum_nodes  # dedicated nodes, one pod each
    assert all(n.startswith("real-") for n in broker_nodes | quorum_nodes)
    # Ready came from the brokers' own lifecycle: the log says they started, not just that a port opened
    logs = flow.kubectl("logs", by_component["broker"][0]["metadata"]["name"], "-n", namespace)
    assert ("Transition from STARTING to STARTED" if mode == "kraft" else "] started") in logs
    assert ready["status"]["kafkaVersion"] == ("4.3.1" if mode == "kraft" else "3.9.2")


@pytest.mark.parametrize("mode", MODES)
def test_clients_in_an_admitted_namespace_produce_and_consume_and_others_are_refused(flow, mode):
    apps, use_case_ref = flow.apps_ns[mode], {"name": "orders", "namespace": flow.cluster_ns[mode]}
    eventually(lambda: flow.ready("kafkausecase", use_case_ref["namespace"], "orders"), timeout=READY_SECONDS, interval=3)
    flow.apply(
        {"apiVersion": "kafka.usecase.dev/v1alpha1", "kind": "KafkaTopic", "metadata": {"name": "orders", "namespace": apps},
         "spec": {"useCase": use_case_ref, "partitions": 3, "replicas": min(BROKERS, 3)}},
        {"apiVersion": "kafka.usecase.dev/v1alpha1", "kind": "KafkaUser", "metadata": {"name": "shop", "namespace": apps},
         "spec": {"useCase": use_case_ref, "acls": [
             {"resource": {"type": "topic", "name": "orders"}, "operations": ["Write", "Read", "Describe"]},
             {"resource": {"type": "group", "name": "e2e-", "patternType": "prefixed"}, "operations": ["Read"]}]}},
        {"apiVersion": "kafka.usecase.dev/v1alpha1", "kind": "KafkaUser", "metadata": {"name": "outsider", "namespace": apps},
         "spec": {"useCase": use_case_ref}})
    for kind, name in (("kafkatopic", "orders"), ("kafkauser", "shop"), ("kafkauser", "outsider")):
        eventually(lambda: flow.ready(kind, apps, name), timeout=180, interval=2)

    produced = flow.run_client(mode, "shop", "produce", "orders", MESSAGES)
    assert produced == {"acked": MESSAGES, "errors": []}
    assert flow.run_client(mode, "shop", "consume", "orders", MESSAGES) == {"read": MESSAGES}
    refused = flow.run_client(mode, "outsider", "produce", "orders", 1)
    assert refused == {"acked": 0, "errors": ["TOPIC_AUTHORIZATION_FAILED"]}


def test_no_password_is_on_any_command_line(flow):
    """Every process on this machine (the pods' included: they are this machine's processes)."""
    passwords = []
    for mode in MODES:
        passwords.append(flow.secret(flow.cluster_ns[mode], "orders-kafka-admin")["password"])
        if mode == "kraft":
            passwords.append(flow.secret(flow.cluster_ns[mode], "orders-controller-credentials")["password"])
        passwords.append(flow.secret(flow.apps_ns[mode], "shop")["password"])
    java = 0
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().decode(errors="replace")
        except OSError:
            continue
        java += "kafka.Kafka" in cmdline or "QuorumPeerMain" in cmdline
        assert not any(p in cmdline for p in passwords), f"a password on the command line of pid {entry.name}"
    assert java >= 2 * (BROKERS + 1)  # the brokers and quorum nodes were there to be read


@pytest.mark.parametrize("mode", MODES)
def test_killed_broker_and_quorum_pods_come_back_on_their_volumes_with_the_data(flow, mode):
    namespace = flow.cluster_ns[mode]
    quorum_pod = "orders-controllers-0" if mode == "kraft" else "orders-zookeeper-0"
    claims = {pvc["metadata"]["name"]: pvc["spec"]["volumeName"] for pvc in
              json.loads(flow.kubectl("get", "pvc", "-n", namespace, "-o", "json"))["items"]}
    old = {name: flow.get("pod", namespace, name)["metadata"]["uid"] for name in ("orders-kafka-0", quorum_pod)}
    flow.kubectl("delete", "pod", "orders-kafka-0", quorum_pod, "-n", namespace, "--wait=false")

    def back():
        """both pods re-created and Ready, and the use case Ready again"""
        pods = {name: flow.get("pod", namespace, name) for name in old}
        fresh = all(p and p["metadata"]["uid"] != old[n] and any(
            c["type"] == "Ready" and c["status"] == "True" for c in p["status"].get("conditions", []))
            for n, p in pods.items())
        return fresh and flow.ready("kafkausecase", namespace, "orders")

    eventually(back, timeout=READY_SECONDS, interval=3)
    after = {pvc["metadata"]["name"]: pvc["spec"]["volumeName"] for pvc in
             json.loads(flow.kubectl("get", "pvc", "-n", namespace, "-o", "json"))["items"]}
    assert after == claims  # the same claims on the same volumes
    assert flow.run_client(mode, "shop", "consume", "orders", MESSAGES) == {"read": MESSAGES}
