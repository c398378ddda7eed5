"""The 3-node topologies really tolerate a lost node (make test-slow: 3 brokers, a 3-node ZooKeeper
ensemble or 3 KRaft controllers). Producing with acks=all keeps working with one broker down, and
the broker rejoins when it comes back; metadata changes keep working with one of three ZooKeeper
nodes or KRaft controllers down."""

import os
import uuid

import pytest
from confluent_kafka import KafkaException, Producer
from confluent_kafka.admin import AdminClient

from devstack import probes
from waiting import eventually

pytestmark = [pytest.mark.kafka, pytest.mark.slow]


@pytest.fixture(autouse=True)
def three_brokers():
    if os.environ.get("DEVSTACK_BROKERS") != "3":
        pytest.fail("fault tests need 3 brokers: run them with `make test-slow` (DEVSTACK_BROKERS=3)", pytrace=False)


def produce_acks_all(cluster, topic: str, count: int = 20) -> int:
    producer = Producer({**cluster.client_config(), "acks": "all", "enable.idempotence": True,
                         "message.timeout.ms": 30000, "log_level": 0})
    delivered = []
    for i in range(count):
        producer.produce(topic, f"m{i}".encode(), on_delivery=lambda err, _m: delivered.append(err))
    producer.flush(40)
    return sum(1 for err in delivered if err is None)


def healthy_again(admin) -> bool:
    """three brokers registered and a metadata write succeeds: the next test gets a whole cluster"""
    try:
        if len(admin.describe_cluster(request_timeout=5).result(timeout=10).nodes) != 3:
            return False
        probes.create_topic(admin, f"probe-{uuid.uuid4().hex[:8]}")
        return True
    except KafkaException:  # a cluster whose node just restarted can be briefly without an answer
        return False


def test_acks_all_survives_a_broker_loss_and_the_broker_rejoins(kafka_cluster):
    admin = AdminClient(kafka_cluster.client_config())
    topic = f"durable-{uuid.uuid4().hex[:8]}"
    probes.create_topic(admin, topic, partitions=3)  # replication factor 3, min.insync.replicas 2

    kafka_cluster.stop_nodes(["broker-13"], grace=60)  # a controlled shutdown, not a kill
    try:
        assert produce_acks_all(kafka_cluster, topic) == 20
    finally:  # later tests get their three brokers back, whatever happened here
        kafka_cluster.stack.restart("broker-13")
        eventually(lambda: healthy_again(admin), timeout=180, interval=1)
    assert produce_acks_all(kafka_cluster, topic) == 20


def test_metadata_quorum_keeps_working_with_one_node_down(kafka_cluster):
    """One of three ZooKeeper nodes or KRaft controllers down: a majority remains."""
    admin = AdminClient(kafka_cluster.client_config())
    node = "zookeeper-3" if kafka_cluster.mode == "zookeeper" else "controller-3"
    kafka_cluster.stop_nodes([node])
    try:
        topic = f"quorum-{uuid.uuid4().hex[:8]}"
        probes.create_topic(admin, topic)  # a metadata write: needs the quorum's majority
        eventually(lambda: topic in admin.list_topics(timeout=20).topics, timeout=30)
    finally:
        kafka_cluster.stack.restart(node)
        eventually(lambda: healthy_again(admin), timeout=180, interval=1)
