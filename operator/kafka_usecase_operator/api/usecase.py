"""KafkaUseCase: one dedicated Kafka cluster for one workload type."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Field

from kafka_usecase_operator.render import images
from kafka_usecase_operator.api.common import (DNS_SUBDOMAIN, READY_COLUMNS, ConfigMap, Kind,
                                               Model, PrinterColumn, Quotas, Rule, Status)

# Broker settings the operator owns: listeners, security, identity and storage layout. A user
# value would break the cluster or its security, so admission refuses them.
OPERATOR_OWNED_KEYS = (
    "listeners", "advertised.listeners", "listener.security.protocol.map", "inter.broker.listener.name",
    "control.plane.listener.name", "controller.listener.names", "process.roles", "node.id", "broker.id",
    "zookeeper.connect", "authorizer.class.name", "super.users", "allow.everyone.if.no.acl.found", "log.dirs",
    "log.dir", "metadata.log.dir", "broker.rack",
)
OPERATOR_OWNED_PREFIXES = ("controller.quorum.", "sasl.", "security.", "listener.name.", "ssl.", "zookeeper.ssl.",
                           "zookeeper.set.acl")
DEFAULT_KAFKA_VERSION = {"kraft": images.KAFKA_KRAFT, "zookeeper": images.KAFKA_ZOOKEEPER}


def _owned(key: str) -> bool:
    return key in OPERATOR_OWNED_KEYS or key.startswith(OPERATOR_OWNED_PREFIXES)


_OWNED_CEL = (f"k in {list(OPERATOR_OWNED_KEYS)!r} || "
              + " || ".join(f"k.startsWith('{prefix}')" for prefix in OPERATOR_OWNED_PREFIXES))

Quantity = Annotated[int | str, Field(json_schema_extra={"x-kubernetes-int-or-string": True})]


class Resources(Model):
    """CPU and memory, as in a container's `resources`."""

    requests: Annotated[dict[str, Quantity], Field(max_length=8)] = {}
    limits: Annotated[dict[str, Quantity], Field(max_length=8)] = {}


SIZE_PATTERN = r"^[0-9]+(\.[0-9]+)?(Ki|Mi|Gi|Ti|Pi|k|M|G|T|P)?$"
Size = Annotated[str, Field(pattern=SIZE_PATTERN, max_length=32)]


class Storage(Model):
    size: Size = "10Gi"
    """Size of each node's PersistentVolumeClaim."""
    storage_class: Annotated[str | None, Field(max_length=253)] = None
    """StorageClass of the claims; the cluster default when unset."""
    delete_claim: bool = False
    """Delete the claims when the KafkaUseCase is deleted (default: keep the data, and the
    credentials it needs, so a use case re-created with the same name finds both again)."""


class QuorumStorage(Storage):
    size: Size = "5Gi"
    """Size of each node's PersistentVolumeClaim."""


class Toleration(Model):
    key: Annotated[str | None, Field(max_length=316)] = None
    operator: Literal["Exists", "Equal"] = "Equal"
    value: Annotated[str | None, Field(max_length=63)] = None
    effect: Literal["NoSchedule", "PreferNoSchedule", "NoExecute"] | None = None
    toleration_seconds: int | None = None


class Placement(Model):
    """Where pods may run. Dedicated pools are usually a nodeSelector plus a toleration for the pool's taint."""

    node_selector: Annotated[dict[str, Annotated[str, Field(max_length=63)]], Field(max_length=32)] = {}
    tolerations: Annotated[list[Toleration], Field(max_length=32)] = []
    affinity: Annotated[dict[str, Any] | None, Field(json_schema_extra={
        "x-kubernetes-preserve-unknown-fields": True})] = None
    """A Kubernetes `affinity` object, merged with the operator's own anti-affinity rules."""


class KafkaSpec(Model):
    rules = (Rule(f"!has(self.config) || !self.config.exists(k, {_OWNED_CEL})",
                  "may not set keys the operator owns (listeners, advertised.listeners, process.roles, node.id, "
                  "broker.id, zookeeper.connect, controller.quorum.*, sasl.*, security.*, ssl.*, listener.name.*, "
                  "authorizer.class.name, super.users, log.dirs, ...)",
                  check=lambda kafka: not any(_owned(k) for k in kafka.config), field_path=".config"),)

    version: Annotated[str | None, Field(pattern=r"^[0-9]+\.[0-9]+\.[0-9]+$", max_length=16)] = None
    """Kafka version. Defaults to 4.3.1 in KRaft mode and 3.9.2 in ZooKeeper mode; ZooKeeper mode
    needs 3.x, Kafka 4.0 and later run KRaft only."""
    replicas: Annotated[int, Field(ge=1, le=100)] = 3
    """Number of brokers."""
    resources: Resources | None = None
    """CPU and memory of each broker."""
    heap: Size | None = None
    """Java heap of each broker, e.g. `768Mi`. Default: half the memory limit (or request), at
    most 6Gi; 1Gi without either."""
    storage: Storage = Storage()
    """Each broker's PersistentVolumeClaim."""
    config: ConfigMap = {}
    """Broker configuration overrides on top of the profile's defaults, e.g. `log.retention.hours: 72`."""
    placement: Placement = Placement()
    """Where brokers run: a dedicated pool is a nodeSelector plus a toleration for its taint."""
    image: Annotated[str | None, Field(max_length=512)] = None
    """Container image override; the default follows `version`."""


class QuorumSpec(Model):
    replicas: Annotated[int, Field(ge=1, le=7)] = 3
    """Number of nodes: 1, 3, 5 or 7 (a quorum needs a majority)."""
    resources: Resources | None = None
    """CPU and memory of each node."""
    heap: Size | None = None
    """Java heap of each node, e.g. `256Mi`. Default: half the memory limit (or request), at
    most 6Gi; 512Mi without either."""
    storage: QuorumStorage = QuorumStorage()  # its own default size: setting only deleteClaim keeps 5Gi
    """Each node's PersistentVolumeClaim."""
    placement: Placement = Placement()
    """Dedicated nodes: the operator adds a required anti-affinity so these pods never share a node
    with this cluster's brokers, and one pod per node."""

    rules = (Rule("self.replicas % 2 == 1", "must be odd (1, 3, 5 or 7): a quorum needs a majority",
                  check=lambda q: q.replicas % 2 == 1, field_path=".replicas"),)


class ZooKeeperSpec(QuorumSpec):
    """The use case's own ZooKeeper ensemble (ZooKeeper mode only)."""

    image: Annotated[str | None, Field(max_length=512)] = None
    """Container image override (default: the project's Kafka 3.9 image, which holds ZooKeeper 3.8)."""


class ControllersSpec(QuorumSpec):
    """The use case's own KRaft controller quorum (KRaft mode only)."""


class MetadataQuorum(Model):
    mode: Literal["kraft", "zookeeper"] = "kraft"
    """`kraft` (Kafka 4.x, or 3.x) or `zookeeper` (Kafka 3.x only). Cannot change after creation."""


class LocalObjectReference(Model):
    name: Annotated[str, Field(min_length=1, max_length=253, pattern=DNS_SUBDOMAIN)]
    """Name of a Secret in the KafkaUseCase's namespace."""


class SecretRef(Model):
    name: Annotated[str, Field(min_length=1, max_length=253, pattern=DNS_SUBDOMAIN)]
    """Name of a Secret in the KafkaUseCase's namespace, with keys `username` and `password`."""


class ExternalCluster(Model):
    """A Kafka cluster this operator does not run: only its topics, users and ACLs are managed."""

    bootstrap_servers: Annotated[str, Field(min_length=1, max_length=2048, pattern=r"^[^,\s]+(,[^,\s]+)*$")]
    """Comma-separated host:port list."""
    security_protocol: Literal["SASL_PLAINTEXT", "SASL_SSL"] = "SASL_SSL"
    sasl_mechanism: Literal["SCRAM-SHA-512", "SCRAM-SHA-256", "PLAIN"] = "SCRAM-SHA-512"
    admin_secret_ref: SecretRef
    """Credentials of a user allowed to manage topics, SCRAM credentials and ACLs."""


class LabelSelectorRequirement(Model):
    key: Annotated[str, Field(max_length=316)]
    operator: Literal["In", "NotIn", "Exists", "DoesNotExist"]
    values: Annotated[list[Annotated[str, Field(max_length=63)]], Field(max_length=64)] = []


class LabelSelector(Model):
    """A Kubernetes label selector over namespaces."""

    match_labels: Annotated[dict[str, Annotated[str, Field(max_length=63)]], Field(max_length=32)] = {}
    match_expressions: Annotated[list[LabelSelectorRequirement], Field(max_length=16)] = []


class NamespaceAccess(Model):
    rules = (Rule("self.from != 'Selector' || has(self.selector)", "is required when from is Selector",
                  check=lambda access: access.from_ != "Selector" or access.selector is not None,
                  field_path=".selector"),)

    from_: Annotated[Literal["Same", "All", "Selector"], Field(alias="from")] = "Same"
    """`Same`: only this namespace; `All`: every namespace; `Selector`: namespaces whose labels match
    `selector` (this namespace too only if it matches, as in the Gateway API)."""
    selector: LabelSelector | None = None


class Access(Model):
    """Which namespaces may reference this use case from their topics, users and ACLs (the
    Gateway API's allowedRoutes pattern)."""

    namespaces: NamespaceAccess = NamespaceAccess()


def _mode(spec: KafkaUseCaseSpec) -> str:
    return spec.metadata_quorum.mode if spec.metadata_quorum else "kraft"


_MODE_CEL = "(has(self.metadataQuorum) ? self.metadataQuorum.mode : 'kraft')"
_IN_CLUSTER = ("kafka", "zookeeper", "controllers", "metadata_quorum", "image_pull_policy", "image_pull_secrets")


class KafkaUseCaseSpec(Model):
    rules = (
        Rule("!has(self.external) || !(has(self.kafka) || has(self.zookeeper) || has(self.controllers) "
             "|| has(self.metadataQuorum) || has(self.imagePullPolicy) || has(self.imagePullSecrets))",
             "external is mutually exclusive with kafka, zookeeper, controllers, metadataQuorum, "
             "imagePullPolicy and imagePullSecrets",
             check=lambda s: s.external is None or all(getattr(s, f) is None for f in _IN_CLUSTER),
             field_path=".external"),
        Rule(f"!has(self.zookeeper) || {_MODE_CEL} == 'zookeeper'",
             "is allowed only with metadataQuorum.mode: zookeeper",
             check=lambda s: s.zookeeper is None or _mode(s) == "zookeeper", field_path=".zookeeper"),
        Rule(f"!has(self.controllers) || {_MODE_CEL} == 'kraft'",
             "is allowed only with metadataQuorum.mode: kraft",
             check=lambda s: s.controllers is None or _mode(s) == "kraft", field_path=".controllers"),
        Rule(f"!has(self.kafka) || !has(self.kafka.version) || "
             f"(self.kafka.version.startsWith('3.') || {_MODE_CEL} == 'kraft')",
             "Kafka 4.0 and later run KRaft only: use metadataQuorum.mode: kraft, or a 3.x version for ZooKeeper",
             check=lambda s: not (s.kafka and s.kafka.version) or s.kafka.version.startswith("3.") or _mode(s) == "kraft",
             field_path=".kafka.version"),
        Rule(f"!has(self.kafka) || !has(self.kafka.version) || "
             f"{_MODE_CEL} != 'zookeeper' || self.kafka.version.startsWith('3.')",
             "ZooKeeper mode needs Kafka 3.x",
             check=lambda s: not (s.kafka and s.kafka.version) or _mode(s) != "zookeeper"
             or s.kafka.version.startswith("3."),
             field_path=".kafka.version"),
        Rule(f"{_MODE_CEL} == (has(oldSelf.metadataQuorum) ? oldSelf.metadataQuorum.mode : 'kraft')",
             "metadataQuorum.mode cannot change after creation (a migration is a new use case)",
             check=None, field_path=".metadataQuorum.mode"),
    )

    profile: Literal["general", "analytics", "realtime", "critical"] = "general"
    """Broker defaults tuned for a workload type; `kafka.config` overrides them."""
    kafka: KafkaSpec | None = None
    """The brokers. Defaults apply when unset (3 brokers, the mode's default version)."""
    metadata_quorum: MetadataQuorum | None = None
    """How the cluster keeps its metadata. Unset means KRaft."""
    zookeeper: ZooKeeperSpec | None = None
    """The dedicated ZooKeeper ensemble (mode zookeeper)."""
    controllers: ControllersSpec | None = None
    """The dedicated KRaft controllers (mode kraft)."""
    image_pull_policy: Literal["Always", "IfNotPresent", "Never"] | None = None
    """Pull policy of this use case's pods. Default: the operator's (chart `kafkaImages.pullPolicy`)."""
    image_pull_secrets: Annotated[list[LocalObjectReference], Field(max_length=16)] | None = None
    """Secrets in this namespace that this use case's pods pull their images with; replaces the
    operator's list (chart `kafkaImages.pullSecrets`), `[]` pulls with none."""
    external: ExternalCluster | None = None
    """Manage topics, users and ACLs on a cluster this operator does not run."""
    access: Access = Access()
    """Which namespaces may reference this use case (default: only its own)."""
    quotas: UseCaseQuotas | None = None
    """Quotas for this use case's users."""


class UseCaseQuotas(Model):
    defaults: Quotas | None = None
    """Quotas for every KafkaUser of this use case that sets none of its own, applied as each
    user's own quota (never Kafka's `<default>` entity, which would also restrain principals no
    KafkaUser manages). Unset: no quota. No profile sets one."""


class KafkaUseCaseStatus(Status):
    mode: str | None = None
    """`kraft`, `zookeeper` or `external`."""
    kafka_version: str | None = None
    bootstrap_servers: str | None = None
    """Where this use case's clients connect."""
    cluster_id: str | None = None
    brokers: str | None = None
    """Ready brokers out of desired, e.g. `3/3`."""
    quorum: str | None = None
    """Ready ZooKeeper nodes or KRaft controllers out of desired."""
    admin_secret: str | None = None
    """The Secret holding the operator's admin credentials for this cluster."""
    inter_broker_protocol_version: str | None = None
    """ZooKeeper mode: the `inter.broker.protocol.version` the brokers speak. After an upgrade it
    follows the new version only once every broker runs it (a second roll)."""


KafkaUseCase = Kind(
    kind="KafkaUseCase", plural="kafkausecases", short_names=("kuc",), spec=KafkaUseCaseSpec,
    status=KafkaUseCaseStatus,
    description="A dedicated Kafka cluster for one use case, with its own ZooKeeper ensemble or KRaft "
                "controllers on dedicated nodes, or an external cluster whose topics, users and ACLs are managed.",
    printer_columns=(
        PrinterColumn("Mode", ".status.mode", description="kraft, zookeeper or external"),
        PrinterColumn("Version", ".status.kafkaVersion"),
        PrinterColumn("Brokers", ".status.brokers", description="ready/desired"),
        PrinterColumn("Profile", ".spec.profile", priority=1),
        PrinterColumn("Bootstrap", ".status.bootstrapServers", priority=1),
        *READY_COLUMNS,
    ),
)
