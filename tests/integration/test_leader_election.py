"""Two operator processes with leader election on (as the chart runs them): only the Lease holder
acts, the other stands by answering its liveness probe; when the leader is SIGKILLed the standby
takes over once the Lease expires, and on a clean stop (SIGTERM) it takes over at once. Who did
what is read from the API server's audit log, by each process's User-Agent."""

from __future__ import annotations

import json
import time
import uuid
from pathlib import Path

import pytest

from audit import AuditLog
from operator_process import OperatorProcess
from waiting import eventually

pytestmark = pytest.mark.kube
ROOT = Path(__file__).parents[2]
ADMIN = "admin"
LEASE_SECONDS = 15


@pytest.fixture(scope="module")
def env(kube_cluster, tmp_path_factory):
    namespace = f"le-{uuid.uuid4().hex[:6]}"
    kube_cluster.kubectl("apply", "--server-side", "--force-conflicts", "-f", str(ROOT / "crds"))
    kube_cluster.kubectl("wait", "--for=condition=Established", "crd", "-l",
                         "app.kubernetes.io/part-of=kafka-usecase-operator", "--timeout=60s")
    kube_cluster.kubectl("create", "namespace", namespace)
    tmp = tmp_path_factory.mktemp("leader")

    def operator(name: str) -> OperatorProcess:
        return OperatorProcess(kube_cluster.kubeconfig, [namespace], tmp / f"{name}.log", {
            "KUO_LEADER_ELECTION": "true", "KUO_LEASE_NAME": f"kuo-{namespace}", "KUO_OPERATOR_NAMESPACE": namespace,
            "KUO_POD_NAME": name})

    yield kube_cluster, namespace, operator
    cleaner = operator("cleaner").start()
    try:
        kube_cluster.kubectl("delete", "namespace", namespace, "--timeout=120s")
    finally:
        cleaner.stop()


def topic(kube_cluster, namespace: str, name: str) -> None:
    """A KafkaTopic of a use case that does not exist: the operator that acts reports UseCaseNotFound."""
    kube_cluster.kubectl("apply", "-n", namespace, "-f", "-", input=json.dumps({
        "apiVersion": "kafka.usecase.dev/v1alpha1", "kind": "KafkaTopic", "metadata": {"name": name},
        "spec": {"useCase": {"name": "nowhere"}, "partitions": 1}}))


def reported(kube_cluster, namespace: str, name: str) -> bool:
    """the topic has a Ready condition written by an operator"""
    found = json.loads(kube_cluster.kubectl("get", "kafkatopic", name, "-n", namespace, "-o", "json"))
    return any(c["type"] == "Ready" for c in (found.get("status") or {}).get("conditions", []))


def holder(kube_cluster, namespace: str) -> str:
    found = kube_cluster.kubectl("get", "lease", f"kuo-{namespace}", "-n", namespace, "-o",
                                 "jsonpath={.spec.holderIdentity}", "--ignore-not-found")
    return found.strip()


def resources_touched(audit: AuditLog, since: int, process: str) -> set[str]:
    return {e.get("objectRef", {}).get("resource", "") for e in audit.requests(ADMIN, since, f"({process})")}


def test_only_the_lease_holder_acts_and_the_standby_takes_over(env):
    kube_cluster, namespace, operator = env
    audit = AuditLog(kube_cluster.audit_log)
    mark = audit.mark()
    first = operator("op-a").start()
    eventually(lambda: holder(kube_cluster, namespace).startswith("op-a_"), timeout=30)
    second = operator("op-b").start()  # healthy (its probe answers) while it stands by
    third = operator("op-c")
    try:
        topic(kube_cluster, namespace, "first")
        eventually(lambda: reported(kube_cluster, namespace, "first"), timeout=60)
        time.sleep(3)  # a few renewals and standby polls

        assert resources_touched(audit, mark, "op-b") == {"leases"}
        assert "kafkatopics" in resources_touched(audit, mark, "op-a")
        assert "standing by; lease" in second.log.read_text()

        mark = audit.mark()
        killed_at = time.monotonic()
        first.kill()  # no chance to release the Lease
        eventually(lambda: holder(kube_cluster, namespace).startswith("op-b_"), timeout=LEASE_SECONDS + 15)
        took_over = time.monotonic() - killed_at
        topic(kube_cluster, namespace, "second")
        eventually(lambda: reported(kube_cluster, namespace, "second"), timeout=60)

        assert took_over >= LEASE_SECONDS - 3  # not before the killed leader's Lease ran out
        assert "kafkatopics" in resources_touched(audit, mark, "op-b")

        third.start()
        time.sleep(3)
        stopped_at = time.monotonic()
        second.stop()  # SIGTERM: kopf stops, then the Lease is released
        eventually(lambda: holder(kube_cluster, namespace).startswith("op-c_"), timeout=15)

        assert time.monotonic() - stopped_at < LEASE_SECONDS
        second.assert_no_traceback()
    finally:
        for process in (first, second, third):
            process.stop()
