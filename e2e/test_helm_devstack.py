"""A user's whole flow with the Helm chart, on the devstack (the kind workflow in e2e/ runs the
same flow with the image in a real cluster):

helm install into the real API server -> the operator runs as the chart's ServiceAccount with the
chart's configuration -> every example reconciled, a generated user produces and consumes on the
devstack's brokers, and the API server's audit log holds no 403 for the ServiceAccount -> helm
upgrade to a namespace list (Roles instead of a ClusterRole), again without a 403 -> helm uninstall
removes the operator and keeps the CRDs and the users' objects.

Every status the operator wrote on the way is recorded; test_argocd_health judges them with the
shipped Argo CD health checks."""

from __future__ import annotations

import base64
import json
import subprocess
import time
import uuid
from pathlib import Path

import pytest
import yaml
from confluent_kafka import KafkaError
from confluent_kafka.admin import AdminClient

from argocd_health import health
from audit import AuditLog
from chart import CHART, OPERATOR_NAMESPACE, chart_operator, helm, values_args
from devstack import kube, probes
from operator_process import OperatorProcess
from waiting import Pending, eventually

pytestmark = [pytest.mark.kube, pytest.mark.kafka, pytest.mark.e2e]
ROOT = Path(__file__).parents[1]
RELEASE = "kuo"
FULLNAME = f"{RELEASE}-kafka-usecase-operator"
SERVICE_ACCOUNT = f"system:serviceaccount:{OPERATOR_NAMESPACE}:{FULLNAME}"
# Short timeouts so reconciling the simulated clusters' topics (no broker runs in a kwok pod) ends quickly.
VALUES = {"operator.kafkaTimeoutSeconds": 5, "operator.retrySeconds": 3, "operator.externalCheckSeconds": 5,
          "operator.resyncSeconds": 5}
KINDS = ("kafkausecases", "kafkatopics", "kafkausers", "kafkaacls")


class Flow:
    def __init__(self, kube_cluster, kafka, tmp: Path):
        self.kube, self.kafka, self.tmp = kube_cluster, kafka, tmp
        suffix = uuid.uuid4().hex[:5]
        self.ns = {old: f"{old}-{suffix}" for old in ("kafka-analytics", "kafka-realtime", "team-pricing", "devstack")}
        self.audit = AuditLog(kube_cluster.audit_log)
        self.operator = None
        self.recorded: list[dict] = []  # every distinct status the operator wrote, for the health checks
        self._seen: set[str] = set()

    def kubectl(self, *args: str, input: str | None = None) -> str:
        return self.kube.kubectl(*args, input=input)

    def examples(self) -> list[dict]:
        """Every example, in this flow's namespaces; the devstack's topics prefixed with its namespace
        (brokers are shared by every run) and its use case pointed at the devstack's brokers."""
        devstack = self.ns["devstack"]
        docs = []
        for path in ["namespaces.yaml", "devstack/namespace.yaml", "analytics/usecase.yaml", "analytics/topics.yaml",
                     "analytics/users.yaml", "realtime/usecase.yaml", "realtime/team-pricing.yaml",
                     "devstack/usecase.yaml", "devstack/topics-users-acls.yaml"]:
            docs += [d for d in yaml.safe_load_all((ROOT / "examples" / path).read_text()) if d]
        for doc in docs:
            meta, spec = doc["metadata"], doc.get("spec", {})
            if doc["kind"] == "Namespace":
                meta["name"] = self.ns[meta["name"]]
                continue
            meta["namespace"] = self.ns[meta["namespace"]]
            if spec.get("useCase", {}).get("namespace"):
                spec["useCase"]["namespace"] = self.ns[spec["useCase"]["namespace"]]
            if spec.get("external"):
                spec["external"]["bootstrapServers"] = self.kafka.bootstrap_servers
            if meta["namespace"] == devstack:
                if doc["kind"] == "KafkaTopic":
                    spec["topicName"] = f"{devstack}.{meta['name']}"
                for rule in spec.get("acls", []):
                    if rule["resource"]["type"] == "topic":
                        rule["resource"]["name"] = f"{devstack}.{rule['resource']['name']}"
        return docs

    def apply(self, docs: list[dict]) -> None:
        self.kubectl("apply", "-f", "-", input=yaml.safe_dump_all(docs))

    def objects(self) -> list[dict]:
        found = json.loads(self.kubectl("get", ",".join(KINDS), "-A", "-o", "json"))["items"]
        mine = [o for o in found if o["metadata"]["namespace"] in self.ns.values()]
        for obj in mine:
            key = json.dumps([obj["kind"], obj["metadata"]["name"], obj["metadata"]["generation"],
                              obj.get("status")], sort_keys=True)
            if key not in self._seen:
                self._seen.add(key)
                self.recorded.append({k: obj[k] for k in ("apiVersion", "kind", "metadata") if k in obj}
                                     | {"status": obj.get("status")})
        return mine

    def ready(self, obj: dict) -> dict:
        return next((c for c in (obj.get("status") or {}).get("conditions", []) if c["type"] == "Ready"), {})

    def secret(self, namespace: str, name: str) -> dict[str, str]:
        found = json.loads(self.kubectl("get", "secret", name, "-n", namespace, "-o", "json"))
        return {k: base64.b64decode(v).decode() for k, v in found["data"].items()}

    def start_operator(self, pod_name: str) -> None:
        deployment = json.loads(self.kubectl("get", "deployment", FULLNAME, "-n", OPERATOR_NAMESPACE, "-o", "json"))
        self.operator = chart_operator(self.kube, deployment, self.tmp / f"{pod_name}.log", pod_name).start()

    def stop_operator(self) -> None:
        if self.operator:
            self.operator.stop()
            self.operator.assert_no_traceback()
            self.operator = None


def settled(flow: Flow) -> Pending:
    """Every example object reconciled for its current generation: the devstack's and the use
    cases Ready; the simulated clusters' topics and users report that their brokers cannot be reached."""
    objects = flow.objects()
    devstack, pending = flow.ns["devstack"], Pending()
    for obj in objects:
        condition, meta = flow.ready(obj), obj["metadata"]
        expected = ("True",) if obj["kind"] == "KafkaUseCase" or meta["namespace"] == devstack else \
            ("False", "ClusterNotReady")
        if (obj.get("status") or {}).get("observedGeneration") != meta["generation"] or \
                (condition.get("status"), condition.get("reason"))[:len(expected)] != expected:
            pending[f"{obj['kind']} {meta['namespace']}/{meta['name']}"] = condition.get("reason")
    return pending


@pytest.fixture(scope="module")
def flow(kube_cluster, kafka_kraft, tmp_path_factory):
    f = Flow(kube_cluster, kafka_kraft, tmp_path_factory.mktemp("helm-e2e"))
    yield f
    f.stop_operator()
    cleaner = OperatorProcess(kube_cluster.kubeconfig, list(f.ns.values()), f.tmp / "teardown.log").start()
    try:  # while an operator runs: it releases what a failed test left behind
        kube_cluster.kubectl("delete", "namespace", *f.ns.values(), "--ignore-not-found", "--timeout=120s",
                             timeout=130)
    finally:
        cleaner.stop()
        helm(kube_cluster, "uninstall", RELEASE, "-n", OPERATOR_NAMESPACE, "--ignore-not-found")


def test_rendered_chart_passes_server_side_dry_run_in_both_rbac_modes(flow):
    flow.apply([{"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": OPERATOR_NAMESPACE}}])
    for extra in ({}, {"watchNamespaces": ["default", OPERATOR_NAMESPACE]}):
        rendered = helm(flow.kube, "template", RELEASE, str(CHART), "-n", OPERATOR_NAMESPACE, "--include-crds",
                        *values_args(extra))
        out = flow.kubectl("apply", "--dry-run=server", "-f", "-", input=rendered)
        assert f"deployment.apps/{FULLNAME} created (server dry run)" in out
        names = {line.split()[0] for line in out.splitlines()}
        assert (f"role.rbac.authorization.k8s.io/{FULLNAME}" in names) == bool(extra)
        assert (f"clusterrole.rbac.authorization.k8s.io/{FULLNAME}" in names) != bool(extra)


def test_the_forwarder_daemonset_renders_for_the_server_and_needs_a_user_secret(flow):
    values = {"forwarder.enabled": True, "forwarder.userSecret": "twostep-forwarder",
              "forwarder.audit.userSecret": "twostep-audit"}
    rendered = helm(flow.kube, "template", RELEASE, str(CHART), "-n", OPERATOR_NAMESPACE, *values_args(values))
    out = flow.kubectl("apply", "--dry-run=server", "-f", "-", input=rendered)
    assert f"daemonset.apps/{FULLNAME}-forwarder created (server dry run)" in out
    daemonset = next(d for d in yaml.safe_load_all(rendered) if d and d["kind"] == "DaemonSet")
    pod = daemonset["spec"]["template"]["spec"]
    assert pod["volumes"][0]["hostPath"] == {"path": "/var/lib/twostep", "type": "DirectoryOrCreate"}
    assert "--audit-sasl-password-file=/var/run/twostep/audit/password" in pod["containers"][0]["args"]
    missing = subprocess.run([kube.binary("helm"), "template", RELEASE, str(CHART), "--set", "forwarder.enabled=true"],
                             capture_output=True, text=True, timeout=60)
    assert missing.returncode != 0 and "forwarder.userSecret is required" in missing.stderr


def test_chart_lints_clean_in_both_rbac_modes(flow):
    for extra in ({}, {"watchNamespaces": ["a", "b"]}):
        out = helm(flow.kube, "lint", str(CHART), "--strict", *values_args(extra))
        assert "1 chart(s) linted, 0 chart(s) failed" in out and "[WARNING]" not in out, out


def test_misspelt_value_is_rejected_by_the_schema(flow):
    result = subprocess.run([kube.binary("helm"), "template", RELEASE, str(CHART), "--set", "watchNamespace={a}"],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode != 0 and "additional properties 'watchNamespace' not allowed" in result.stderr


def test_install_and_every_example_reconciled_as_the_charts_service_account(flow):
    helm(flow.kube, "install", RELEASE, str(CHART), "-n", OPERATOR_NAMESPACE, "--create-namespace",
         *values_args(VALUES))
    mark = flow.audit.mark()
    flow.start_operator("operator-0")
    docs = flow.examples()
    flow.apply([d for d in docs if d["kind"] == "Namespace"])
    kube.apply_external_admin_secret(flow.kube.stack, flow.kafka.client_config(), flow.ns["devstack"], "devstack-admin")
    flow.apply([d for d in docs if d["kind"] != "Namespace"])

    eventually(lambda: settled(flow), timeout=180)

    devstack = flow.ns["devstack"]
    writer, reader = flow.secret(devstack, "order-service"), flow.secret(devstack, "billing")
    bootstrap = flow.kafka.bootstrap_servers
    for user in (writer, reader):
        eventually(lambda: probes.authenticates_everywhere(bootstrap, user["username"], user["password"]))
    assert probes.produce_as(bootstrap, writer["username"], writer["password"], f"{devstack}.orders") is None
    assert probes.consume_as(bootstrap, reader["username"], reader["password"], f"{devstack}.orders",
                             "billing-e2e") is None
    assert probes.produce_as(bootstrap, writer["username"], writer["password"], f"{devstack}.payments") == \
        KafkaError.TOPIC_AUTHORIZATION_FAILED
    assert flow.audit.denials(SERVICE_ACCOUNT, mark) == set()


def test_a_change_kafka_refuses_is_reported_degraded(flow):
    """A real permanent failure for the recorded statuses: fewer partitions is NotSupported."""
    devstack = flow.ns["devstack"]
    flow.kubectl("patch", "kafkatopic", "orders", "-n", devstack, "--type=merge", "-p", '{"spec":{"partitions":1}}')

    def refused():
        """the topic reports NotSupported"""
        return any(o["kind"] == "KafkaTopic" and o["metadata"]["name"] == "orders" and
                   flow.ready(o).get("reason") == "NotSupported" for o in flow.objects())

    eventually(refused, timeout=60)
    flow.kubectl("patch", "kafkatopic", "orders", "-n", devstack, "--type=merge", "-p", '{"spec":{"partitions":3}}')
    eventually(lambda: settled(flow), timeout=60)


def test_upgrade_to_a_namespace_list_runs_on_roles_without_a_403(flow):
    namespaces = sorted(flow.ns.values())
    flow.stop_operator()
    helm(flow.kube, "upgrade", RELEASE, str(CHART), "-n", OPERATOR_NAMESPACE, "--reuse-values",
         *values_args({"watchNamespaces": namespaces, "operator.resyncSeconds": 7}))

    roles = json.loads(flow.kubectl("get", "roles", "-A", "-l", f"app.kubernetes.io/instance={RELEASE}",
                                    "-o", "json"))["items"]
    assert {r["metadata"]["namespace"] for r in roles if r["metadata"]["name"] == FULLNAME} == set(namespaces)
    assert not flow.kubectl("get", "clusterrole", FULLNAME, "--ignore-not-found").strip()
    env = {e["name"]: e.get("value") for e in json.loads(flow.kubectl(
        "get", "deployment", FULLNAME, "-n", OPERATOR_NAMESPACE, "-o", "json"))["spec"]["template"]["spec"][
        "containers"][0]["env"]}
    assert (env["KUO_NAMESPACES"], env["KUO_RESYNC_SECONDS"]) == (",".join(namespaces), "7")

    mark = flow.audit.mark()
    flow.start_operator("operator-1")  # resumes every object: each kind read and written again
    devstack = flow.ns["devstack"]
    flow.apply([{"apiVersion": "kafka.usecase.dev/v1alpha1", "kind": "KafkaTopic",
                 "metadata": {"name": "audit", "namespace": devstack},
                 "spec": {"useCase": {"name": "devstack"}, "topicName": f"{devstack}.audit", "partitions": 2}}])
    eventually(lambda: settled(flow), timeout=120)
    time.sleep(8)  # one resync pass (7 s) over everything, as the Roles allow
    assert flow.audit.denials(SERVICE_ACCOUNT, mark) == set()


def test_deleting_the_examples_releases_every_finalizer_without_a_403(flow):
    mark = flow.audit.mark()
    devstack = flow.ns["devstack"]
    flow.kubectl("delete", "kafkatopics,kafkausers,kafkaacls", "--all", "-n", devstack, "--wait=false")
    for namespace in sorted(set(flow.ns.values()) - {devstack}):
        flow.kubectl("delete", "kafkausecases,kafkatopics,kafkausers,kafkaacls", "--all", "-n", namespace,
                     "--wait=false")

    def gone():
        """every example object deleted (its finalizer released)"""
        return Pending({f"{o['kind']} {o['metadata']['namespace']}/{o['metadata']['name']}": "still there"
                        for o in flow.objects()
                        if o["metadata"]["namespace"] != devstack or o["kind"] != "KafkaUseCase"})

    eventually(gone, timeout=90)
    topics = AdminClient(flow.kafka.client_config()).list_topics(timeout=10).topics
    assert f"{devstack}.payments" not in topics  # deletionPolicy: Delete
    assert f"{devstack}.orders" in topics  # Retain, the default
    assert flow.audit.denials(SERVICE_ACCOUNT, mark) == set()


def test_uninstall_removes_the_operator_and_keeps_crds_and_user_objects(flow):
    flow.stop_operator()
    helm(flow.kube, "uninstall", RELEASE, "-n", OPERATOR_NAMESPACE, "--wait")

    for kind in ("deployment", "serviceaccount", "service"):
        assert not flow.kubectl("get", kind, "-n", OPERATOR_NAMESPACE, "-l", f"app.kubernetes.io/instance={RELEASE}",
                                "-o", "name").strip(), kind
    assert not flow.kubectl("get", "roles,rolebindings", "-A", "-l", f"app.kubernetes.io/instance={RELEASE}",
                            "-o", "name").strip()
    crds = flow.kubectl("get", "crd", "-l", "app.kubernetes.io/part-of=kafka-usecase-operator", "-o", "name").split()
    assert len(crds) == 4
    assert flow.kubectl("get", "kafkausecase", "devstack", "-n", flow.ns["devstack"], "-o", "name").strip()


# What each Ready reason means to someone watching Argo CD: the spec the health checks implement.
NEEDS_A_PERSON = {"InvalidSpec", "NotAllowed", "Conflict", "NotSupported", "KafkaError", "Unschedulable",
                  "Unreachable", "QuorumShrink", "VersionDowngrade", "TooFewBrokers"}


def test_argocd_health_of_the_recorded_statuses(flow):
    """Runs last: judges every distinct status the operator wrote during this flow."""
    judged = {}
    for obj in flow.recorded:
        status, message = health(obj)
        meta, condition = obj["metadata"], next((c for c in (obj.get("status") or {}).get("conditions", [])
                                                 if c["type"] == "Ready"), None)
        current = (obj.get("status") or {}).get("observedGeneration") == meta["generation"] and condition and \
            condition.get("observedGeneration", meta["generation"]) == meta["generation"]
        if not current:
            expected = "Progressing"
        elif condition["status"] == "True":
            expected = "Healthy"
        else:
            expected = "Degraded" if condition["reason"] in NEEDS_A_PERSON else "Progressing"
        assert status == expected, (obj, message)
        judged.setdefault(status, set()).add(condition["reason"] if condition else None)
    assert {"Healthy", "Progressing", "Degraded"} <= set(judged), judged
    assert "NotSupported" in judged["Degraded"] and "ClusterNotReady" in judged["Progressing"]
