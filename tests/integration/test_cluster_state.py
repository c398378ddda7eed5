"""What the roller hears from real brokers, in both metadata modes: partitions with their ISR and
min ISR, which settings Kafka changes at runtime, the cluster-wide defaults it applies, the quorum."""

import os
import uuid

import pytest
from confluent_kafka.admin import AdminClient, NewTopic

from devstack import kafka
from kafka_usecase_operator.kafka.cluster_state import ClusterState, zookeeper_quorum
from kafka_usecase_operator.usecase.configs import DynamicPlan, runtime_settable
from waiting import eventually

pytestmark = pytest.mark.kafka


def test_partitions_with_their_isr_and_min_isr(kafka_cluster):
    config = kafka_cluster.client_config()
    name = f"roll-{uuid.uuid4().hex[:6]}"
    brokers = len(kafka_cluster.bootstrap_servers.split(","))
    admin = AdminClient(config)  # kept: a client that goes destroys its pending requests
    admin.create_topics([NewTopic(name, 2, min(brokers, 3), config={"min.insync.replicas": "1"})])[name].result(30)
    state = ClusterState(config)

    view = state.kafka_view()

    mine = [p for p in view.partitions if p.topic == name]
    assert [p.partition for p in mine] == [0, 1] and all(p.min_isr == 1 for p in mine)
    assert all(set(p.isr) == set(p.replicas) and len(p.replicas) == min(brokers, 3) for p in mine)
    assert len(view.registered) == brokers and all(set(p.replicas) <= view.registered for p in mine)
    if kafka_cluster.mode == "zookeeper":
        assert view.controller in view.registered  # ZooKeeper mode: a broker is the controller
    state.elect_preferred_leaders()  # after a roll; here every leader is preferred already: no error
    if kafka_cluster.mode == "kraft":
        assert state.finalize_metadata_version() is None  # formatted at its version's newest level


def test_runtime_settings_are_told_apart_from_static_ones_and_applied_cluster_wide(kafka_cluster):
    state = ClusterState(kafka_cluster.client_config())
    broker = min(state.kafka_view().registered)

    dynamic = state.runtime_settable(broker)

    assert runtime_settable("log.retention.ms", dynamic) and runtime_settable("num.io.threads", dynamic)
    # what the real-pod roll test changes to restart every broker must really be static
    assert not runtime_settable("group.initial.rebalance.delay.ms", dynamic)
    assert not runtime_settable("listeners", dynamic)  # per broker only: never a cluster-wide default
    # KRaft: the controller takes the change; a broker answers once the metadata reached it
    state.alter_cluster_defaults(DynamicPlan({"log.retention.ms": "7200000"}, ()))
    eventually(lambda: state.cluster_defaults().get("log.retention.ms") == "7200000", timeout=20)
    state.alter_cluster_defaults(DynamicPlan({}, ("log.retention.ms",)))
    eventually(lambda: "log.retention.ms" not in state.cluster_defaults(), timeout=20)


def test_the_metadata_quorum_names_its_leader_and_who_is_caught_up(kafka_cluster):
    if kafka_cluster.mode == "kraft":
        quorum = ClusterState(kafka_cluster.client_config()).kraft_quorum()
    else:
        brokers = len(kafka_cluster.bootstrap_servers.split(","))
        plan = kafka.plan("zookeeper", brokers=brokers, zookeepers=int(os.environ.get("DEVSTACK_ZOOKEEPERS") or 0) or None)
        quorum = zookeeper_quorum({n.id: n.host for n in plan.quorum_nodes}, kafka.ZOOKEEPER_PORT)

    assert quorum.size >= 1 and quorum.leader is not None
    assert quorum.leader in quorum.caught_up and len(quorum.caught_up) == quorum.size
