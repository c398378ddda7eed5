"""Shapes shared by every kind: the base model, references, conditions, reasons, ACL grants."""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import Enum
from typing import Annotated, Any, Callable, ClassVar, Literal

import kopf
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator
from pydantic.alias_generators import to_camel

# Every map and list a CEL rule reads is bounded, or the API server refuses the CRD for its
# estimated rule cost.
MAX_CONFIG_ENTRIES = 200
MAX_CONFIG_VALUE = 1024
MAX_GRANTS = 256
DNS_LABEL = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"
DNS_SUBDOMAIN = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"


@dataclass(frozen=True)
class Rule:
    """One validation rule, written once in both languages that enforce it: CEL for the API server
    at admission (x-kubernetes-validations) and Python for handler entry. Transition rules
    (immutability) compare with the stored object, so only admission can check them."""

    cel: str
    message: str
    check: Callable[[Any], bool] | None  # None: a transition rule (uses oldSelf)
    field_path: str | None = None  # e.g. ".kafka.version": where the message points

    def schema(self) -> dict:
        entry = {"rule": self.cel, "message": self.message}
        if self.field_path:
            entry["fieldPath"] = self.field_path
        return entry


def immutable(field: str) -> Rule:
    return Rule("self == oldSelf", f"{field} is immutable once set", check=None)


class Model(BaseModel):
    """camelCase on the wire, unknown fields refused: a typo is an error, not a silent no-op."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="forbid",
                              use_attribute_docstrings=True)
    rules: ClassVar[tuple[Rule, ...]] = ()

    @model_validator(mode="after")
    def _check_rules(self):
        for rule in self.rules:
            if rule.check is not None and not rule.check(self):
                where = f"{rule.field_path.lstrip('.')}: " if rule.field_path else ""
                raise ValueError(f"{where}{rule.message}")
        return self

    @classmethod
    def __get_pydantic_json_schema__(cls, core_schema, handler):
        schema = handler(core_schema)
        target = handler.resolve_ref_schema(schema)
        if cls.rules:
            target["x-kubernetes-validations"] = [rule.schema() for rule in cls.rules]
        return schema


class UseCaseRef(Model):
    """The KafkaUseCase this object lives in."""

    name: Annotated[str, Field(min_length=1, max_length=253, pattern=DNS_SUBDOMAIN)]
    """Name of the KafkaUseCase."""
    namespace: Annotated[str | None, Field(max_length=63, pattern=DNS_LABEL)] = None
    """Namespace of the KafkaUseCase; defaults to this object's namespace. The use case's
    `spec.access` decides whether this namespace may reference it."""


class SecretKeyRef(Model):
    name: Annotated[str, Field(min_length=1, max_length=253, pattern=DNS_SUBDOMAIN)]
    """Name of a Secret in this object's namespace."""
    key: Annotated[str, Field(min_length=1, max_length=253, pattern=r"^[-._a-zA-Z0-9]+$")]
    """Key within the Secret."""


ConfigValue = Annotated[int | str, Field(json_schema_extra={"maxLength": MAX_CONFIG_VALUE})]
ConfigMap = Annotated[dict[str, int | str], Field(max_length=MAX_CONFIG_ENTRIES)]


class Reason(str, Enum):
    """Condition reasons: machine-readable, stable, documented."""

    READY = "Ready"
    RECONCILING = "Reconciling"
    INVALID_SPEC = "InvalidSpec"  # input that will never work (GitOps tools show it as Degraded)
    NOT_ALLOWED = "NotAllowed"  # a reference from a namespace the use case does not admit
    USE_CASE_NOT_FOUND = "UseCaseNotFound"
    USE_CASE_NOT_READY = "UseCaseNotReady"
    CONFLICT = "Conflict"  # e.g. two KafkaUsers claiming one username
    NOT_SUPPORTED = "NotSupported"  # e.g. fewer partitions, another replication factor
    KAFKA_ERROR = "KafkaError"  # Kafka refused the change; the message is Kafka's
    CREATED = "Created"  # topics, users, ACLs: in Kafka as specified
    UPDATED = "Updated"
    CLUSTER_NOT_READY = "ClusterNotReady"  # the use case's cluster cannot be reached (yet): retried
    SECRET_NOT_FOUND = "SecretNotFound"  # a KafkaUser's spec.authentication.password Secret or key is missing
    USER_NOT_FOUND = "UserNotFound"  # a KafkaAcl names a KafkaUser that does not exist (yet) in the use case
    DELETING = "Deleting"
    UNSCHEDULABLE = "Unschedulable"  # a pod of the cluster has no node it may run on
    BROKER_NOT_READY = "BrokerNotReady"  # a broker's container crash-loops or cannot start: the message has its words
    QUORUM_NOT_READY = "QuorumNotReady"  # the same, for a ZooKeeper node or KRaft controller
    CONNECTED = "Connected"  # external use case: the admin connection works
    UNREACHABLE = "Unreachable"  # external use case: it does not
    # Changes refused because of what already runs (nothing is applied):
    QUORUM_SHRINK = "QuorumShrink"
    CONTROLLER_CHANGE = "ControllerChangeUnsupported"  # KRaft voters are added/removed by Kafka's API only
    VERSION_DOWNGRADE = "VersionDowngrade"
    TOO_FEW_BROKERS = "TooFewBrokers"


class Condition(Model):
    type: Annotated[str, Field(max_length=316)]
    """Condition type; every kind has `Ready`."""
    status: Literal["True", "False", "Unknown"]
    reason: Annotated[str, Field(max_length=1024)]
    """A CamelCase reason from a fixed set (see docs/api.md)."""
    message: Annotated[str, Field(max_length=32768)] = ""
    """Human-readable detail; never contains secrets."""
    last_transition_time: str
    """When `status` last changed (RFC 3339)."""
    observed_generation: int | None = None
    """The `metadata.generation` this condition was computed from."""


class Status(Model):
    """Fields every kind's status has (kstatus: Flux and Argo CD judge health from them)."""

    model_config = ConfigDict(extra="ignore")  # tolerate fields written by newer operator versions
    observed_generation: int | None = None
    """The `metadata.generation` the operator last acted on."""
    conditions: Annotated[list[Condition], Field(max_length=16)] = []
    """`Ready` and any others; `Ready=False` carries a reason and a message."""


MAX_BYTE_RATE = 10 * 2**30  # 10 GiB/s per broker: beyond any broker's network
MAX_REQUEST_PERCENTAGE = 10_000  # 100 request-handler and network threads' worth
MAX_MUTATION_RATE = 10_000  # partitions created or deleted per second


class Quotas(Model):
    """Limits Kafka enforces for one principal, each per broker (KIP-13, KIP-124, KIP-599): a client
    over its limit is slowed down by the broker (throttled), never refused. A field left out means
    no limit of that kind."""

    producer_byte_rate: Annotated[int | None, Field(ge=1024, le=MAX_BYTE_RATE)] = None
    """Bytes per second the principal may produce to each broker (Kafka's `producer_byte_rate`)."""
    consumer_byte_rate: Annotated[int | None, Field(ge=1024, le=MAX_BYTE_RATE)] = None
    """Bytes per second the principal may fetch from each broker (`consumer_byte_rate`)."""
    request_percentage: Annotated[float | None, Field(gt=0, le=MAX_REQUEST_PERCENTAGE)] = None
    """Share of each broker's request-handler and network thread time, in percent of one thread
    (`request_percentage`; a broker with 8 I/O and 3 network threads has 1100% in all)."""
    controller_mutation_rate: Annotated[float | None, Field(gt=0, le=MAX_MUTATION_RATE)] = None
    """Partitions per second the principal may create or delete (topic creation and deletion,
    partition additions; `controller_mutation_rate`). Over it, Kafka refuses the request with
    THROTTLING_QUOTA_EXCEEDED (CreateTopics v6+, as the Java client and kafka-python send) or
    answers it late (older versions, as confluent-kafka 2.16 sends)."""


class KafkaStateStatus(Status):
    """Status of the kinds that live in Kafka (topics, users, ACLs)."""

    last_drift_correction: str | None = None
    """When the periodic resync last had to repair a change made in Kafka behind the operator's back
    (RFC 3339); an Event with reason DriftCorrected says what."""


# Kafka ACL operations that make sense per resource type (Kafka's own AclEntry rules).
OPERATIONS_BY_RESOURCE = {
    "topic": ["All", "Read", "Write", "Create", "Delete", "Alter", "Describe", "DescribeConfigs", "AlterConfigs"],
    "group": ["All", "Read", "Describe", "Delete"],
    "cluster": ["All", "Create", "ClusterAction", "DescribeConfigs", "AlterConfigs", "IdempotentWrite", "Alter",
                "Describe"],
    "transactionalId": ["All", "Describe", "Write"],
}
Operation = Literal["All", "Read", "Write", "Create", "Delete", "Alter", "Describe", "ClusterAction",
                    "DescribeConfigs", "AlterConfigs", "IdempotentWrite"]
CLUSTER_RESOURCE_NAME = "kafka-cluster"


def _operations_rule() -> Rule:
    checks = " && ".join(f"(self.resource.type != '{kind}' || self.operations.all(o, o in {ops!r}))"
                         for kind, ops in OPERATIONS_BY_RESOURCE.items())
    allowed = "; ".join(f"{kind}: {', '.join(ops)}" for kind, ops in OPERATIONS_BY_RESOURCE.items())
    return Rule(checks, f"operations must suit the resource type ({allowed})",
                check=lambda rule: set(rule.operations) <= set(OPERATIONS_BY_RESOURCE[rule.resource.type]),
                field_path=".operations")


class AclResource(Model):
    rules = (Rule("self.type != 'cluster' || self.name == 'kafka-cluster'",
                  "must be kafka-cluster when resource.type is cluster",
                  check=lambda r: r.type != "cluster" or r.name == CLUSTER_RESOURCE_NAME, field_path=".name"),)

    type: Literal["topic", "group", "cluster", "transactionalId"]
    """What kind of Kafka resource the rule is about."""
    name: Annotated[str, Field(min_length=1, max_length=255)] = "kafka-cluster"
    """Resource name, or prefix with `patternType: prefixed`; `*` means every resource of the type.
    For `type: cluster` it is always `kafka-cluster`."""
    pattern_type: Literal["literal", "prefixed"] = "literal"
    """`literal` matches the name exactly; `prefixed` matches every name that starts with it."""


class AclRule(Model):
    """One grant: allow (or deny) operations on a resource, from a host."""

    rules = (_operations_rule(),)

    type: Literal["allow", "deny"] = "allow"
    """`deny` rules win over `allow` rules."""
    resource: AclResource
    operations: Annotated[list[Operation], Field(min_length=1, max_length=11)]
    """Kafka operations, e.g. Read, Write, Describe."""
    host: Annotated[str, Field(min_length=1, max_length=255)] = "*"
    """Client host the rule applies to; `*` for any."""


Grants = Annotated[list[AclRule], Field(max_length=MAX_GRANTS)]


class InvalidSpec(kopf.PermanentError):
    """A spec the models refuse: retrying cannot help. The message names the field."""

    reason = Reason.INVALID_SPEC


def describe_errors(error: ValidationError, prefix: str = "spec") -> str:
    """One line per problem, each starting with the field's path as the API server writes it
    (spec.acls[0].operations), so both validators name fields the same way."""
    return "; ".join(_describe(e, prefix) for e in error.errors())


_RULE_FIELD = re.compile(r"^([A-Za-z][\w.\[\]]*): (.*)$", re.S)


def _describe(error: dict, prefix: str) -> str:
    path = prefix + "".join(f"[{part}]" if isinstance(part, int) else f".{part}" for part in error["loc"])
    message = error["msg"].removeprefix("Value error, ")
    if error["type"] == "value_error" and (match := _RULE_FIELD.match(message)):
        path, message = f"{path}.{match.group(1)}", match.group(2)  # a Rule names its own field
    return f"{path}: {message}"


@dataclass(frozen=True)
class PrinterColumn:
    name: str
    json_path: str
    type: str = "string"
    priority: int = 0  # 1: only with `kubectl get -o wide`
    description: str = ""


READY_COLUMNS = (
    PrinterColumn("Ready", '.status.conditions[?(@.type=="Ready")].status', description="Ready condition status"),
    PrinterColumn("Reason", '.status.conditions[?(@.type=="Ready")].reason', priority=1,
                  description="Ready condition reason"),
    PrinterColumn("Age", ".metadata.creationTimestamp", type="date"),
)


@dataclass(frozen=True)
class Kind:
    """A custom resource kind: its models and what its CRD says beyond the schema."""

    kind: str
    plural: str
    short_names: tuple[str, ...]
    spec: type[Model]
    status: type[Model]
    description: str
    printer_columns: tuple[PrinterColumn, ...]
    object_rules: tuple[Rule, ...] = ()  # rules that also read metadata; check gets (spec, metadata)

    @property
    def singular(self) -> str:
        return self.kind.lower()

    def parse(self, body: dict[str, Any]) -> Model:
        """Validate `body["spec"]` with the kind's model, at handler entry.

        Admission already checks the same rules, but an object stored before a schema change did
        not pass them: it gets the same clear answer here, as `InvalidSpec` naming the field.
        """
        try:
            spec = self.spec.model_validate(body.get("spec") or {})
        except ValidationError as error:
            raise InvalidSpec(describe_errors(error)) from None
        metadata = body.get("metadata") or {}
        for rule in self.object_rules:
            if rule.check is not None and not rule.check((spec, metadata)):
                raise InvalidSpec(f"{rule.field_path.lstrip('.')}: {rule.message}")
        return spec
