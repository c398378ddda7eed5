"""Everything the builders render is a valid Kubernetes object: the real API server accepts every
child of the example use cases (server-side dry run: admission and validation, nothing stored)."""

import json
import uuid
from pathlib import Path

import pytest
import yaml

from kafka_usecase_operator.api import KafkaUseCase
from kafka_usecase_operator.render import cluster
from kafka_usecase_operator.render.model import cluster_model

pytestmark = pytest.mark.kube
ROOT = Path(__file__).parents[2]


@pytest.mark.parametrize("path", ["analytics/usecase.yaml", "realtime/usecase.yaml"])
def test_every_child_is_accepted_by_the_api_server(kube_cluster, path):
    doc = yaml.safe_load((ROOT / "examples" / path).read_text())
    namespace = f"render-{uuid.uuid4().hex[:6]}"
    kube_cluster.kubectl("create", "namespace", namespace)
    try:
        c = cluster_model(doc["metadata"]["name"], namespace, KafkaUseCase.parse(doc))
        objects = cluster.build(c, cluster.Owner(c.name, str(uuid.uuid4())), cluster.OperatorIdentity("kafka-system"),
                                cluster_id="MkU3OEVBNTcwNTJENDM2Qk")
        listing = {"apiVersion": "v1", "kind": "List", "items": objects}

        applied = kube_cluster.kubectl("apply", "--dry-run=server", "-o", "json", "-f", "-", input=json.dumps(listing))

        kinds = sorted(item["kind"] for item in json.loads(applied)["items"])
        assert kinds == sorted(o["kind"] for o in objects)
    finally:
        kube_cluster.kubectl("delete", "namespace", namespace, "--wait=false")
