"""The CRDs on a real API server: every example is accepted; each invalid one-field change is
refused at admission with a message naming the field; immutable fields stay immutable; kubectl
shows descriptions, printer columns, short names and the `kafka` category."""

import json
import uuid
from pathlib import Path

import pytest
from kubernetes import client, config

from devstack import kube
from api_cases import BASES, DELETE, IMMUTABLE, INVALID, mutate
from kafka_usecase_operator.api import GROUP, KINDS, VERSION

pytestmark = pytest.mark.kube
ROOT = Path(__file__).parents[2]
PLURALS = {kind.kind: kind.plural for kind in KINDS}


@pytest.fixture(scope="module")
def crds(kube_cluster):
    kube_cluster.kubectl("apply", "--server-side", "--force-conflicts", "-f", str(ROOT / "crds"))
    kube_cluster.kubectl("wait", "--for=condition=Established", "crd", "-l",
                         "app.kubernetes.io/part-of=kafka-usecase-operator", "--timeout=60s")


@pytest.fixture(scope="module")
def objects(kube_cluster, crds) -> client.CustomObjectsApi:
    return client.CustomObjectsApi(config.new_client_from_config(config_file=str(kube_cluster.kubeconfig)))


@pytest.fixture(scope="module")
def namespace(kube_cluster, crds):
    name = f"api-{uuid.uuid4().hex[:8]}"
    kube_cluster.kubectl("create", "namespace", name)
    yield name
    kube_cluster.kubectl("delete", "namespace", name, "--wait=false")


def create(objects, namespace, manifest, dry_run=True):
    return objects.create_namespaced_custom_object(GROUP, VERSION, namespace, PLURALS[manifest["kind"]], manifest,
                                                   dry_run="All" if dry_run else None)


def refusal(call) -> str:
    with pytest.raises(client.ApiException) as refused:
        call()
    assert refused.value.status == 422, refused.value.body
    return json.loads(refused.value.body)["message"]


def test_every_example_is_accepted(kube_cluster, kafka_kraft, crds):
    examples = ROOT / "examples"
    kube_cluster.kubectl("apply", "-f", str(examples / "namespaces.yaml"), "-f", str(examples / "devstack" / "namespace.yaml"))
    kube.apply_external_admin_secret(kube_cluster.stack, kafka_kraft.client_config(), "devstack", "devstack-admin")

    for folder in ("analytics", "realtime", "devstack"):
        kube_cluster.kubectl("apply", "-f", str(examples / folder))

    listed = kube_cluster.kubectl("get", "kafka", "-A", "-o", "name").split()
    assert len([n for n in listed if n.startswith("kafkausecase")]) >= 3
    devstack = json.loads(kube_cluster.kubectl("get", "kafkausecase", "devstack", "-n", "devstack", "-o", "json"))
    assert devstack["spec"]["external"]["bootstrapServers"] == kafka_kraft.bootstrap_servers


@pytest.mark.parametrize("case", INVALID, ids=[c.id for c in INVALID])
def test_one_field_change_is_refused_naming_the_field(objects, namespace, case):
    create(objects, namespace, BASES[case.base])  # the unchanged manifest is accepted

    message = refusal(lambda: create(objects, namespace, case.apply()))

    assert case.field in message


@pytest.mark.parametrize("case", IMMUTABLE, ids=[c.id for c in IMMUTABLE])
def test_immutable_fields_refuse_updates(objects, namespace, case):
    base = mutate(BASES[case.base], "metadata/name", f"{BASES[case.base]['metadata']['name']}-{uuid.uuid4().hex[:6]}")
    if case.base == "kraft-usecase":  # start from an explicit mode, with nothing else tied to it
        base = mutate(mutate(base, "spec/controllers", DELETE), "spec/metadataQuorum", {"mode": "kraft"})
    stored = create(objects, namespace, base, dry_run=False)
    changed = mutate(base, case.path, case.value)
    changed["metadata"]["resourceVersion"] = stored["metadata"]["resourceVersion"]
    plural = PLURALS[base["kind"]]

    message = refusal(lambda: objects.replace_namespaced_custom_object(
        GROUP, VERSION, namespace, plural, base["metadata"]["name"], changed))

    assert case.field in message


def test_kubectl_explain_prints_descriptions(kube_cluster, crds):
    explained = kube_cluster.kubectl("explain", "kafkausecase.spec.zookeeper")

    assert "The dedicated ZooKeeper ensemble" in explained
    assert "Number of nodes: 1, 3, 5 or 7" in explained


def test_printer_columns_and_short_names(kube_cluster, objects, namespace):
    create(objects, namespace, mutate(BASES["topic"], "metadata/name", "columns"), dry_run=False)

    table = kube_cluster.kubectl("get", "kt", "columns", "-n", namespace)

    header, row = table.splitlines()[:2]
    assert header.split() == ["NAME", "TOPIC", "USE", "CASE", "PARTITIONS", "REPLICAS", "READY", "AGE"]
    assert row.split()[:4] == ["columns", "analytics", "3", "3"]
