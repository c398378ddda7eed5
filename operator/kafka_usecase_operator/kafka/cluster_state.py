"""What the roller needs to hear from a running cluster, and the runtime settings it applies.

Partitions, their ISR and min ISR, registered brokers and the controller come from confluent-kafka
(one metadata request, one DescribeConfigs for every topic). Two things confluent-kafka 2.16.1
cannot do go through kafka-python's generated requests on the admin connection the quota adapter
keeps (SCRAM-authenticated as the same admin): DescribeQuorum (the KRaft quorum's state; any broker
forwards it to the active controller), and the cluster-wide dynamic broker defaults (the BROKER
resource named "", which librdkafka refuses to build). ZooKeeper's state comes from each member's
`srvr` four-letter word (whitelisted in zoo.cfg).
"""

from __future__ import annotations

import socket
from concurrent.futures import Future

import kafka.errors
from confluent_kafka import ElectionType, KafkaException
from confluent_kafka import admin as ck
from kafka.admin import AlterConfigOp, ConfigResourceType, ConfigSourceType
from kafka.protocol.admin import DescribeConfigsRequest, DescribeQuorumRequest, IncrementalAlterConfigsRequest

from kafka_usecase_operator.kafka.quotas import KafkaPythonQuotas

from kafka_usecase_operator.usecase.configs import DynamicPlan
from kafka_usecase_operator.usecase.roller import KafkaView, PartitionView, QuorumView

# KRaft's own notion of a voter in sync (Strimzi's KafkaQuorumCheck): caught up within
# controller.quorum.fetch.timeout.ms (Kafka's default) of the leader.
CAUGHT_UP_MS = 2000
CLUSTER_WIDE = ""  # the BROKER resource name of the cluster-wide dynamic defaults


class ClusterState:
    def __init__(self, config: dict, timeout: float = 15.0):
        """`config`: confluent-kafka settings (bootstrap, SASL) of the admin principal."""
        self.timeout = timeout
        self.client = ck.AdminClient({**config, "log_level": 0})
        self.kafka_python = KafkaPythonQuotas(config, timeout)

    def close(self) -> None:
        self.kafka_python.close()

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
        response = self.kafka_python.send(DescribeConfigsRequest(
            resources=[(ConfigResourceType.BROKER.value, CLUSTER_WIDE, None)], include_synonyms=False))
        result = response.results[0]
        _raise_for(result.error_code, result.error_message)
        return {c.name: c.value for c in result.configs
                if c.config_source == ConfigSourceType.DYNAMIC_DEFAULT_BROKER_CONFIG.value}

    def alter_cluster_defaults(self, plan: DynamicPlan) -> None:
        entries = [(k, AlterConfigOp.SET.value, v) for k, v in plan.set.items()]
        entries += [(k, AlterConfigOp.DELETE.value, None) for k in plan.delete]
        response = self.kafka_python.send(IncrementalAlterConfigsRequest(
            resources=[(ConfigResourceType.BROKER.value, CLUSTER_WIDE, entries)], validate_only=False))
        for result in response.responses:
            _raise_for(result.error_code, result.error_message)

    def elect_preferred_leaders(self) -> None:
        """Leadership back to each partition's preferred replica (after a roll moved it around);
        partitions already led by it answer ELECTION_NOT_NEEDED, which is no failure. No timeout
        argument: confluent-kafka 2.16.1's elect_leaders raises SystemError with any keyword."""
        try:
            self._wait(self.client.elect_leaders(ElectionType.PREFERRED, None))
        except KafkaException:
            pass

    def finalize_metadata_version(self) -> tuple[int, int] | None:
        """KRaft: raise `metadata.version` to the newest level the brokers support, once they all run
        a version that supports it (the controller refuses a level any node lacks). Returns (from, to)
        when it raised it, None when it was already there. Never lowers it: a downgrade is refused
        before anything rolls."""
        features = self.kafka_python.admin().describe_features().get("metadata.version") or {}
        finalized, supported = features.get("finalized"), features.get("supported")
        if not finalized or not supported or finalized[1] >= supported[1]:
            return None
        answer = self.kafka_python.admin().update_features({"metadata.version": supported[1]})
        if answer.get("metadata.version") != "OK":
            raise RuntimeError(f"metadata.version {finalized[1]} -> {supported[1]}: {answer.get('metadata.version')}")
        return finalized[1], supported[1]

    def kraft_quorum(self) -> QuorumView:
        topic, partition = DescribeQuorumRequest.TopicData, DescribeQuorumRequest.TopicData.PartitionData
        response = self.kafka_python.send(DescribeQuorumRequest(
            topics=[topic(topic_name="__cluster_metadata", partitions=[partition(partition_index=0)])]))
        _raise_for(response.error_code, getattr(response, "error_message", None))
        return kraft_quorum_view(response.to_dict()["topics"][0]["partitions"][0])


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
    if not any(modes.values()):
        raise ConnectionError(f"no ZooKeeper member answered srvr on port {port}")
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


def _raise_for(code: int, message: str | None) -> None:
    if code:
        error = kafka.errors.for_code(code)
        raise error(message) if message else error()
