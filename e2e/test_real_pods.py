"""Use cases running for real: the operator installed with Helm as a pod, and one use case per
metadata mode (Kafka 4.3.1 with its own KRaft controller, Kafka 3.9.2 with its own ZooKeeper)
as pods on real nodes, from the project's own images. Clients in another namespace produce and
consume through the generated Secrets; a user without ACLs is refused; the use case's
NetworkPolicies hold (kube-router enforces them): a namespace `access` does not admit cannot
connect, and no client reaches the quorum; no password is on any process's command line; a broker
and its quorum killed come back on their volumes, data intact; a use case deleted and re-created
with the same name starts on its kept volumes (deleteClaim false) or afresh (deleteClaim true).

The shape follows DEVSTACK_BROKERS (1 in `make test`: data survives on the volume; 3 in
`make test-slow`). Everything is created once per module and shared by the tests, in order.
"""

from __future__ import annotations

import base64
import json
import os
import subprocess
import time
import uuid
from pathlib import Path

import pytest
import yaml

from chart import CHART, helm
from devstack import kube, realpods, versions
from kafka_usecase_operator.usecase import configs
from waiting import Pending, eventually

# A roll of 3 real brokers and their quorum on 2 shared cores outlasts the suite's 900 s per test.
pytestmark = [pytest.mark.kube, pytest.mark.e2e, pytest.mark.timeout(1800)]
# DEVSTACK_KAFKA_MODES narrows the modes: `make test-slow` runs the 3 + 3 shapes one mode at a time.
MODES = tuple(m for m in ("kraft", "zookeeper") if m in os.environ.get("DEVSTACK_KAFKA_MODES", "kraft,zookeeper"))
RELEASE = "kuo-real"
FIRST_VERSION = {"kraft": versions.KAFKA_KRAFT_PREVIOUS, "zookeeper": versions.KAFKA_ZOOKEEPER}
MESSAGES = 200
BROKERS = int(os.environ.get("DEVSTACK_BROKERS") or 1)
TRAFFIC = 1500 if BROKERS >= 3 else 0  # records produced while pods are killed (3 brokers, replication 3)
READY_SECONDS = 420  # two use cases' JVMs starting together on 2 shared cores
ADMITTED_LABEL = "e2e.kafka.usecase.dev/clients"  # the namespaces the use cases' access admits
PROBE = r"""
import json, socket, sys, threading, time
# A policy engine admits a new pod's address a moment after the pod starts: try each target until it
# answers or the window ends. A target still refused at the end was refused the whole window.
window, reached = float(sys.argv[1]), {}
def attempt(target):
    host, port = target.rsplit(":", 1)
    deadline, reached[target] = time.monotonic() + window, False
    while not reached[target] and time.monotonic() < deadline:
        try:
            socket.create_connection((host, int(port)), timeout=2).close()
            reached[target] = True
        except OSError:
            time.sleep(0.5)
threads = [threading.Thread(target=attempt, args=(t,)) for t in sys.argv[2:]]
[t.start() for t in threads]
[t.join() for t in threads]
print(json.dumps(reached))
"""



# Makes a partition under-replicated without stopping a pod: a topic whose replica on `broker` is
# throttled to 1 KiB/s while 5 MB arrive, so that broker drops out of the ISR; `unthrottle` lifts it.
THROTTLE = r"""
import json, sys
from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient, AlterConfigOpType, ConfigEntry, ConfigResource, NewTopic, ResourceType
secret = lambda key: open(f"/etc/kafka/{key}").read()
conf = {"bootstrap.servers": sys.argv[1], "security.protocol": "SASL_PLAINTEXT", "sasl.mechanism": "SCRAM-SHA-512",
        "sasl.username": secret("username"), "sasl.password": secret("password")}
action, topic, broker = sys.argv[2], sys.argv[3], sys.argv[4]
admin = AdminClient(conf)
op = AlterConfigOpType.SET if action == "throttle" else AlterConfigOpType.DELETE
if action == "throttle":
    others = [b for b in (0, 1, 2) if b != int(broker)]
    admin.create_topics([NewTopic(topic, num_partitions=1, replica_assignment=[[*others, int(broker)]],
                                  config={"min.insync.replicas": "2"})])[topic].result(30)
for future in admin.incremental_alter_configs([
        ConfigResource(ResourceType.BROKER, broker, incremental_configs=[ConfigEntry(
            "follower.replication.throttled.rate", "1024" if action == "throttle" else None, incremental_operation=op)]),
        ConfigResource(ResourceType.TOPIC, topic, incremental_configs=[ConfigEntry(
            "follower.replication.throttled.replicas", "*" if action == "throttle" else None, incremental_operation=op)]),
]).values():
    future.result(30)
if action == "throttle":
    producer = Producer({**conf, "acks": "1"})
    for _ in range(5000):
        producer.produce(topic, b"x" * 1000)
        producer.poll(0)
    producer.flush(60)
print(json.dumps({"done": action}))
"""


class RealFlow:
    def __init__(self, kube_cluster, tmp: Path):
        self.kube = kube_cluster
        self.tmp = tmp
        suffix = uuid.uuid4().hex[:5]
        self.operator_ns = f"kuo-real-{suffix}"
        self.cluster_ns = {mode: f"uc-{mode}-{suffix}" for mode in MODES}
        self.apps_ns = {mode: f"apps-{mode}-{suffix}" for mode in MODES}
        self.outside_ns = f"outside-{suffix}"  # a namespace no use case admits

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

    def run_client(self, mode: str, user: str, action: str, topic: str, count: int, pause: float = 0.0,
                   first: int = 0, wait: bool = True, timeout: float = 60) -> dict | str:
        """A client pod on a real node, with the user's generated Secret mounted; its one line of JSON."""
        namespace = self.apps_ns[mode]
        name = f"{action}-{user}-{uuid.uuid4().hex[:5]}"
        self.apply(realpods.client_pod(namespace, name, user,
                                       [action, topic, str(count), str(pause), str(first), str(timeout)]))
        return self.client_result(namespace, name) if wait else name

    def operator_log(self, lines: int = 60) -> str:
        """What the operator logged last, but the probes' access lines."""
        log = self.kubectl("logs", "-n", self.operator_ns, "deploy/" + RELEASE + "-kafka-usecase-operator",
                           f"--tail={lines * 4}")
        return "\n".join([line for line in log.splitlines() if "aiohttp.access" not in line][-lines:])

    def reachable(self, namespace: str, targets: list[str], window: float = 30) -> dict[str, bool]:
        """Which `host:port` a new pod in `namespace` could open a TCP connection to within `window` s."""
        name = f"probe-{uuid.uuid4().hex[:5]}"
        self.apply(realpods.python_pod(namespace, name, PROBE, [str(window), *targets]))
        return self.client_result(namespace, name)

    def use_case(self, mode: str, delete_claim: bool = False, version: str | None = None) -> dict:
        manifest = realpods.use_case(mode, self.cluster_ns[mode], BROKERS, version=version,
                                     access={"from": "Selector", "selector": {"matchLabels": {ADMITTED_LABEL: "true"}}})
        if delete_claim:
            spec = manifest["spec"]
            for component in (spec["kafka"], spec["controllers" if mode == "kraft" else "zookeeper"]):
                component["storage"]["deleteClaim"] = True
        return manifest

    def client_result(self, namespace: str, name: str) -> dict:
        def finished():
            """the client pod finished"""
            phase = ((self.get("pod", namespace, name) or {}).get("status") or {}).get("phase")
            return phase if phase in ("Succeeded", "Failed") else None

        phase = eventually(finished, timeout=180, interval=1)
        logs = self.kubectl("logs", name, "-n", namespace)
        assert phase == "Succeeded", logs
        # its one line of JSON; librdkafka may log to stderr after it (e.g. as a consumer closes)
        return json.loads(next(line for line in reversed(logs.splitlines()) if line.startswith("{")))


@pytest.fixture(scope="module")
def flow(kube_cluster, real_nodes, tmp_path_factory):
    flow = RealFlow(kube_cluster, tmp_path_factory.mktemp("real"))
    values = flow.tmp / "values.yaml"
    values.write_text(yaml.safe_dump(realpods.chart_values(operator={"retrySeconds": 5, "resyncSeconds": 20,
                                                                                 "clusterCheckSeconds": 5})))
    helm(kube_cluster, "install", RELEASE, str(CHART), "-n", flow.operator_ns, "--create-namespace",
         "-f", str(values), "--wait", "--timeout", "180s")
    for namespace in [*flow.cluster_ns.values(), *flow.apps_ns.values(), flow.outside_ns]:
        flow.kubectl("create", "namespace", namespace)
    flow.kubectl("label", "namespace", *flow.apps_ns.values(), f"{ADMITTED_LABEL}=true")
    # KRaft starts on the line's previous release: a test upgrades it to the current one.
    flow.apply(*(flow.use_case(mode, version=FIRST_VERSION[mode]) for mode in MODES))
    yield flow
    # While the operator runs and the clusters are there: it removes the users and topics it manages
    # from Kafka and releases their finalizers; then the clusters go.
    flow.kubectl("delete", "namespace", *flow.apps_ns.values(), flow.outside_ns, "--wait=true", timeout=300)
    flow.kubectl("delete", "namespace", *flow.cluster_ns.values(), "--wait=true", timeout=300)
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
    assert ready["status"]["kafkaVersion"] == FIRST_VERSION[mode]


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

    everything = list(range(MESSAGES))
    assert flow.run_client(mode, "shop", "produce", "orders", MESSAGES) == {"acked": everything, "errors": []}
    assert flow.run_client(mode, "shop", "consume", "orders", MESSAGES) == {"read": everything}
    refused = flow.run_client(mode, "outsider", "produce", "orders", 1)
    assert refused == {"acked": [], "errors": ["TOPIC_AUTHORIZATION_FAILED"]}


@pytest.mark.parametrize("mode", MODES)
def test_network_policies_admit_only_the_namespaces_access_names_and_keep_clients_off_the_quorum(flow, mode):
    namespace = flow.cluster_ns[mode]
    eventually(lambda: flow.ready("kafkausecase", namespace, "orders"), timeout=READY_SECONDS, interval=3)
    quorum = "controller" if mode == "kraft" else "zookeeper"

    def addresses(component: str) -> list[str]:
        pod = json.loads(flow.kubectl("get", "pods", "-n", namespace, "-l",
                                      f"app.kubernetes.io/component={component}", "-o", "json"))["items"][0]
        return [f"{pod['status']['podIP']}:{p['containerPort']}" for p in pod["spec"]["containers"][0]["ports"]]

    bootstrap = flow.get("kafkausecase", namespace, "orders")["status"]["bootstrapServers"]
    client_port = bootstrap.rsplit(":", 1)[1]
    brokers, peers = addresses("broker"), addresses(quorum)
    everything = [bootstrap, *brokers, *peers]
    # The broker's client listener, through the Service and directly, is all an admitted namespace reaches.
    admitted = {target: target == bootstrap or (target in brokers and target.endswith(f":{client_port}"))
                for target in everything}
    assert flow.reachable(flow.apps_ns[mode], everything) == admitted
    assert flow.reachable(flow.outside_ns, everything) == {target: False for target in everything}


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
    quorum = 1 if BROKERS == 1 else 3
    assert java >= len(MODES) * (BROKERS + quorum)  # the brokers and quorum nodes were there to be read


@pytest.mark.parametrize("mode", MODES)
def test_killed_broker_and_quorum_pods_come_back_on_their_volumes_with_the_data(flow, mode):
    namespace = flow.cluster_ns[mode]
    quorum_pod = "orders-controllers-0" if mode == "kraft" else "orders-zookeeper-0"
    claims = {pvc["metadata"]["name"]: pvc["spec"]["volumeName"] for pvc in
              json.loads(flow.kubectl("get", "pvc", "-n", namespace, "-o", "json"))["items"]}
    old = {name: flow.get("pod", namespace, name)["metadata"]["uid"] for name in ("orders-kafka-0", quorum_pod)}
    # With 3 brokers (make test-slow), acks=all traffic flows while they go: replication 3 and
    # min ISR 2 mean nothing acknowledged may be lost.
    traffic = flow.run_client(mode, "shop", "produce", "orders", TRAFFIC, pause=0.04,
                              first=MESSAGES, wait=False) if TRAFFIC else None
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
    if traffic is None:
        assert flow.run_client(mode, "shop", "consume", "orders", MESSAGES) == {"read": list(range(MESSAGES))}
        return
    read = set(flow.run_client(mode, "shop", "consume", "orders", MESSAGES + TRAFFIC)["read"])
    assert_every_acknowledged_record_read(f"{mode} pods killed", flow.client_result(flow.apps_ns[mode], traffic), read)


def pod_uids(flow, namespace: str, component: str) -> dict[str, str]:
    pods = json.loads(flow.kubectl("get", "pods", "-n", namespace, "-l", f"app.kubernetes.io/component={component}",
                                   "-o", "json"))["items"]
    return {p["metadata"]["name"]: p["metadata"]["uid"] for p in pods}


def use_case_condition(flow, namespace: str, kind: str) -> dict:
    status = (flow.get("kafkausecase", namespace, "orders") or {}).get("status") or {}
    return next((c for c in status.get("conditions", []) if c["type"] == kind), {})


def assert_every_acknowledged_record_read(what: str, produced: dict, read: set) -> None:
    """No acknowledged record lost, no producer error; the counts go to the report (pytest -rP)."""
    acked = set(produced["acked"])
    lost = acked - read
    print(f"FIGURES {what}: {len(acked)} acknowledged, {len(read)} read, {len(lost)} lost, "
          f"{len(produced['errors'])} producer errors")
    assert acked and not lost and produced["errors"] == [], \
        f"{what}: {len(lost)} acknowledged records lost, errors {produced['errors']}"


def roll_pending(flow, namespace: str, old_brokers: dict[str, str]) -> Pending:
    """What keeps a roll of the brokers from being over: brokers not yet restarted, the Rolling
    condition while it is True, the Ready condition while it is not."""
    pending = Pending()
    brokers = pod_uids(flow, namespace, "broker")
    not_restarted = sorted(n for n, uid in brokers.items() if uid in old_brokers.values())
    if not_restarted or len(brokers) != BROKERS:
        pending["not restarted"] = not_restarted or brokers
    rolling = use_case_condition(flow, namespace, "Rolling")
    if rolling.get("status") != "False":
        pending["rolling"] = rolling.get("message") or rolling
    ready = use_case_condition(flow, namespace, "Ready")
    if ready.get("status") != "True":
        pending["ready"] = ready.get("message") or ready
    return pending


def events(flow, namespace: str, reason: str) -> list[str]:
    items = json.loads(flow.kubectl("get", "events", "-n", namespace, "--field-selector", f"reason={reason}",
                                    "-o", "json"))["items"]
    return [e["message"] for e in sorted(items, key=lambda e: e.get("lastTimestamp") or e["metadata"]["creationTimestamp"])]


def test_the_roller_applies_a_runtime_setting_without_a_restart_and_restarts_each_broker_once_for_a_static_one(flow):
    """Both modes at once; with 3 brokers (make test-slow) acks=all traffic flows through the roll."""
    quorum = {"kraft": "controller", "zookeeper": "zookeeper"}
    before = {mode: {c: pod_uids(flow, flow.cluster_ns[mode], c) for c in ("broker", quorum[mode])} for mode in MODES}
    for mode in MODES:
        eventually(lambda: flow.ready("kafkausecase", flow.cluster_ns[mode], "orders"), timeout=READY_SECONDS, interval=3)
        flow.kubectl("patch", "kafkausecase", "orders", "-n", flow.cluster_ns[mode], "--type=merge", "-p",
                     json.dumps({"spec": {"kafka": {"config": {"log.retention.ms": "172800000"}}}}))
    for mode in MODES:
        namespace = flow.cluster_ns[mode]

        def applied():
            """the runtime setting applied (Event) and every pod moved to the new configuration"""
            data = flow.get("configmap", namespace, "orders-kafka-config")["data"]
            done = set(configs.pointers(data).values()) == {data["latest"]} and events(flow, namespace, "ConfigApplied")
            return done and "log.retention.ms=172800000" in configs.files_of(data, data["latest"])["server.properties"]

        eventually(applied, timeout=120, interval=2)
        assert "log.retention.ms=172800000" in events(flow, namespace, "ConfigApplied")[-1]
        assert {c: pod_uids(flow, namespace, c) for c in before[mode]} == before[mode]  # nothing restarted

    traffic = {mode: flow.run_client(mode, "shop", "produce", "orders", TRAFFIC, pause=0.1, first=10_000,
                                     wait=False, timeout=120) for mode in MODES} if TRAFFIC else {}
    for mode in MODES:
        flow.kubectl("patch", "kafkausecase", "orders", "-n", flow.cluster_ns[mode], "--type=merge", "-p",
                     json.dumps({"spec": {"kafka": {"config": {"group.initial.rebalance.delay.ms": "100"}}}}))
    for mode in MODES:
        namespace = flow.cluster_ns[mode]

        def rolled():
            """every broker restarted, the roll over, the use case Ready"""
            return roll_pending(flow, namespace, before[mode]["broker"])

        eventually(rolled, timeout=READY_SECONDS + 300 * BROKERS, interval=3)
        restarts = [m for m in events(flow, namespace, "RollingRestart") if "group.initial.rebalance.delay.ms" in m]
        assert sorted(m.split(":")[0] for m in restarts) == sorted(f"restarting {p}" for p in before[mode]["broker"]), \
            restarts  # each broker exactly once, for this change
        assert pod_uids(flow, namespace, quorum[mode]) == before[mode][quorum[mode]]  # the quorum untouched
    for mode, name in traffic.items():
        read = set(flow.run_client(mode, "shop", "consume", "orders", 10**6)["read"])  # until 20 s bring nothing
        assert_every_acknowledged_record_read(f"{mode} static setting rolled", flow.client_result(flow.apps_ns[mode], name),
                                              read)


def test_a_pod_annotated_for_a_manual_roll_restarts_once_and_a_deleted_policy_comes_back(flow):
    quorum = {"kraft": "orders-controllers-0", "zookeeper": "orders-zookeeper-0"}
    before = {mode: {**pod_uids(flow, flow.cluster_ns[mode], "broker"),
                     quorum[mode]: flow.get("pod", flow.cluster_ns[mode], quorum[mode])["metadata"]["uid"]}
              for mode in MODES}
    for mode in MODES:
        namespace = flow.cluster_ns[mode]
        flow.kubectl("annotate", "pod", quorum[mode], "-n", namespace, "kafka.usecase.dev/manual-rolling-update=true")
        flow.kubectl("delete", "networkpolicy", "orders-broker", "-n", namespace)
    for mode in MODES:
        namespace = flow.cluster_ns[mode]

        def rolled():
            """the annotated pod replaced and ready, the roll over"""
            pod = flow.get("pod", namespace, quorum[mode]) or {"metadata": {}}
            fresh = pod["metadata"].get("uid") not in (None, before[mode][quorum[mode]]) and any(
                c["type"] == "Ready" and c["status"] == "True" for c in (pod.get("status") or {}).get("conditions", []))
            return fresh and use_case_condition(flow, namespace, "Rolling").get("status") == "False"

        eventually(rolled, timeout=READY_SECONDS, interval=3)
        assert pod_uids(flow, namespace, "broker") == {k: v for k, v in before[mode].items() if k != quorum[mode]}
        assert f"restarting {quorum[mode]}: manual rolling update requested" in events(flow, namespace, "RollingRestart")
        assert "kafka.usecase.dev/manual-rolling-update" not in (
            flow.get("pod", namespace, quorum[mode])["metadata"].get("annotations") or {})
        assert flow.get("networkpolicy", namespace, "orders-broker")  # back as declared
        assert any("NetworkPolicy orders-broker was missing" in m for m in events(flow, namespace, "ChildRestored"))


@pytest.mark.skipif("kraft" not in MODES, reason="the KRaft line's upgrade")
def test_an_upgrade_rolls_the_controllers_before_the_brokers_then_raises_the_metadata_version(flow):
    namespace, apps = flow.cluster_ns["kraft"], flow.apps_ns["kraft"]
    eventually(lambda: flow.ready("kafkausecase", namespace, "orders"), timeout=READY_SECONDS, interval=3)
    before = {c: pod_uids(flow, namespace, c) for c in ("controller", "broker")}
    traffic = flow.run_client("kraft", "shop", "produce", "orders", TRAFFIC, pause=0.1, first=20_000, wait=False,
                              timeout=120) if TRAFFIC else None
    flow.kubectl("patch", "kafkausecase", "orders", "-n", namespace, "--type=merge", "-p",
                 json.dumps({"spec": {"kafka": {"version": versions.KAFKA_KRAFT}}}))

    def upgraded():
        """every pod restarted, the roll over, metadata.version raised, the use case Ready"""
        now = {c: pod_uids(flow, namespace, c) for c in before}
        fresh = all(len(now[c]) == len(before[c]) and not set(now[c].values()) & set(before[c].values()) for c in before)
        idle = use_case_condition(flow, namespace, "Rolling").get("status") == "False"
        return fresh and idle and events(flow, namespace, "MetadataVersionRaised") and \
            flow.ready("kafkausecase", namespace, "orders")

    eventually(upgraded, timeout=READY_SECONDS + 300 * BROKERS, interval=3)
    pods = json.loads(flow.kubectl("get", "pods", "-n", namespace, "-o", "json"))["items"]
    started = {p["metadata"]["name"]: p["metadata"]["creationTimestamp"] for p in pods}
    controllers, brokers = sorted(before["controller"]), sorted(before["broker"])
    assert max(started[c] for c in controllers) <= min(started[b] for b in brokers), started  # quorum first
    restarts = [m.split(":")[0] for m in events(flow, namespace, "RollingRestart") if "pod template changed" in m]
    assert sorted(restarts) == sorted(f"restarting {p}" for p in controllers + brokers), restarts  # each once
    assert f"Kafka version: {versions.KAFKA_KRAFT}" in flow.kubectl("logs", brokers[0], "-n", namespace)
    assert flow.ready("kafkausecase", namespace, "orders")["status"]["kafkaVersion"] == versions.KAFKA_KRAFT
    read = set(flow.run_client("kraft", "shop", "consume", "orders", 10**6)["read"])
    assert set(range(MESSAGES)) <= read  # what was written before the upgrade is still there
    if traffic:
        assert_every_acknowledged_record_read("kraft upgrade", flow.client_result(apps, traffic), read)


def admin_pod(flow, mode: str, script: str, args: list[str]) -> dict:
    """A pod with the use case's admin credentials (what only the cluster's admin may do). It runs in
    the clients' namespace: the NetworkPolicy keeps pods of any namespace spec.access does not
    admit off the brokers, the cluster's own namespace included."""
    namespace, apps = flow.cluster_ns[mode], flow.apps_ns[mode]
    bootstrap = flow.get("kafkausecase", namespace, "orders")["status"]["bootstrapServers"]
    admin = flow.secret(namespace, "orders-kafka-admin")
    flow.apply({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "orders-admin", "namespace": apps},
                "stringData": {key: admin[key] for key in ("username", "password")}})
    name = f"admin-{uuid.uuid4().hex[:5]}"
    flow.apply(realpods.python_pod(apps, name, script, [bootstrap, *args], secret="orders-admin"))
    return flow.client_result(apps, name)


@pytest.mark.skipif(BROKERS < 3, reason="a partition with a replica to spare needs 3 brokers")
@pytest.mark.parametrize("mode", MODES)
def test_a_roll_blocked_by_a_partition_at_min_isr_waits_naming_it_and_goes_on_once_the_isr_recovers(flow, mode):
    namespace = flow.cluster_ns[mode]
    eventually(lambda: use_case_condition(flow, namespace, "Rolling").get("status") == "False", timeout=300)
    assert admin_pod(flow, mode, THROTTLE, ["throttle", "slow", "2"]) == {"done": "throttle"}
    before = flow.get("pod", namespace, "orders-kafka-0")["metadata"]["uid"]
    flow.kubectl("annotate", "pod", "orders-kafka-0", "-n", namespace, "kafka.usecase.dev/manual-rolling-update=true")

    def held():
        """the roll waits, naming the partition broker 2 fell behind on"""
        rolling = use_case_condition(flow, namespace, "Rolling")
        return rolling if rolling.get("status") == "True" and "slow-0" in rolling.get("message", "") else None

    rolling = eventually(held, timeout=120, interval=2)  # broker 2 leaves the ISR after replica.lag.time.max.ms
    assert rolling["reason"] in ("BrokerCatchingUp", "UnderMinIsr"), rolling
    time.sleep(20)  # four passes: still held
    assert flow.get("pod", namespace, "orders-kafka-0")["metadata"]["uid"] == before
    assert flow.get("poddisruptionbudget", namespace, "orders-kafka")["spec"]["maxUnavailable"] == 0

    assert admin_pod(flow, mode, THROTTLE, ["unthrottle", "slow", "2"]) == {"done": "unthrottle"}

    def rolled():
        """broker 0 restarted once the ISR recovered, and back"""
        pod = flow.get("pod", namespace, "orders-kafka-0") or {"metadata": {}}
        return pod["metadata"].get("uid") not in (None, before) and \
            use_case_condition(flow, namespace, "Rolling").get("status") == "False"

    eventually(rolled, timeout=READY_SECONDS, interval=3)


@pytest.mark.skipif(BROKERS < 3, reason="a drain that must wait needs brokers to spare")
@pytest.mark.parametrize("mode", MODES)
def test_a_node_drain_takes_a_second_broker_only_after_the_first_is_back(flow, mode):
    namespace = flow.cluster_ns[mode]
    eventually(lambda: flow.get("poddisruptionbudget", namespace, "orders-kafka")["spec"]["maxUnavailable"] == 1,
               timeout=120)  # healthy and no roll: one broker may go
    node = {name: flow.get("pod", namespace, name)["spec"]["nodeName"] for name in ("orders-kafka-0", "orders-kafka-1")}
    first = flow.get("pod", namespace, "orders-kafka-0")["metadata"]["uid"]
    second = flow.get("pod", namespace, "orders-kafka-1")["metadata"]["uid"]
    traffic = flow.run_client(mode, "shop", "produce", "orders", 1000, pause=0.1, first=30_000, wait=False,
                              timeout=120)
    kubectl = [kube.binary("kubectl"), "--kubeconfig", str(flow.kube.kubeconfig)]
    drain = ["drain", "--pod-selector=app.kubernetes.io/component=broker", "--ignore-daemonsets",
             "--delete-emptydir-data"]
    flow.kubectl(*drain[:1], node["orders-kafka-0"], *drain[1:], "--timeout=60s", timeout=90)
    flow.kubectl("uncordon", node["orders-kafka-0"])  # its volume is on that node: it comes back there
    second_drain = subprocess.Popen([*kubectl, *drain[:1], node["orders-kafka-1"], *drain[1:], "--timeout=600s"],
                                    stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        budget_while_away = set()

        def first_back():
            """broker 0 re-created and ready"""
            pod = flow.get("pod", namespace, "orders-kafka-0") or {"metadata": {}}
            back = pod["metadata"].get("uid") not in (None, first) and any(
                c["type"] == "Ready" and c["status"] == "True" for c in (pod.get("status") or {}).get("conditions", []))
            if not back:
                budget_while_away.add(flow.get("poddisruptionbudget", namespace, "orders-kafka")["spec"]["maxUnavailable"])
                assert flow.get("pod", namespace, "orders-kafka-1")["metadata"]["uid"] == second, \
                    "the second broker was evicted while the first was away"
            return back

        eventually(first_back, timeout=READY_SECONDS, interval=1)
        assert 0 in budget_while_away, budget_while_away  # the operator held drains (the PDB alone would not)
        output, _ = second_drain.communicate(timeout=600)
        assert second_drain.returncode == 0, output
        assert "evicted" in output
    finally:
        if second_drain.poll() is None:
            second_drain.kill()
        flow.kubectl("uncordon", node["orders-kafka-1"])
    eventually(lambda: flow.ready("kafkausecase", namespace, "orders"), timeout=READY_SECONDS, interval=3)
    read = set(flow.run_client(mode, "shop", "consume", "orders", 10**6)["read"])
    assert_every_acknowledged_record_read(f"{mode} node drain", flow.client_result(flow.apps_ns[mode], traffic), read)


@pytest.mark.skipif(BROKERS < 3, reason="make test-slow: the kwok tests prove a pause applies nothing")
@pytest.mark.parametrize("mode", MODES)
def test_a_paused_use_case_is_left_untouched_by_a_spec_change_and_rolls_once_resumed(flow, mode):
    namespace = flow.cluster_ns[mode]
    flow.kubectl("annotate", "kafkausecase", "orders", "-n", namespace, "kafka.usecase.dev/pause-reconciliation=true")
    eventually(lambda: use_case_condition(flow, namespace, "ReconciliationPaused").get("status") == "True")
    before, config = pod_uids(flow, namespace, "broker"), flow.get("configmap", namespace, "orders-kafka-config")["data"]
    flow.kubectl("patch", "kafkausecase", "orders", "-n", namespace, "--type=merge", "-p",
                 json.dumps({"spec": {"kafka": {"config": {"group.initial.rebalance.delay.ms": "200"}}}}))
    time.sleep(30)  # six passes
    assert pod_uids(flow, namespace, "broker") == before
    assert flow.get("configmap", namespace, "orders-kafka-config")["data"] == config
    flow.kubectl("annotate", "kafkausecase", "orders", "-n", namespace, "kafka.usecase.dev/pause-reconciliation-")

    def rolled():
        """every broker restarted after the pause ended"""
        return roll_pending(flow, namespace, before)

    eventually(rolled, timeout=READY_SECONDS + 300 * BROKERS, interval=3)


def test_a_use_case_re_created_with_the_same_name_starts_on_its_kept_data_or_afresh(flow):
    """Last: it deletes the shared use cases. Both modes at once (their JVMs start side by side)."""
    def claims(mode: str) -> dict[str, str]:
        return {pvc["metadata"]["name"]: pvc["spec"].get("volumeName") for pvc in
                json.loads(flow.kubectl("get", "pvc", "-n", flow.cluster_ns[mode], "-o", "json"))["items"]}

    def gone(mode: str) -> bool:
        """the use case and every pod of it gone"""
        namespace = flow.cluster_ns[mode]
        pods = json.loads(flow.kubectl("get", "pods", "-n", namespace, "-l", "kafka.usecase.dev/use-case=orders",
                                       "-o", "json"))["items"]
        return not pods and not flow.get("kafkausecase", namespace, "orders")

    def delete_and_re_create(delete_claim: bool) -> None:
        for mode in MODES:
            flow.kubectl("delete", "kafkausecase", "orders", "-n", flow.cluster_ns[mode], "--wait=false")
        for mode in MODES:
            eventually(lambda m=mode: gone(m), timeout=300, interval=3)
        flow.apply(*(flow.use_case(mode, delete_claim) for mode in MODES))
        for mode in MODES:
            eventually(lambda m=mode: flow.ready("kafkausecase", flow.cluster_ns[m], "orders"), timeout=READY_SECONDS,
                       interval=3)

    # deleteClaim false (the default): the volumes and the credentials their data was made with stay,
    # and the re-created cluster is the same cluster: same id, same volumes, the records still there.
    before = {mode: (claims(mode), flow.get("kafkausecase", flow.cluster_ns[mode], "orders")["status"].get("clusterId"))
              for mode in MODES}
    topic_ids = {mode: flow.get("kafkatopic", flow.apps_ns[mode], "orders")["status"]["topicId"] for mode in MODES}
    # every record the earlier tests wrote (a count would read a different subset each time)
    stored = {mode: set(flow.run_client(mode, "shop", "consume", "orders", 10**6)["read"])
              for mode in MODES}
    assert all(set(range(MESSAGES)) <= stored[mode] for mode in MODES), "not every record was read before the deletion"
    delete_and_re_create(delete_claim=False)
    for mode in MODES:
        status = flow.get("kafkausecase", flow.cluster_ns[mode], "orders")["status"]
        assert (claims(mode), status.get("clusterId")) == before[mode]
        read = set(flow.run_client(mode, "shop", "consume", "orders", 10**6)["read"])
        assert read == stored[mode]  # every record, none new
        assert flow.get("kafkatopic", flow.apps_ns[mode], "orders")["status"]["topicId"] == topic_ids[mode]

    # deleteClaim true: the claims and credentials go with the use case; the re-created one starts
    # empty, and the operator puts the topic, the user and its ACLs back into it.
    for mode in MODES:  # switched on the running use case: its Secrets become owned by it
        flow.apply(flow.use_case(mode, delete_claim=True))
    for mode in MODES:
        def applied(m=mode):
            """the operator has acted on the change"""
            use_case = flow.get("kafkausecase", flow.cluster_ns[m], "orders")
            return use_case["status"].get("observedGeneration") == use_case["metadata"]["generation"]

        eventually(applied, timeout=60, interval=1)
    delete_and_re_create(delete_claim=True)
    for mode in MODES:
        assert all(claims(mode).get(name) != volume for name, volume in before[mode][0].items())

        def restored(m=mode):
            """the topic re-created in the new cluster (a new topic id), and the user's credential
            and ACLs back: one record produced with its Secret within 10 s"""
            topic = flow.get("kafkatopic", flow.apps_ns[m], "orders")["status"]
            return topic.get("topicId") not in (None, topic_ids[m]) and \
                flow.run_client(m, "shop", "produce", "orders", 1, first=9_999, timeout=10)["acked"] == [9_999]

        try:
            eventually(restored, timeout=240, interval=2)
        except AssertionError as error:
            topic = flow.get("kafkatopic", flow.apps_ns[mode], "orders")["status"]
            user = flow.get("kafkauser", flow.apps_ns[mode], "shop")["status"]
            raise AssertionError(f"{mode}: {error}\ntopic status: {topic}\nuser status: {user}\n"
                                 f"operator's log:\n{flow.operator_log()}") from None
        fresh = list(range(10_000, 10_050))
        assert flow.run_client(mode, "shop", "produce", "orders", len(fresh), first=fresh[0]) == \
            {"acked": fresh, "errors": []}
        assert flow.run_client(mode, "shop", "consume", "orders", len(fresh) + 1)["read"] == [9_999, *fresh]
