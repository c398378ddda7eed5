"""Kafka state as plain values, the same shape for desired (from custom resources) and observed
(from the cluster), so planners compare like with like."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Topic:
    name: str
    partitions: int
    replication_factor: int | None  # desired: None means the cluster's default
    config: dict[str, str] = field(default_factory=dict)  # desired: what the resource sets; observed: non-defaults
    topic_id: str | None = field(default=None, compare=False)  # observed only


@dataclass(frozen=True, order=True)
class AclBinding:
    """One Kafka ACL entry, in Kafka's own terms (principal "User:<name>", upper-case enums)."""

    principal: str
    resource_type: str  # TOPIC, GROUP, CLUSTER, TRANSACTIONAL_ID
    resource_name: str
    pattern_type: str  # LITERAL, PREFIXED
    operation: str  # READ, WRITE, ...
    permission: str  # ALLOW, DENY
    host: str = "*"
