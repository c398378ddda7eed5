"""What the roller needs to hear from a running cluster, and the runtime settings it applies.

Partitions, their ISR and min ISR, registered brokers and the controller come from confluent-kafka
(one metadata request, one DescribeConfigs for every topic). The KRaft quorum's state comes from
DescribeQuorum, which confluent-kafka 2.16.1 lacks: kafka-python's `describe_metadata_quorum`,
SCRAM-authenticated as the same admin, through any broker (it forwards to the active controller).
ZooKeeper's state comes from each member's `srvr` four-letter word (whitelisted in zoo.cfg).
"""

from __future__ import annotations

import socket
from concurrent.futures import Future

from confluent_kafka import ElectionType, KafkaException
from confluent_kafka import admin as ck
from kafka import KafkaAdminClient

from kafka_usecase_operator.usecase.configs import DynamicPlan
from kafka_usecase_operator.usecase.roller import KafkaView, PartitionView, QuorumView

# KRaft's own notion of a voter in sync (Strimzi's KafkaQuorumCheck): caught up within
# controller.quorum.fetch.timeout.ms (Kafka's default) of the leader.
CAUGHT_UP_MS = 2000
CLUSTER_WIDE = ""  # the BROKER resource name of the cluster-wide dynamic defaults


class ClusterState:
    def __init__(self, config: dict, timeout: float = 15.0):
        """`config`: confluent-kafka settings (bootstrap, SASL) of the admin principal."""
        self.config, self.timeout = config, timeout
        self.client = ck.AdminClient({**config, "log_level": 0})

    def _wait(self, future: Future):
        return future.result(timeout=self.timeout + 5)

    def kafka_view(self) -> KafkaView:
        """Every partition with its replicas, ISR and min ISR; the registered brokers; the controller."""
        metadata = self.client.list_topics(timeout=self.timeout)
        topics = sorted(metadata.topics)
        min_isr: dict[str, int] = {}
        if topics:
            futures = self.client.describe_configs([ck.ConfigResource(ck.ResourceType.TOPIC, t) for t in topics],
                                                   request_timeout=self.timeout)
            for resource, future in futures.items():
                entry = self._wait(future).get("min.insync.replicas")
                min_isr[resource.name] = int(entry.value) if entry is not None else 1
        partitions = tuple(PartitionView(topic, p.id, tuple(p.replicas), tuple(p.isrs), min_isr.get(topic, 1))
                           for topic in topics for p in sorted(metadata.topics[topic].partitions.values(),
                                                               key=lambda p: p.id))
        controller = metadata.controller_id if metadata.controller_id is not None and metadata.controller_id >= 0 else None
        return KafkaView(partitions, frozenset(metadata.brokers), controller)

    def runtime_settable(self, broker: int) -> frozenset[str]:
        """The broker settings Kafka can change at runtime, as this broker reports them."""
        resource = ck.ConfigResource(ck.ResourceType.BROKER, str(broker))
        entries = self._wait(self.client.describe_configs([resource], request_timeout=self.timeout)[resource])
        return frozenset(name for name, entry in entries.items() if not entry.is_read_only)

    def cluster_defaults(self) -> dict[str, str]:
        """The cluster-wide dynamic broker defaults now in force."""
        resource = ck.ConfigResource(ck.ResourceType.BROKER, CLUSTER_WIDE)
        entries = self._wait(self.client.describe_configs([resource], request_timeout=self.timeout)[resource])
        return {name: entry.value for name, entry in entries.items()
                if entry.source == ck.ConfigSource.DYNAMIC_DEFAULT_BROKER_CONFIG.value}

    def alter_cluster_defaults(self, plan: DynamicPlan) -> None:
        entries = [ck.ConfigEntry(k, v, incremental_operation=ck.AlterConfigOpType.SET) for k, v in plan.set.items()]
        entries += [ck.ConfigEntry(k, None, incremental_operation=ck.AlterConfigOpType.DELETE) for k in plan.delete]
        resource = ck.ConfigResource(ck.ResourceType.BROKER, CLUSTER_WIDE, incremental_configs=entries)
        for future in self.client.incremental_alter_configs([resource], request_timeout=self.timeout).values():
            self._wait(future)

    def elect_preferred_leaders(self) -> None:
        """Leadership back to each partition's preferred replica (after a roll moved it around);
        partitions already led by it answer ELECTION_NOT_NEEDED, which is no failure."""
        try:
            self._wait(self.client.elect_leaders(ElectionType.PREFERRED, None, request_timeout=self.timeout))
        except KafkaException:
            pass

    def kraft_quorum(self) -> QuorumView:
        admin = KafkaAdminClient(**_kafka_python_settings(self.config, self.timeout))
        try:
            described = admin.describe_metadata_quorum()
        finally:
            admin.close()
        partition = described["topics"][0]["partitions"][0]
        return kraft_quorum_view(partition)


def kraft_quorum_view(partition: dict) -> QuorumView:
    """A DescribeQuorum answer's partition (`leader_id`, `current_voters` with last caught-up times)."""
    voters = partition["current_voters"]
    leader = partition["leader_id"] if partition["leader_id"] >= 0 else None
    leader_time = next((v["last_caught_up_timestamp"] for v in voters if v["replica_id"] == leader), None)
    caught_up = frozenset(v["replica_id"] for v in voters if leader_time is not None and
                          v["last_caught_up_timestamp"] >= 0 and leader_time - v["last_caught_up_timestamp"] < CAUGHT_UP_MS)
    return QuorumView(len(voters), leader, caught_up)


def zookeeper_quorum(members: dict[int, str], port: int, timeout: float = 3.0) -> QuorumView:
    """`members`: myid -> host. A member that answers `srvr` as leader, follower or standalone has
    synced with the leader (a follower serves only after it has)."""
    modes = {myid: _zookeeper_mode(host, port, timeout) for myid, host in members.items()}
    leader = next((myid for myid, mode in modes.items() if mode in ("leader", "standalone")), None)
    return QuorumView(len(members), leader, frozenset(m for m, mode in modes.items() if mode in
                                                       ("leader", "follower", "standalone")))


def _zookeeper_mode(host: str, port: int, timeout: float) -> str | None:
    try:
        with socket.create_connection((host, port), timeout=timeout) as connection:
            connection.sendall(b"srvr")
            answer = b""
            while chunk := connection.recv(4096):
                answer += chunk
    except OSError:
        return None
    for line in answer.decode(errors="replace").splitlines():
        if line.startswith("Mode:"):
            return line.split(":", 1)[1].strip()
    return None


def _kafka_python_settings(config: dict, timeout: float) -> dict:
    settings = {"bootstrap_servers": config["bootstrap.servers"].split(","),
                "security_protocol": config.get("security.protocol", "PLAINTEXT"),
                "request_timeout_ms": int(timeout * 1000), "client_id": "kafka-usecase-operator-roller"}
    if "sasl.mechanism" in config:
        settings.update(sasl_mechanism=config["sasl.mechanism"], sasl_plain_username=config["sasl.username"],
                        sasl_plain_password=config["sasl.password"])
    return settings
