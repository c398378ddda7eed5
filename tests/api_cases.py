"""Valid base manifests and one-field changes that must be refused, for both validators: the API
server at admission (CEL + OpenAPI) and the models at handler entry. Each case names the field
the error message must point at."""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any

API_VERSION = "kafka.usecase.dev/v1alpha1"
DELETE = object()


def manifest(kind: str, name: str, spec: dict) -> dict:
    return {"apiVersion": API_VERSION, "kind": kind, "metadata": {"name": name}, "spec": spec}


BASES = {
    "zookeeper-usecase": manifest("KafkaUseCase", "analytics", {
        "profile": "analytics",
        "metadataQuorum": {"mode": "zookeeper"},
        "kafka": {"version": "3.9.2", "replicas": 3, "config": {"log.retention.hours": 168},
                  "storage": {"size": "100Gi"}},
        "zookeeper": {"replicas": 3},
        "access": {"namespaces": {"from": "Same"}},
    }),
    "kraft-usecase": manifest("KafkaUseCase", "realtime", {
        "profile": "realtime",
        "kafka": {"replicas": 3},
        "controllers": {"replicas": 3},
    }),
    "external-usecase": manifest("KafkaUseCase", "external", {
        "external": {"bootstrapServers": "kafka-1:9092,kafka-2:9092", "adminSecretRef": {"name": "admin"}},
    }),
    "topic": manifest("KafkaTopic", "orders", {
        "useCase": {"name": "analytics"}, "topicName": "orders.v1", "partitions": 3, "replicas": 3,
        "config": {"retention.ms": 86400000},
    }),
    "user": manifest("KafkaUser", "app", {
        "useCase": {"name": "analytics"},
        "acls": [{"resource": {"type": "topic", "name": "orders"}, "operations": ["Write", "Describe"]}],
    }),
    "acl": manifest("KafkaAcl", "readers", {
        "useCase": {"name": "analytics"},
        "principals": [{"name": "app"}],
        "acls": [{"resource": {"type": "group", "name": "readers-", "patternType": "prefixed"},
                  "operations": ["Read"]}],
    }),
}


@dataclass(frozen=True)
class Case:
    id: str
    base: str
    path: str  # slash-separated (config keys have dots), list indexes as numbers: spec/acls/0/operations
    value: Any  # DELETE removes the field
    field: str  # what the error message must name, as the API server writes it

    def apply(self) -> dict:
        return mutate(BASES[self.base], self.path, self.value)


def mutate(base: dict, path: str, value: Any) -> dict:
    obj = copy.deepcopy(base)
    *parents, last = path.split("/")
    node = obj
    for part in parents:
        node = node[int(part)] if isinstance(node, list) else node.setdefault(part, {})
    if value is DELETE:
        del node[last]
    elif isinstance(node, list):
        node[int(last)] = value
    else:
        node[last] = value
    return obj


INVALID = [
    Case("zookeeper-replicas-even", "zookeeper-usecase", "spec/zookeeper/replicas", 2, "spec.zookeeper.replicas"),
    Case("controllers-replicas-even", "kraft-usecase", "spec/controllers/replicas", 4, "spec.controllers.replicas"),
    Case("zookeeper-mode-on-kafka-4", "zookeeper-usecase", "spec/kafka/version", "4.3.1", "spec.kafka.version"),
    Case("kraft-with-zookeeper-section", "kraft-usecase", "spec/zookeeper", {"replicas": 3}, "spec.zookeeper"),
    Case("zookeeper-mode-with-controllers", "zookeeper-usecase", "spec/controllers", {"replicas": 3},
         "spec.controllers"),
    Case("owned-key-listeners", "zookeeper-usecase", "spec/kafka/config/listeners", "PLAINTEXT://:9092",
         "spec.kafka.config"),
    Case("owned-key-sasl", "zookeeper-usecase", "spec/kafka/config/sasl.enabled.mechanisms", "PLAIN",
         "spec.kafka.config"),
    Case("owned-key-super-users", "kraft-usecase", "spec/kafka/config/super.users", "User:me", "spec.kafka.config"),
    Case("owned-key-controller-quorum", "kraft-usecase", "spec/kafka/config/controller.quorum.voters", "1@x:9093",
         "spec.kafka.config"),
    Case("external-with-kafka", "external-usecase", "spec/kafka", {"replicas": 3}, "spec.external"),
    Case("external-with-pull-secrets", "external-usecase", "spec/imagePullSecrets", [{"name": "regcred"}],
         "spec.external"),
    Case("pull-policy-unknown", "kraft-usecase", "spec/imagePullPolicy", "Sometimes", "spec.imagePullPolicy"),
    Case("pull-secret-name-charset", "kraft-usecase", "spec/imagePullSecrets", [{"name": "Reg Cred"}],
         "spec.imagePullSecrets[0].name"),
    Case("brokers-zero", "kraft-usecase", "spec/kafka/replicas", 0, "spec.kafka.replicas"),
    Case("unknown-profile", "kraft-usecase", "spec/profile", "fast", "spec.profile"),
    Case("unknown-mode", "zookeeper-usecase", "spec/metadataQuorum/mode", "etcd", "spec.metadataQuorum.mode"),
    Case("selector-missing", "zookeeper-usecase", "spec/access/namespaces/from", "Selector",
         "spec.access.namespaces.selector"),
    Case("version-not-semver", "kraft-usecase", "spec/kafka/version", "4.3", "spec.kafka.version"),
    Case("storage-size-not-quantity", "zookeeper-usecase", "spec/kafka/storage/size", "lots",
         "spec.kafka.storage.size"),
    Case("external-bootstrap-missing", "external-usecase", "spec/external/bootstrapServers", DELETE,
         "spec.external.bootstrapServers"),
    Case("partitions-zero", "topic", "spec/partitions", 0, "spec.partitions"),
    Case("replicas-zero", "topic", "spec/replicas", 0, "spec.replicas"),
    Case("topic-name-charset", "topic", "spec/topicName", "orders v1!", "spec.topicName"),
    Case("topic-name-dotdot", "topic", "spec/topicName", "..", "spec.topicName"),
    Case("topic-name-too-long", "topic", "spec/topicName", "t" * 250, "spec.topicName"),
    Case("deletion-policy", "topic", "spec/deletionPolicy", "Orphan", "spec.deletionPolicy"),
    Case("topic-use-case-missing", "topic", "spec/useCase", DELETE, "spec.useCase"),
    Case("acl-resource-type", "user", "spec/acls/0/resource/type", "database", "spec.acls[0].resource.type"),
    Case("acl-operation-for-group", "acl", "spec/acls/0/operations", ["Write"], "spec.acls[0].operations"),
    Case("acl-operation-unknown", "user", "spec/acls/0/operations", ["Fly"], "spec.acls[0].operations[0]"),
    Case("acl-cluster-name", "user", "spec/acls/0/resource", {"type": "cluster", "name": "prod"},
         "spec.acls[0].resource.name"),
    Case("acl-pattern-type", "user", "spec/acls/0/resource/patternType", "regex",
         "spec.acls[0].resource.patternType"),
    Case("acl-operations-empty", "user", "spec/acls/0/operations", [], "spec.acls[0].operations"),
    Case("authentication-type", "user", "spec/authentication", {"type": "scram-sha-256"},
         "spec.authentication.type"),
    Case("username-charset", "user", "spec/username", "app user", "spec.username"),
    Case("quota-negative", "user", "spec/quotas", {"producerByteRate": -1048576}, "spec.quotas.producerByteRate"),
    Case("quota-absurd", "user", "spec/quotas", {"consumerByteRate": 10**15}, "spec.quotas.consumerByteRate"),
    Case("quota-request-percentage-zero", "user", "spec/quotas", {"requestPercentage": 0},
         "spec.quotas.requestPercentage"),
    Case("quota-mutation-rate-absurd", "user", "spec/quotas", {"controllerMutationRate": 1e9},
         "spec.quotas.controllerMutationRate"),
    Case("quota-default-negative", "external-usecase", "spec/quotas", {"defaults": {"producerByteRate": -1}},
         "spec.quotas.defaults.producerByteRate"),
    Case("principals-empty", "acl", "spec/principals", [], "spec.principals"),
    Case("acl-grants-missing", "acl", "spec/acls", DELETE, "spec.acls"),
]

# Updates refused by transition rules (admission only: the models never see the old object).
IMMUTABLE = [
    Case("topic-use-case", "topic", "spec/useCase", {"name": "realtime"}, "spec.useCase"),
    Case("topic-name", "topic", "spec/topicName", "orders.v2", "spec.topicName"),
    Case("topic-name-unset", "topic", "spec/topicName", DELETE, "spec.topicName"),
    Case("user-use-case", "user", "spec/useCase", {"name": "realtime"}, "spec.useCase"),
    Case("username-set-later", "user", "spec/username", "someone-else", "spec.username"),
    Case("acl-use-case", "acl", "spec/useCase", {"name": "realtime"}, "spec.useCase"),
    Case("metadata-mode", "kraft-usecase", "spec/metadataQuorum", {"mode": "zookeeper"},
         "spec.metadataQuorum.mode"),
]
