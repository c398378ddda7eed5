"""No rule of the chart's RBAC is dead weight: each rule is removed from the rendered roles in turn,
the operator runs the examples as the chart's ServiceAccount, and the API server's audit log must
show a 403 for that rule's resources and verbs — and for nothing else. In both modes: every
namespace (ClusterRole) and a namespace list (Roles). Slow (a run per rule): `make test-slow`."""

from __future__ import annotations

import copy
import json

import pytest
import yaml

from audit import AuditLog
from chart import CHART, OPERATOR_NAMESPACE, chart_operator, render
from devstack import kube
from operator_process import OperatorProcess
from test_helm_devstack import VALUES, Flow, settled
from waiting import eventually

pytestmark = [pytest.mark.slow, pytest.mark.kube, pytest.mark.kafka, pytest.mark.e2e]
RELEASE = "rbac"
FULLNAME = f"{RELEASE}-kafka-usecase-operator"
USER = f"system:serviceaccount:{OPERATOR_NAMESPACE}:{FULLNAME}"
RBAC_KINDS = ("ServiceAccount", "ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding")


def grants(rule: dict) -> set[tuple[str, str, str]]:
    return {(verb, group, resource) for verb in rule["verbs"] for group in rule["apiGroups"]
            for resource in rule["resources"]}


def rules_of(docs: list[dict]) -> list[tuple[str, str, int]]:
    """(kind, name, rule index) of every distinct rule; a namespaced rule counts once for all Roles."""
    return sorted({(doc["kind"], doc["metadata"]["name"], index) for doc in docs
                   if doc["kind"] in ("Role", "ClusterRole") for index in range(len(doc["rules"]))})


def without(docs: list[dict], kind: str, name: str, index: int) -> list[dict]:
    docs = copy.deepcopy(docs)
    for doc in docs:
        if (doc["kind"], doc["metadata"]["name"]) == (kind, name):
            del doc["rules"][index]
    return docs


def run_examples(kube_cluster, kafka, tmp, mode: str, removed: tuple[str, str, int] | None, flows: list) -> tuple:
    """One run: fresh namespaces, the RBAC minus one rule, the operator as the ServiceAccount,
    every example applied and a password rotated. Returns (the removed rule, the denials)."""
    flow = Flow(kube_cluster, kafka, tmp)
    flows.append(flow)
    docs = flow.examples()
    flow.apply([d for d in docs if d["kind"] == "Namespace"])
    values = VALUES | ({"watchNamespaces": sorted(flow.ns.values())} if mode == "roles" else {})
    rendered = render(kube_cluster, RELEASE, values)
    rbac = [d for d in rendered if d["kind"] in RBAC_KINDS]
    rule = None
    if removed:
        kind, name, index = removed
        rule = next(d for d in rbac if (d["kind"], d["metadata"]["name"]) == (kind, name))["rules"][index]
        rbac = without(rbac, *removed)
    flow.kubectl("delete", "lease", FULLNAME, "-n", OPERATOR_NAMESPACE, "--ignore-not-found")
    flow.kubectl("apply", "-f", "-", input=yaml.safe_dump_all(rbac))
    audit = AuditLog(kube_cluster.audit_log)
    mark = audit.mark()
    deployment = next(d for d in rendered if d["kind"] == "Deployment")
    operator = chart_operator(kube_cluster, deployment, tmp / f"{mode}-{len(flows)}.log", f"rbac-{len(flows)}")
    operator.start()
    try:
        kube.apply_external_admin_secret(kube_cluster.stack, kafka.client_config(), flow.ns["devstack"],
                                         "devstack-admin")
        flow.apply([d for d in docs if d["kind"] != "Namespace"])
        try:
            eventually(lambda: settled(flow), timeout=60 if removed else 120)
        except AssertionError:
            if not removed:
                raise
        flow.kubectl("annotate", "kafkauser", "order-service", "-n", flow.ns["devstack"],
                     "kafka.usecase.dev/rotate-password=1", "--overwrite")
        try:
            eventually(lambda: (json.loads(flow.kubectl("get", "kafkauser", "order-service", "-n", flow.ns["devstack"],
                                                        "-o", "json")).get("status") or {}).get("passwordRotation"),
                       timeout=20)
        except AssertionError:
            if not removed:
                raise
        denials = audit.denials(USER, mark)
    finally:
        operator.stop(kill_after=True)
        flow.kubectl("delete", "-f", "-", "--ignore-not-found", input=yaml.safe_dump_all(rbac))
        # Each run's use cases hold simulated nodes' CPU and memory: gone before the next run.
        remove_namespaces(kube_cluster, list(flow.ns.values()), tmp / f"cleanup-{len(flows)}.log")
    return rule, denials


def remove_namespaces(kube_cluster, namespaces: list[str], log) -> None:
    """Delete namespaces with an operator (full rights) running to release the finalizers."""
    cleaner = OperatorProcess(kube_cluster.kubeconfig, namespaces, log).start()
    try:
        kube_cluster.kubectl("delete", "namespace", *namespaces, "--ignore-not-found", "--timeout=240s", timeout=250)
    finally:
        cleaner.stop()


@pytest.fixture(scope="module")
def runs(kube_cluster, kafka_kraft, tmp_path_factory):
    flows: list[Flow] = []
    tmp = tmp_path_factory.mktemp("rbac")
    kube_cluster.kubectl("apply", "--server-side", "--force-conflicts", "-f", str(CHART / "crds"))
    kube_cluster.kubectl("wait", "--for=condition=Established", "crd", "-l",
                         "app.kubernetes.io/part-of=kafka-usecase-operator", "--timeout=60s")
    kube_cluster.kubectl("apply", "-f", "-", input=json.dumps(
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": OPERATOR_NAMESPACE}}))
    yield lambda mode, removed: run_examples(kube_cluster, kafka_kraft, tmp, mode, removed, flows)


@pytest.mark.timeout(2700)  # ~80 s per rule, 14 runs per mode
@pytest.mark.parametrize("mode", ["cluster", "roles"])
def test_every_rule_is_needed_for_exactly_what_it_grants(kube_cluster, runs, mode):
    _, denials = runs(mode, None)
    assert denials == set(), "with every rule the operator is never refused"
    probe = render(kube_cluster, RELEASE, VALUES | ({"watchNamespaces": ["a"]} if mode == "roles" else {}))
    dead, unexplained = [], {}
    for removed in rules_of([d for d in probe if d["kind"] in RBAC_KINDS]):
        rule, denials = runs(mode, removed)
        refused, granted = {(d.verb, d.group, d.resource) for d in denials}, grants(rule)
        name = f"{removed[0]} {removed[1]} rule {removed[2]}: {sorted(granted)}"
        if not refused:
            dead.append(name)
        if refused - granted:
            unexplained[name] = sorted(refused - granted)

    assert not dead, f"rules whose removal refused nothing: {dead}"
    assert not unexplained, f"403s the removed rule does not explain: {unexplained}"
