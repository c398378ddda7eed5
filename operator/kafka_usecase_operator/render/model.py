"""A KafkaUseCase seen as the cluster it describes: names, DNS, node ids, effective settings.

Every builder reads this one view, so a name or a default is decided in exactly one place.
"""

from __future__ import annotations

import base64
import hashlib
import uuid
from dataclasses import dataclass, replace

from kafka_usecase_operator.api.usecase import DEFAULT_KAFKA_VERSION, KafkaUseCaseSpec
from kafka_usecase_operator.render import profiles
from kafka_usecase_operator.render.images import ImageSettings

CONTROLLER_ID_OFFSET = 1000  # KRaft node ids: brokers 0..N-1, controllers 1000.. (never collide)


@dataclass(frozen=True)
class Ports:
    client: int = 9092
    internal: int = 9091
    controller: int = 9093
    zookeeper: int = 2181


@dataclass(frozen=True)
class QuorumServer:
    id: int
    host: str


@dataclass(frozen=True)
class ClusterModel:
    name: str
    namespace: str
    spec: KafkaUseCaseSpec
    ports: Ports = Ports()
    images: ImageSettings = ImageSettings()
    data_mount: str = "/var/lib/kafka/data"
    # ZooKeeper mode: the protocol the brokers speak to each other. It stays at the version the
    # brokers ran until every broker runs a newer one (status.interBrokerProtocolVersion), then
    # follows it: an upgrade rolls twice, as Kafka's upgrade notes require.
    running_protocol: str | None = None
    zookeeper_mount: str = "/var/lib/zookeeper"

    # --- storage -------------------------------------------------------------------------------
    # Data lives one level below the volume's root: the root of an ext4 volume holds lost+found,
    # which Kafka takes for a corrupt log directory and refuses to start.
    @property
    def data_dir(self) -> str:
        return f"{self.data_mount}/kafka-log"

    @property
    def zookeeper_data_dir(self) -> str:
        return f"{self.zookeeper_mount}/data"

    # --- shape -------------------------------------------------------------------------------
    @property
    def mode(self) -> str:
        return self.spec.metadata_quorum.mode if self.spec.metadata_quorum else "kraft"

    @property
    def version(self) -> str:
        return (self.spec.kafka and self.spec.kafka.version) or DEFAULT_KAFKA_VERSION[self.mode]

    @property
    def inter_broker_protocol(self) -> str:
        """`inter.broker.protocol.version` (ZooKeeper mode): what runs, else this version's major.minor."""
        return self.running_protocol or protocol_of(self.version)

    @property
    def brokers(self) -> int:
        return self.spec.kafka.replicas if self.spec.kafka else 3

    @property
    def quorum_size(self) -> int:
        quorum = self.spec.zookeeper if self.mode == "zookeeper" else self.spec.controllers
        return quorum.replicas if quorum else 3

    @property
    def profile(self) -> str:
        return self.spec.profile

    # --- names ---------------------------------------------------------------------------------
    @property
    def broker_set(self) -> str:
        return f"{self.name}-kafka"

    @property
    def broker_headless(self) -> str:
        return f"{self.name}-kafka-brokers"

    @property
    def bootstrap_service(self) -> str:
        return f"{self.name}-kafka-bootstrap"

    @property
    def quorum_set(self) -> str:
        return f"{self.name}-zookeeper" if self.mode == "zookeeper" else f"{self.name}-controllers"

    @property
    def quorum_headless(self) -> str:
        return f"{self.quorum_set}-nodes"

    @property
    def zookeeper_client_service(self) -> str:
        return f"{self.name}-zookeeper-client"

    @property
    def admin_secret(self) -> str:
        return f"{self.name}-kafka-admin"

    @property
    def controller_secret(self) -> str:
        return f"{self.name}-controller-credentials"

    def pod_host(self, statefulset: str, headless: str, ordinal: int) -> str:
        return f"{statefulset}-{ordinal}.{headless}.{self.namespace}.svc"

    # --- addresses -----------------------------------------------------------------------------
    @property
    def bootstrap_servers(self) -> str:
        return f"{self.bootstrap_service}.{self.namespace}.svc:{self.ports.client}"

    @property
    def zookeeper_chroot(self) -> str:
        return f"/kafka-{self.name}"

    @property
    def zookeeper_connect(self) -> str:
        hosts = ",".join(f"{s.host}:{self.ports.zookeeper}" for s in self.zookeeper_servers)
        return hosts + self.zookeeper_chroot

    @property
    def zookeeper_servers(self) -> list[QuorumServer]:
        """myid is the pod ordinal + 1 (ZooKeeper ids start at 1)."""
        return [QuorumServer(i + 1, self.pod_host(self.quorum_set, self.quorum_headless, i))
                for i in range(self.quorum_size)] if self.mode == "zookeeper" else []

    @property
    def quorum_bootstrap_servers(self) -> str:
        """Where brokers and controllers find the KRaft quorum. The voters themselves live in the
        metadata log (KIP-853 dynamic quorum), so the quorum can change later without a static list."""
        if self.mode != "kraft":
            return ""
        return ",".join(f"{self.pod_host(self.quorum_set, self.quorum_headless, i)}:{self.ports.controller}"
                        for i in range(self.quorum_size))

    def initial_controllers(self, cluster_id: str) -> str:
        """The voters a new cluster's controllers are formatted with (`--initial-controllers`,
        the same on every controller): `id@host:port:directory-id`."""
        return ",".join(f"{CONTROLLER_ID_OFFSET + i}@{self.pod_host(self.quorum_set, self.quorum_headless, i)}:"
                        f"{self.ports.controller}:{controller_directory_id(cluster_id, CONTROLLER_ID_OFFSET + i)}"
                        for i in range(self.quorum_size))

    # --- settings ------------------------------------------------------------------------------
    @property
    def broker_config(self) -> dict[str, str]:
        """The profile's defaults, overridden by spec.kafka.config; keys sorted for stable output."""
        settings = profiles.broker_defaults(self.profile, self.brokers)
        user = self.spec.kafka.config if self.spec.kafka else {}
        settings.update({key: str(value) for key, value in user.items()})
        return dict(sorted(settings.items()))


HEAP_CAP_MI = 6144  # past this, the page cache serves Kafka better than more heap


def heap_options(heap: str | None, resources, default_mi: int) -> str:
    """-Xms/-Xmx for a pod: `heap` if given, else half the memory limit (or request), capped;
    `default_mi` without either. A JVM at Kafka's own 1G default in a smaller pod is OOM-killed."""
    if heap:
        mi = _mebibytes(heap)
    else:
        memory = (resources and (resources.limits.get("memory") or resources.requests.get("memory"))) or None
        mi = min(_mebibytes(str(memory)) // 2, HEAP_CAP_MI) if memory else default_mi
    mi = max(mi, 64)
    return f"-Xms{mi}m -Xmx{mi}m"


_UNITS = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "k": 10**3, "M": 10**6, "G": 10**9, "T": 10**12, "": 1}


def _mebibytes(quantity: str) -> int:
    number = quantity.rstrip("KMGTPkimi")
    unit = quantity[len(number):]
    return int(float(number) * _UNITS[unit] / 2**20)


def new_cluster_id() -> str:
    """A Kafka Uuid as `kafka-storage.sh random-uuid` prints it: url-safe base64 of 16 bytes, unpadded.
    Like Kafka's Uuid.randomUuid, never one starting with "-": `kafka-storage format -t -abc...` reads
    it as an option and fails, so a pod would never format its storage."""
    while (cluster_id := base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")).startswith("-"):
        pass
    return cluster_id


def controller_directory_id(cluster_id: str, node_id: int) -> str:
    """A KRaft controller's metadata directory id (KIP-853), derived from the cluster id and the node
    id: every controller formats with the same voter set without any state kept beside it, and a
    controller whose volume is replaced formats as the voter it was, as in a static quorum. The top
    bit is cleared so the id never starts with "-" (see new_cluster_id)."""
    digest = bytearray(hashlib.sha256(f"{cluster_id}/{node_id}".encode()).digest()[:16])
    digest[0] &= 0x7F
    return base64.urlsafe_b64encode(bytes(digest)).decode().rstrip("=")


def protocol_of(version: str) -> str:
    return ".".join(version.split(".")[:2])


def cluster_model(name: str, namespace: str, spec: KafkaUseCaseSpec,
                  images: ImageSettings = ImageSettings(), status: dict | None = None) -> ClusterModel:
    """`images` are the operator's settings; the use case's own pull policy and secrets win.
    `status`: the use case's, for what the running cluster already settled (its broker protocol)."""
    if spec.image_pull_policy is not None:
        images = replace(images, pull_policy=spec.image_pull_policy)
    if spec.image_pull_secrets is not None:
        images = replace(images, pull_secrets=tuple(ref.name for ref in spec.image_pull_secrets))
    return ClusterModel(name=name, namespace=namespace, spec=spec, images=images,
                        running_protocol=(status or {}).get("interBrokerProtocolVersion"))
