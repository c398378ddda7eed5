"""Pinned versions of every real component (see shared STACK.md for why each was chosen)."""

from kafka_usecase_operator.render.images import KAFKA_KRAFT, KAFKA_ZOOKEEPER  # pinned once, for both

# The KRaft line's previous release: the real-pod tests upgrade a use case from it to KAFKA_KRAFT.
KAFKA_KRAFT_PREVIOUS = "4.2.0"
KAFKA_VERSIONS = (KAFKA_ZOOKEEPER, KAFKA_KRAFT_PREVIOUS, KAFKA_KRAFT)

KUBERNETES = "v1.36.3"  # k8s.io/kubernetes; its staging modules are published as v0.36.3
ETCD = "v3.6.16"
KWOK = "v0.8.0"
HELM = "v4.3.1"
# NetworkPolicy on the real nodes: run with the firewall only. The one advisory on v2.1.0 (the
# newest the module proxy serves), GHSA-phqm-jgc3-qf8g, is in the service proxy, which never runs here.
KUBE_ROUTER = "v2.1.0"


def default_kafka_version(mode: str) -> str:
    return KAFKA_KRAFT if mode == "kraft" else KAFKA_ZOOKEEPER


def has_zookeeper_mode(kafka_version: str) -> bool:
    return int(kafka_version.split(".")[0]) < 4
