"""The devstack's brokers are real and secured the way production ones are: SCRAM-SHA-512 on the
client listener, the ACL authorizer on, nothing allowed without an ACL. Runs in both metadata
modes (Kafka 4.3.1 KRaft, Kafka 3.9.2 with a ZooKeeper ensemble)."""

import secrets
import uuid

import pytest
from confluent_kafka import KafkaError
from confluent_kafka.admin import AclOperation, AdminClient

from devstack import probes
from waiting import eventually

pytestmark = pytest.mark.kafka


@pytest.fixture
def admin(kafka_cluster):
    return AdminClient(kafka_cluster.client_config())


@pytest.fixture
def app_user(kafka_cluster, admin):
    """A fresh SCRAM user with WRITE (and DESCRIBE) on a fresh topic only."""
    suffix = uuid.uuid4().hex[:8]
    user, password, topic = f"app-{suffix}", secrets.token_urlsafe(24), f"orders-{suffix}"
    probes.create_topic(admin, topic)
    probes.create_scram_user(admin, user, password)
    probes.grant_topic(admin, user, topic, AclOperation.WRITE, AclOperation.DESCRIBE)
    eventually(lambda: probes.authenticates_everywhere(kafka_cluster.bootstrap_servers, user, password), timeout=60)
    return user, password, topic


def test_user_with_a_write_acl_can_produce_to_its_topic(kafka_cluster, app_user):
    user, password, topic = app_user

    assert probes.produce_as(kafka_cluster.bootstrap_servers, user, password, topic) is None


def test_user_is_denied_a_topic_it_has_no_acl_for(kafka_cluster, admin, app_user):
    user, password, _ = app_user
    other = f"other-{uuid.uuid4().hex[:8]}"
    probes.create_topic(admin, other)

    error = probes.produce_as(kafka_cluster.bootstrap_servers, user, password, other)

    assert error == KafkaError.TOPIC_AUTHORIZATION_FAILED


def test_wrong_password_is_an_authentication_error(kafka_cluster, app_user):
    user, _, topic = app_user

    error = probes.produce_as(kafka_cluster.bootstrap_servers, user, "not-the-password", topic, timeout=10)

    # Assert the code: a plain delivery timeout also happens when the broker is down.
    assert error == KafkaError._AUTHENTICATION


def test_cluster_has_the_requested_brokers_and_version(kafka_cluster, admin):
    import os

    cluster = admin.describe_cluster(request_timeout=10).result(timeout=20)
    expected_brokers = int(os.environ.get("DEVSTACK_BROKERS") or 1)

    assert len(cluster.nodes) == expected_brokers
    assert {f"{n.host}:{n.port}" for n in cluster.nodes} == set(kafka_cluster.bootstrap_servers.split(","))
