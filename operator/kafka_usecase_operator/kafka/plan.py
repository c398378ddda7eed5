"""Pure planners: desired vs observed -> actions. No I/O, no side effects (CloudNativePG's
`evaluateNextRoleActions`, Strimzi's ACL set difference): the executor applies what they return."""

from __future__ import annotations

from dataclasses import dataclass, field

from kafka_usecase_operator.api.common import AclRule, Quotas
from kafka_usecase_operator.kafka.model import AclBinding, Topic

RESOURCE_TYPES = {"topic": "TOPIC", "group": "GROUP", "cluster": "CLUSTER", "transactionalId": "TRANSACTIONAL_ID"}
OPERATIONS = {"All": "ALL", "Read": "READ", "Write": "WRITE", "Create": "CREATE", "Delete": "DELETE",
              "Alter": "ALTER", "Describe": "DESCRIBE", "ClusterAction": "CLUSTER_ACTION",
              "DescribeConfigs": "DESCRIBE_CONFIGS", "AlterConfigs": "ALTER_CONFIGS",
              "IdempotentWrite": "IDEMPOTENT_WRITE"}


@dataclass(frozen=True)
class CreateTopic:
    topic: Topic


@dataclass(frozen=True)
class AddPartitions:
    name: str
    total: int


@dataclass(frozen=True)
class AlterTopicConfig:
    """Incremental: set these keys, delete those (back to the broker default)."""

    name: str
    set: dict[str, str] = field(default_factory=dict)
    delete: tuple[str, ...] = ()


@dataclass(frozen=True)
class Refused:
    """The desired state cannot be reached without losing data or availability; nothing is done."""

    reason: str  # a Reason constant
    message: str


TopicAction = CreateTopic | AddPartitions | AlterTopicConfig


def plan_topic(desired: Topic, observed: Topic | None, managed_keys: frozenset[str] = frozenset()) -> list[TopicAction] | Refused:
    """Actions that make `observed` match `desired`.

    `managed_keys` are config keys the resource set before (from its last applied spec): a key
    removed from the spec goes back to the broker default; keys nobody manages are left alone.
    """
    if observed is None:
        return [CreateTopic(desired)]
    if desired.partitions < observed.partitions:
        return Refused("NotSupported", f"topic {desired.name} has {observed.partitions} partitions; Kafka cannot "
                                       f"remove partitions (spec asks for {desired.partitions})")
    if desired.replication_factor is not None and desired.replication_factor != observed.replication_factor:
        return Refused("NotSupported", f"topic {desired.name} has replication factor {observed.replication_factor}; "
                                       f"changing it to {desired.replication_factor} needs a partition reassignment, "
                                       "which this operator does not do")
    actions: list[TopicAction] = []
    if desired.partitions > observed.partitions:
        actions.append(AddPartitions(desired.name, desired.partitions))
    changed = {k: v for k, v in desired.config.items() if observed.config.get(k) != v}
    dropped = tuple(sorted(k for k in managed_keys - desired.config.keys() if k in observed.config))
    if changed or dropped:
        actions.append(AlterTopicConfig(desired.name, changed, dropped))
    return actions


def acl_bindings(principal: str, rules: list[AclRule]) -> set[AclBinding]:
    """A resource's grants as Kafka ACL bindings: one binding per operation."""
    return {AclBinding(principal, RESOURCE_TYPES[rule.resource.type], rule.resource.name,
                       rule.resource.pattern_type.upper(), OPERATIONS[operation], rule.type.upper(), rule.host)
            for rule in rules for operation in rule.operations}


@dataclass(frozen=True)
class AclPlan:
    add: frozenset[AclBinding]
    remove: frozenset[AclBinding]


def plan_acls(desired: set[AclBinding], observed: set[AclBinding]) -> AclPlan:
    """Per principal set difference: `desired` is the union of every resource naming the principal,
    so removing one resource removes only the bindings nothing else still wants."""
    return AclPlan(add=frozenset(desired - observed), remove=frozenset(observed - desired))


@dataclass(frozen=True)
class UpsertScram:
    user: str
    rotated: bool  # True: the user existed and gets a new password


@dataclass(frozen=True)
class DeleteScram:
    user: str


def plan_scram(user: str, exists: bool, wanted: bool, rotate: bool) -> list[UpsertScram | DeleteScram]:
    if not wanted:
        return [DeleteScram(user)] if exists else []
    if not exists or rotate:
        return [UpsertScram(user, rotated=exists)]
    return []


# Kafka's quota keys for a user entity, by the field of Quotas that sets each.
QUOTA_KEYS = {"producer_byte_rate": "producer_byte_rate", "consumer_byte_rate": "consumer_byte_rate",
              "request_percentage": "request_percentage", "controller_mutation_rate": "controller_mutation_rate"}

QuotaValues = dict[str, float]  # Kafka's key -> value, what one user entity holds
QuotaChange = dict[str, float | None]  # Kafka's key -> new value, or None: remove the key


def quota_values(quotas: Quotas | None) -> QuotaValues:
    """The entries Kafka should hold for a user: one per field set."""
    if quotas is None:
        return {}
    return {key: float(value) for field, key in QUOTA_KEYS.items() if (value := getattr(quotas, field)) is not None}


def plan_quotas(desired: QuotaValues, observed: QuotaValues) -> QuotaChange:
    """The keys to set and to remove so that the user's quota entity holds exactly `desired`
    (empty: nothing to do). Only ever called for users the operator manages."""
    change: QuotaChange = {key: value for key, value in desired.items() if observed.get(key) != value}
    change.update({key: None for key in observed if key not in desired})
    return change
