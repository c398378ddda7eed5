"""The operator process against the devstack's real control plane: a KafkaUseCase becomes its
cluster's objects, the real scheduler places the pods on dedicated kwok nodes, and the status
follows what runs. Also: a config change restarts nothing without Kafka's word (kwok's brokers
run no Kafka: the roller says so and waits), a paused use case is left alone, a deleted child comes
back, refused changes touch nothing, deleting the use case garbage-collects everything, external
use cases report their connection."""

import json
import signal
import time
import uuid
from pathlib import Path

import pytest
import yaml

from devstack import kube
from kafka_usecase_operator.usecase import configs
from operator_process import OperatorProcess
from waiting import eventually

pytestmark = pytest.mark.kube
ROOT = Path(__file__).parents[2]
@pytest.fixture(scope="module")
def namespace(kube_cluster):
    name = f"uc-{uuid.uuid4().hex[:6]}"
    kube_cluster.kubectl("apply", "--server-side", "--force-conflicts", "-f", str(ROOT / "crds"))
    kube_cluster.kubectl("wait", "--for=condition=Established", "crd", "-l",
                         "app.kubernetes.io/part-of=kafka-usecase-operator", "--timeout=60s")
    kube_cluster.kubectl("create", "namespace", name)
    yield name
    kube_cluster.kubectl("delete", "namespace", name, "--wait=false")


@pytest.fixture(scope="module")
def operator(kube_cluster, namespace, tmp_path_factory):
    """`kafka-usecase-operator run` as a real process, watching the test namespace."""
    process = OperatorProcess(kube_cluster.kubeconfig, [namespace], tmp_path_factory.mktemp("operator") / "operator.log",
                              {"KUO_EXTERNAL_CHECK_SECONDS": "2", "KUO_CLUSTER_CHECK_SECONDS": "3"}).start()
    yield process
    process.stop()
    process.assert_no_traceback()


def apply(kube_cluster, namespace, manifest: dict) -> None:
    kube_cluster.kubectl("apply", "-n", namespace, "-f", "-", input=json.dumps(manifest))


def get(kube_cluster, namespace, *what) -> dict:
    return json.loads(kube_cluster.kubectl("get", *what, "-n", namespace, "-o", "json"))


def ready(kube_cluster, namespace, name) -> dict | None:
    """the KafkaUseCase's Ready condition"""
    status = get(kube_cluster, namespace, "kafkausecase", name).get("status") or {}
    return next((c for c in status.get("conditions", []) if c["type"] == "Ready"), None)


def pods(kube_cluster, namespace, use_case, component) -> list[dict]:
    return get(kube_cluster, namespace, "pods", "-l",
               f"kafka.usecase.dev/use-case={use_case},app.kubernetes.io/component={component}")["items"]


def example(path: str) -> dict:
    doc = yaml.safe_load((ROOT / "examples" / path).read_text())
    doc["metadata"].pop("namespace", None)
    return doc


def test_zookeeper_use_case_runs_on_dedicated_nodes_and_becomes_ready(kube_cluster, namespace, operator):
    apply(kube_cluster, namespace, example("analytics/usecase.yaml"))

    condition = eventually(lambda: (c := ready(kube_cluster, namespace, "analytics")) and c["status"] == "True" and c,
                           timeout=120)

    assert condition["reason"] == "Ready"
    use_case = get(kube_cluster, namespace, "kafkausecase", "analytics")
    status = use_case["status"]
    assert (status["brokers"], status["quorum"], status["kafkaVersion"], status["mode"]) == ("3/3", "3/3", "3.9.2",
                                                                                              "zookeeper")
    assert status["bootstrapServers"] == f"analytics-kafka-bootstrap.{namespace}.svc:9092"
    assert status["observedGeneration"] == use_case["metadata"]["generation"]
    zookeeper_nodes = [p["spec"]["nodeName"] for p in pods(kube_cluster, namespace, "analytics", "zookeeper")]
    broker_nodes = [p["spec"]["nodeName"] for p in pods(kube_cluster, namespace, "analytics", "broker")]
    assert sorted(zookeeper_nodes) == [f"kwok-metadata-{i}" for i in range(3)]
    assert len(set(broker_nodes)) == 3 and all(n.startswith("kwok-broker-") for n in broker_nodes)
    uid = use_case["metadata"]["uid"]
    for kind in ("statefulsets", "services", "configmaps", "poddisruptionbudgets", "networkpolicies"):
        owned = [o for o in get(kube_cluster, namespace, kind, "-l", "kafka.usecase.dev/use-case=analytics")["items"]]
        assert owned, kind
        assert all(o["metadata"]["ownerReferences"][0]["uid"] == uid for o in owned), kind
    # The volumes are kept when the use case goes (deleteClaim false), so are the credentials they hold.
    credentials = get(kube_cluster, namespace, "secrets", "-l", "kafka.usecase.dev/use-case=analytics")["items"]
    assert credentials and all(not o["metadata"].get("ownerReferences") for o in credentials)


def uids(kube_cluster, namespace, component) -> set[str]:
    return {p["metadata"]["uid"] for p in pods(kube_cluster, namespace, "analytics", component)}


def patch(kube_cluster, namespace, name, spec_patch: dict) -> None:
    kube_cluster.kubectl("patch", "kafkausecase", name, "-n", namespace, "--type=merge", "-p",
                         json.dumps({"spec": spec_patch}))


def test_harmless_change_reconciles_without_touching_pods(kube_cluster, namespace, operator):
    before = uids(kube_cluster, namespace, "broker") | uids(kube_cluster, namespace, "zookeeper")
    patch(kube_cluster, namespace, "analytics", {"access": {"namespaces": {"from": "All"}}})
    generation = get(kube_cluster, namespace, "kafkausecase", "analytics")["metadata"]["generation"]

    def reconciled():
        """status caught up with the new generation"""
        return get(kube_cluster, namespace, "kafkausecase", "analytics")["status"].get("observedGeneration") == generation

    eventually(reconciled)
    policy = get(kube_cluster, namespace, "networkpolicy", "analytics-broker")
    assert policy["spec"]["ingress"][0]["from"] == [{"namespaceSelector": {}}]
    assert uids(kube_cluster, namespace, "broker") | uids(kube_cluster, namespace, "zookeeper") == before


def condition(kube_cluster, namespace, name, kind) -> dict:
    status = get(kube_cluster, namespace, "kafkausecase", name).get("status") or {}
    return next((c for c in status.get("conditions", []) if c["type"] == kind), {})


def test_a_config_change_restarts_no_broker_the_roller_cannot_ask_kafka_about(kube_cluster, namespace, operator):
    brokers, zookeeper = uids(kube_cluster, namespace, "broker"), uids(kube_cluster, namespace, "zookeeper")
    before = get(kube_cluster, namespace, "configmap", "analytics-kafka-config")["data"]
    patch(kube_cluster, namespace, "analytics", {"kafka": {"config": {"log.retention.hours": 96}}})

    def waiting():
        """the roller reports pods due and why it restarts none"""
        rolling = condition(kube_cluster, namespace, "analytics", "Rolling")
        return rolling if rolling.get("status") == "True" and rolling["reason"] == "KafkaUnknown" else None

    rolling = eventually(waiting, timeout=90)
    assert "3 pod(s) due" in rolling["message"], rolling
    data = get(kube_cluster, namespace, "configmap", "analytics-kafka-config")["data"]
    assert configs.pointers(data) == configs.pointers(before) and data["latest"] != before["latest"]
    assert "log.retention.hours=96" in configs.files_of(data, data["latest"])["server.properties"]
    assert uids(kube_cluster, namespace, "broker") == brokers and uids(kube_cluster, namespace, "zookeeper") == zookeeper


def test_a_manual_roll_of_the_use_case_marks_every_pod_once(kube_cluster, namespace, operator):
    kube_cluster.kubectl("annotate", "kafkausecase", "analytics", "-n", namespace,
                         "kafka.usecase.dev/manual-rolling-update=true")
    marked = lambda: all((p["metadata"].get("annotations") or {}).get("kafka.usecase.dev/manual-rolling-update")
                         == "true" for component in ("broker", "zookeeper")
                         for p in pods(kube_cluster, namespace, "analytics", component))
    eventually(marked, timeout=60)
    annotations = get(kube_cluster, namespace, "kafkausecase", "analytics")["metadata"].get("annotations") or {}
    assert "kafka.usecase.dev/manual-rolling-update" not in annotations  # handed to the pods, once
    # every pod is due now (6); without Kafka's word none restarts
    eventually(lambda: "6 pod(s) due" in condition(kube_cluster, namespace, "analytics", "Rolling").get("message", ""),
               timeout=60)


def test_a_paused_use_case_is_left_alone_until_resumed(kube_cluster, namespace, operator):
    kube_cluster.kubectl("annotate", "kafkausecase", "analytics", "-n", namespace,
                         "kafka.usecase.dev/pause-reconciliation=true")
    eventually(lambda: condition(kube_cluster, namespace, "analytics", "ReconciliationPaused").get("status") == "True")
    patch(kube_cluster, namespace, "analytics", {"access": {"namespaces": {"from": "Same"}}})
    kube_cluster.kubectl("delete", "networkpolicy", "analytics-zookeeper", "-n", namespace)
    policy = lambda: get(kube_cluster, namespace, "networkpolicy", "analytics-broker")["spec"]["ingress"][0]["from"]
    deadline = time.monotonic() + 12  # four timer passes
    while time.monotonic() < deadline:
        assert policy() == [{"namespaceSelector": {}}]
        time.sleep(1)
    assert kube_cluster.kubectl("get", "networkpolicy", "analytics-zookeeper", "-n", namespace,
                                "--ignore-not-found").strip() == ""

    kube_cluster.kubectl("annotate", "kafkausecase", "analytics", "-n", namespace,
                         "kafka.usecase.dev/pause-reconciliation-")
    eventually(lambda: policy() == [{"podSelector": {}}], timeout=60)
    eventually(lambda: condition(kube_cluster, namespace, "analytics", "ReconciliationPaused").get("status") == "False")


def test_a_deleted_child_comes_back_with_an_event(kube_cluster, namespace, operator):
    for kind, name in (("networkpolicy", "analytics-zookeeper"), ("poddisruptionbudget", "analytics-kafka"),
                       ("service", "analytics-kafka-bootstrap")):
        kube_cluster.kubectl("delete", kind, name, "-n", namespace, "--ignore-not-found")
        eventually(lambda: kube_cluster.kubectl("get", kind, name, "-n", namespace, "--ignore-not-found").strip(),
                   timeout=60)
    events = get(kube_cluster, namespace, "events", "--field-selector", "reason=ChildRestored")["items"]
    assert any("Service analytics-kafka-bootstrap was missing" in e["message"] for e in events), events


def test_version_downgrade_is_refused_and_changes_nothing(kube_cluster, namespace, operator):
    before = get(kube_cluster, namespace, "statefulset", "analytics-kafka")
    patch(kube_cluster, namespace, "analytics", {"kafka": {"version": "3.8.1"}})

    condition = eventually(lambda: (c := ready(kube_cluster, namespace, "analytics")) and c["status"] == "False" and c)

    assert condition["reason"] == "VersionDowngrade" and "3.9.2" in condition["message"]
    after = get(kube_cluster, namespace, "statefulset", "analytics-kafka")
    assert after["spec"]["template"] == before["spec"]["template"]
    events = get(kube_cluster, namespace, "events", "--field-selector", "involvedObject.name=analytics")["items"]
    assert any(e["reason"] == "VersionDowngrade" and e["type"] == "Warning" for e in events)
    patch(kube_cluster, namespace, "analytics", {"kafka": {"version": "3.9.2"}})  # back to the running version
    eventually(lambda: ready(kube_cluster, namespace, "analytics")["status"] == "True")


def test_surplus_quorum_pods_stay_pending_and_the_status_says_why(kube_cluster, namespace, operator):
    crowded = {"apiVersion": "kafka.usecase.dev/v1alpha1", "kind": "KafkaUseCase", "metadata": {"name": "crowded"},
               "spec": {"kafka": {"replicas": 1, "placement": example("realtime/usecase.yaml")["spec"]["kafka"]["placement"]},
                        "controllers": {"replicas": 5, "placement": example("realtime/usecase.yaml")["spec"]["controllers"]["placement"]}}}
    apply(kube_cluster, namespace, crowded)

    def settled():
        """3 controllers placed, and Ready=False naming exactly the 2 the scheduler cannot place"""
        controllers = pods(kube_cluster, namespace, "crowded", "controller")
        placed = [p for p in controllers if p["spec"].get("nodeName")]
        waiting = sorted(p["metadata"]["name"] for p in controllers if not p["spec"].get("nodeName"))
        condition = ready(kube_cluster, namespace, "crowded")
        named = condition and [name for name in waiting if f"{name}: " in condition["message"]]
        return len(placed) == 3 and len(waiting) == 2 and named == waiting and (placed, condition)

    placed, condition = eventually(settled, timeout=120)
    assert (condition["status"], condition["reason"]) == ("False", "Unschedulable")
    assert all(p["spec"]["nodeName"].startswith("kwok-metadata-") for p in placed)


def test_deleting_the_use_case_garbage_collects_every_child(kube_cluster, namespace, operator):
    kube_cluster.kubectl("delete", "kafkausecase", "crowded", "-n", namespace)

    def collected():
        """no object labelled for the use case is left but its credentials"""
        kinds = "statefulsets,services,configmaps,poddisruptionbudgets,networkpolicies,pods"
        return not get(kube_cluster, namespace, kinds, "-l", "kafka.usecase.dev/use-case=crowded")["items"]

    eventually(collected, timeout=120)
    # deleteClaim is false: the volumes stay, and with them the credentials their data was made with,
    # so a use case re-created with this name starts on them again.
    kept = get(kube_cluster, namespace, "secrets,pvc", "-l", "kafka.usecase.dev/use-case=crowded")["items"]
    assert {o["kind"] for o in kept} >= {"Secret"}


def test_kraft_use_case_becomes_ready_with_a_stable_cluster_id(kube_cluster, namespace, operator):
    apply(kube_cluster, namespace, example("realtime/usecase.yaml"))
    eventually(lambda: (c := ready(kube_cluster, namespace, "realtime")) and c["status"] == "True", timeout=120)
    status = get(kube_cluster, namespace, "kafkausecase", "realtime")["status"]
    conditions = {c["type"]: c["status"] for c in status["conditions"]}
    # (and Rolling, once the roller's first pass reported)
    assert {k: v for k, v in conditions.items() if k != "Rolling"} == {
        "Ready": "True", "ControllersReady": "True", "BrokersReady": "True"}
    assert status["clusterId"] and len(status["clusterId"]) == 22

    patch(kube_cluster, namespace, "realtime", {"access": {"namespaces": {"from": "All", "selector": None}}})
    generation = get(kube_cluster, namespace, "kafkausecase", "realtime")["metadata"]["generation"]
    eventually(lambda: get(kube_cluster, namespace, "kafkausecase", "realtime")["status"]["observedGeneration"]
               == generation)

    assert get(kube_cluster, namespace, "kafkausecase", "realtime")["status"]["clusterId"] == status["clusterId"]
    for statefulset in ("realtime-controllers", "realtime-kafka"):
        container = get(kube_cluster, namespace, "statefulset", statefulset)["spec"]["template"]["spec"]["containers"][0]
        assert {"name": "CLUSTER_ID", "value": status["clusterId"]} in container["env"]
    data = get(kube_cluster, namespace, "configmap", "realtime-controllers-config")["data"]
    controller_config = configs.files_of(data, data["latest"])
    assert "ANONYMOUS" not in controller_config["controller.properties"]


def test_the_credentials_follow_delete_claim_when_it_changes(kube_cluster, namespace, operator):
    """Kept volumes keep their credentials: Secrets owned by the use case beside kept volumes would be
    garbage-collected with it, and a cluster re-created on those volumes could not read its own data."""
    def owners():
        secrets = get(kube_cluster, namespace, "secrets", "-l", "kafka.usecase.dev/use-case=realtime")["items"]
        return {s["metadata"]["name"]: [o["kind"] for o in s["metadata"].get("ownerReferences") or []] for s in secrets}

    assert owners() == {"realtime-kafka-admin": [], "realtime-controller-credentials": []}
    # (the sizes as they are: a claim's size cannot change in place; 5Gi is the controllers' default)
    patch(kube_cluster, namespace, "realtime", {"kafka": {"storage": {"deleteClaim": True}},
                                                "controllers": {"storage": {"size": "5Gi", "deleteClaim": True}}})
    eventually(lambda: set(map(tuple, owners().values())) == {("KafkaUseCase",)}, timeout=60)
    patch(kube_cluster, namespace, "realtime", {"controllers": {"storage": {"size": "5Gi", "deleteClaim": False}}})
    eventually(lambda: set(map(tuple, owners().values())) == {()}, timeout=60)


def test_external_use_case_reports_its_admin_connection(kube_cluster, kafka_kraft, namespace, operator):
    use_case = yaml.safe_load((ROOT / "examples" / "devstack" / "usecase.yaml").read_text())
    use_case["metadata"]["namespace"] = namespace
    kube.apply_external_admin_secret(kube_cluster.stack, kafka_kraft.client_config(), namespace, "devstack-admin")
    apply(kube_cluster, namespace, use_case)

    condition = eventually(lambda: (c := ready(kube_cluster, namespace, "devstack")) and c["status"] == "True" and c)
    assert condition["reason"] == "Connected"

    kube.apply_external_admin_secret(kube_cluster.stack, kafka_kraft.client_config(password="wrong"), namespace,
                                     "devstack-admin")
    condition = eventually(lambda: (c := ready(kube_cluster, namespace, "devstack")) and c["status"] == "False" and c)
    assert condition["reason"] == "Unreachable" and "authentication failed" in condition["message"]
    assert "wrong" not in json.dumps(get(kube_cluster, namespace, "kafkausecase", "devstack")["status"])


def test_operator_stops_cleanly_on_sigterm(operator):
    operator.process.send_signal(signal.SIGTERM)

    assert operator.process.wait(timeout=30) == 0
