"""The devstack's control plane is real: CRDs with CEL validation, RBAC with service-account
tokens, the scheduler placing pods on dedicated kwok nodes, the garbage collector following
ownerReferences, and helm installing a chart."""

import copy
import json
import subprocess
import uuid

import pytest
from kubernetes import client, config

from devstack import kube
from waiting import eventually

pytestmark = pytest.mark.kube

CRD = """
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: widgets.smoke.devstack.test
spec:
  group: smoke.devstack.test
  scope: Namespaced
  names: {kind: Widget, plural: widgets, singular: widget}
  versions:
    - name: v1
      served: true
      storage: true
      schema:
        openAPIV3Schema:
          type: object
          properties:
            spec:
              type: object
              properties:
                size: {type: integer}
                config:
                  type: object
                  maxProperties: 200
                  additionalProperties: {type: string, maxLength: 1024}
                  x-kubernetes-validations:
                    - rule: "self.all(k, k != 'listeners')"
                      message: "spec.config.listeners is owned by the operator"
"""


def widget(name: str, config: dict) -> str:
    return json.dumps({"apiVersion": "smoke.devstack.test/v1", "kind": "Widget",
                       "metadata": {"name": name}, "spec": {"size": 3, "config": config}})


@pytest.fixture(scope="module")
def api(kube_cluster) -> client.ApiClient:
    return config.new_client_from_config(config_file=str(kube_cluster.kubeconfig))


@pytest.fixture
def namespace(kube_cluster):
    name = f"smoke-{uuid.uuid4().hex[:8]}"
    kube_cluster.kubectl("create", "namespace", name)
    yield name
    kube_cluster.kubectl("delete", "namespace", name, "--wait=false")


def kubectl_raw(kube_cluster, *args, input=None) -> subprocess.CompletedProcess:
    return subprocess.run([kube.binary("kubectl"), "--kubeconfig", str(kube_cluster.kubeconfig), *args],
                          input=input, capture_output=True, text=True, timeout=60)


@pytest.fixture(scope="module")
def widget_crd(kube_cluster):
    kube_cluster.kubectl("apply", "-f", "-", input=CRD)
    kube_cluster.kubectl("wait", "--for=condition=Established", "crd/widgets.smoke.devstack.test", "--timeout=60s")


def test_default_nodes_are_ready(kube_cluster):
    nodes = json.loads(kube_cluster.kubectl("get", "nodes", "-o", "json"))["items"]
    ready = {n["metadata"]["name"] for n in nodes
             if any(c["type"] == "Ready" and c["status"] == "True" for c in n["status"]["conditions"])}

    assert ready == {n.name for n in kube.default_nodes()}


def test_nodes_keep_their_leases_renewed(kube_cluster):
    """Without renewed node Leases the node lifecycle controller declares every kwok node
    NotReady ~50 s after start and every pod on it NotReady for good (a CI failure, found late)."""
    def renewals() -> dict[str, str]:
        leases = json.loads(kube_cluster.kubectl("get", "leases", "-n", "kube-node-lease", "-o", "json"))["items"]
        return {lease["metadata"]["name"]: lease["spec"]["renewTime"] for lease in leases}

    first = renewals()
    assert set(first) == {n.name for n in kube.default_nodes()}

    def all_renewed():
        """every node Lease renewed again"""
        now = renewals()
        return all(now[name] != first[name] for name in first)

    eventually(all_renewed, timeout=30)


def test_custom_object_is_applied_and_read_back(kube_cluster, widget_crd, namespace):
    kube_cluster.kubectl("apply", "-n", namespace, "-f", "-", input=widget("good", {"retention.ms": "1000"}))

    stored = json.loads(kube_cluster.kubectl("get", "widget", "good", "-n", namespace, "-o", "json"))

    assert stored["spec"] == {"size": 3, "config": {"retention.ms": "1000"}}


def test_cel_rule_rejects_a_bad_object_with_its_message(kube_cluster, widget_crd, namespace):
    result = kubectl_raw(kube_cluster, "apply", "-n", namespace, "-f", "-",
                         input=widget("bad", {"listeners": "PLAINTEXT://:9092"}))

    assert result.returncode != 0
    assert "spec.config.listeners is owned by the operator" in result.stderr
    assert kubectl_raw(kube_cluster, "get", "widget", "bad", "-n", namespace).returncode != 0


def test_service_account_token_needs_a_role_binding(api, namespace):
    core = client.CoreV1Api(api)
    core.create_namespaced_service_account(namespace, client.V1ServiceAccount(metadata=client.V1ObjectMeta(name="reader")))
    request = client.AuthenticationV1TokenRequest(spec=client.V1TokenRequestSpec(
        audiences=["https://kubernetes.default.svc.cluster.local"], expiration_seconds=600))
    token = core.create_namespaced_service_account_token("reader", namespace, request).status.token
    # Act as the ServiceAccount: the kubeconfig loader's refresh hook would otherwise silently
    # put the admin token back, and this test would pass as admin.
    sa_config = copy.copy(api.configuration)
    sa_config.refresh_api_key_hook = None
    sa_config.api_key = {"BearerToken": f"Bearer {token}"}
    as_reader = client.ApiClient(sa_config)
    review = client.AuthenticationV1Api(as_reader).create_self_subject_review(client.V1SelfSubjectReview())
    assert review.status.user_info.username == f"system:serviceaccount:{namespace}:reader"

    with pytest.raises(client.ApiException) as denied:
        client.CoreV1Api(as_reader).list_namespaced_config_map(namespace)
    assert denied.value.status == 403

    rbac = client.RbacAuthorizationV1Api(api)
    rbac.create_namespaced_role(namespace, client.V1Role(
        metadata=client.V1ObjectMeta(name="read-configmaps"),
        rules=[client.V1PolicyRule(api_groups=[""], resources=["configmaps"], verbs=["get", "list"])]))
    rbac.create_namespaced_role_binding(namespace, client.V1RoleBinding(
        metadata=client.V1ObjectMeta(name="reader-reads-configmaps"),
        role_ref=client.V1RoleRef(api_group="rbac.authorization.k8s.io", kind="Role", name="read-configmaps"),
        subjects=[client.RbacV1Subject(kind="ServiceAccount", name="reader", namespace=namespace)]))

    def allowed():
        try:
            return client.CoreV1Api(as_reader).list_namespaced_config_map(namespace) is not None
        except client.ApiException as error:
            assert error.status == 403
            return False

    eventually(allowed, timeout=30)


def test_statefulset_gets_one_ready_pod_per_dedicated_node_and_is_garbage_collected(kube_cluster, api, namespace):
    core = client.CoreV1Api(api)
    kube_cluster.kubectl("apply", "-n", namespace, "-f", "-", input=kube.example_quorum_statefulset())

    def all_ready():
        """3 pods Running and Ready"""
        pods = core.list_namespaced_pod(namespace, label_selector="app=quorum").items
        ready = [p for p in pods if p.status.phase == "Running"
                 and any(c.type == "Ready" and c.status == "True" for c in p.status.conditions or [])]
        return ready if len(ready) == 3 else None

    pods = eventually(all_ready, timeout=120)
    metadata_nodes = {n.name for n in kube.default_nodes() if n.pool == "metadata"}
    assert sorted(p.spec.node_name for p in pods) == sorted(metadata_nodes)

    kube_cluster.kubectl("delete", "statefulset", "quorum", "-n", namespace, "--cascade=background", "--wait=false")

    def pods_gone():
        """the garbage collector removed every pod"""
        return not core.list_namespaced_pod(namespace, label_selector="app=quorum").items

    eventually(pods_gone, timeout=120)


def test_helm_installs_a_chart(kube_cluster, namespace, tmp_path):
    chart = tmp_path / "smoke"
    (chart / "templates").mkdir(parents=True)
    (chart / "Chart.yaml").write_text("apiVersion: v2\nname: smoke\nversion: 0.1.0\n")
    (chart / "values.yaml").write_text("greeting: hello\n")
    (chart / "templates" / "configmap.yaml").write_text(
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {{ .Release.Name }}-greeting\n"
        "data:\n  greeting: {{ .Values.greeting | quote }}\n")

    subprocess.run([kube.binary("helm"), "install", "demo", str(chart), "--namespace", namespace,
                    "--kubeconfig", str(kube_cluster.kubeconfig), "--set", "greeting=hi", "--wait"],
                   check=True, capture_output=True, text=True, timeout=120)

    stored = json.loads(kube_cluster.kubectl("get", "configmap", "demo-greeting", "-n", namespace, "-o", "json"))
    assert stored["data"] == {"greeting": "hi"}
