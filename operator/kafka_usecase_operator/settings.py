"""The operator's configuration: one typed object, read once from environment variables."""

from __future__ import annotations

import os

from pydantic import BaseModel, Field

from kafka_usecase_operator.render import images

ENV_PREFIX = "KUO_"


class OperatorSettings(BaseModel):
    namespaces: list[str] = []
    """Namespaces to watch; empty: every namespace (KUO_NAMESPACES, comma-separated)."""
    operator_namespace: str = "kafka-system"
    """Where the operator runs: NetworkPolicies let it reach brokers (KUO_OPERATOR_NAMESPACE)."""
    field_manager: str = "kafka-usecase-operator"
    """The server-side apply field manager of everything the operator writes."""
    liveness_port: int = Field(8080, ge=1, le=65535)
    """Port of the liveness endpoint /healthz (KUO_LIVENESS_PORT)."""
    external_check_seconds: float = Field(60.0, gt=0)
    """How often an external use case's connection is re-checked (KUO_EXTERNAL_CHECK_SECONDS)."""
    kafka_timeout_seconds: float = Field(30.0, gt=0)
    """Timeout of one admin request to a Kafka cluster (KUO_KAFKA_TIMEOUT_SECONDS)."""
    resync_seconds: float = Field(120.0, gt=0)
    """How often every topic, user and ACL is compared with Kafka and drift repaired (KUO_RESYNC_SECONDS)."""
    cluster_check_seconds: float = Field(15.0, gt=0)
    """How often each in-cluster use case's children are re-applied and its roller takes a step
    (KUO_CLUSTER_CHECK_SECONDS)."""
    retry_seconds: float = Field(10.0, gt=0)
    """Delay before retrying an object whose cluster was not reachable (KUO_RETRY_SECONDS)."""
    finalizer_release_seconds: float = Field(600.0, ge=0)
    """How long a deleted object waits for an unreachable cluster before its finalizer is released
    with a Warning, leaving its Kafka state behind (KUO_FINALIZER_RELEASE_SECONDS)."""
    batch_max_items: int = Field(100, ge=1)
    """Items per admin request; 1 switches batching off (KUO_BATCH_MAX_ITEMS)."""
    batch_max_delay: float = Field(0.1, ge=0)
    """Seconds a batch waits for more items after its first (KUO_BATCH_MAX_DELAY)."""
    api_connections: int = Field(20, ge=1)
    """Connections to the API server at most, kopf's and the operator's each (KUO_API_CONNECTIONS)."""
    metrics_port: int = Field(8081, ge=0, le=65535)
    """Port of the Prometheus /metrics endpoint; 0 turns it off (KUO_METRICS_PORT)."""
    leader_election: bool = False
    """Act only while holding a Lease in the operator's namespace (KUO_LEADER_ELECTION; the chart turns it on)."""
    lease_name: str = "kafka-usecase-operator"
    """Name of that Lease (KUO_LEASE_NAME)."""
    pod_name: str = ""
    """This process's name in the Lease, made unique per process (KUO_POD_NAME; default: the host name)."""

    image_registry: str = images.DEFAULT_REGISTRY
    """Registry and path of the project's Kafka image, `<registry>/kafka:<version>` (KUO_IMAGE_REGISTRY)."""
    image_pull_policy: str = "IfNotPresent"
    """Pull policy of the use cases' pods (KUO_IMAGE_PULL_POLICY)."""
    image_pull_secrets: list[str] = []
    """Secrets the use cases' pods pull with, in each use case's namespace (KUO_IMAGE_PULL_SECRETS, comma-separated)."""

    @property
    def images(self) -> images.ImageSettings:
        return images.ImageSettings(self.image_registry, self.image_pull_policy, tuple(self.image_pull_secrets))

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None) -> OperatorSettings:
        environ = os.environ if environ is None else environ
        values: dict = {}
        for name in cls.model_fields:
            raw = environ.get(ENV_PREFIX + name.upper())
            if raw is None:
                continue
            values[name] = [n.strip() for n in raw.split(",") if n.strip()] \
                if name in ("namespaces", "image_pull_secrets") else raw
        return cls.model_validate(values)
