"""Planners: desired vs observed Kafka state -> actions, with nothing done on refusal."""

import pytest

from kafka_usecase_operator.api.common import AclRule
from kafka_usecase_operator.kafka.model import AclBinding, Topic
from kafka_usecase_operator.kafka.plan import (AddPartitions, AlterTopicConfig, CreateTopic, DeleteScram, Refused,
                                               UpsertScram, acl_bindings, plan_acls, plan_scram, plan_topic)

pytestmark = pytest.mark.unit


def topic(partitions=3, rf=3, **config):
    return Topic("orders", partitions, rf, {k.replace("_", "."): v for k, v in config.items()})


def test_missing_topic_is_created():
    assert plan_topic(topic(), None) == [CreateTopic(topic())]


def test_in_sync_topic_needs_nothing():
    assert plan_topic(topic(retention_ms="1000"), topic(retention_ms="1000")) == []


def test_more_partitions_and_changed_config_in_one_plan():
    actions = plan_topic(topic(partitions=6, retention_ms="2000"), topic(partitions=3, retention_ms="1000"))

    assert actions == [AddPartitions("orders", 6), AlterTopicConfig("orders", {"retention.ms": "2000"}, ())]


@pytest.mark.parametrize("desired", [topic(partitions=2), topic(rf=2)])
def test_fewer_partitions_or_another_replication_factor_is_refused(desired):
    refused = plan_topic(desired, topic())

    assert isinstance(refused, Refused) and refused.reason == "NotSupported"


def test_unset_replication_factor_accepts_what_the_cluster_chose():
    assert plan_topic(topic(rf=None), topic(rf=3)) == []


def test_a_key_dropped_from_the_spec_returns_to_the_default_and_unmanaged_keys_stay():
    observed = topic(retention_ms="1000", cleanup_policy="compact", segment_bytes="1024")

    actions = plan_topic(topic(retention_ms="1000"), observed, managed_keys=frozenset({"retention.ms", "cleanup.policy"}))

    assert actions == [AlterTopicConfig("orders", {}, ("cleanup.policy",))]


def rules(*specs):
    return [AclRule.model_validate(spec) for spec in specs]


def test_grants_become_one_binding_per_operation():
    bindings = acl_bindings("User:apps.app", rules(
        {"resource": {"type": "topic", "name": "orders"}, "operations": ["Write", "Describe"]},
        {"type": "deny", "resource": {"type": "group", "name": "g-", "patternType": "prefixed"}, "operations": ["Read"]},
    ))

    assert bindings == {
        AclBinding("User:apps.app", "TOPIC", "orders", "LITERAL", "WRITE", "ALLOW"),
        AclBinding("User:apps.app", "TOPIC", "orders", "LITERAL", "DESCRIBE", "ALLOW"),
        AclBinding("User:apps.app", "GROUP", "g-", "PREFIXED", "READ", "DENY"),
    }


def test_acl_plan_is_a_set_difference_so_shared_grants_survive():
    read = AclBinding("User:a", "TOPIC", "orders", "LITERAL", "READ", "ALLOW")
    write = AclBinding("User:a", "TOPIC", "orders", "LITERAL", "WRITE", "ALLOW")
    stale = AclBinding("User:a", "TOPIC", "old", "LITERAL", "READ", "ALLOW")
    # The user's inline ACL and a KafkaAcl both grant READ; the KafkaAcl is gone: READ stays.
    desired = acl_bindings("User:a", rules({"resource": {"type": "topic", "name": "orders"}, "operations": ["Read"]})) \
        | {write}

    plan = plan_acls(desired, {read, stale})

    assert plan.add == {write} and plan.remove == {stale}


@pytest.mark.parametrize("exists, wanted, rotate, expected", [
    (False, True, False, [UpsertScram("u", rotated=False)]),
    (True, True, False, []),
    (True, True, True, [UpsertScram("u", rotated=True)]),
    (True, False, False, [DeleteScram("u")]),
    (False, False, False, []),
])
def test_scram_plan(exists, wanted, rotate, expected):
    assert plan_scram("u", exists, wanted, rotate) == expected


def test_quotas_plan_sets_what_differs_and_removes_what_is_no_longer_wanted():
    from kafka_usecase_operator.api.common import Quotas
    from kafka_usecase_operator.kafka.plan import plan_quotas, quota_values

    desired = quota_values(Quotas(producer_byte_rate=1048576, request_percentage=50))
    assert desired == {"producer_byte_rate": 1048576.0, "request_percentage": 50.0}
    assert plan_quotas(desired, desired) == {}
    assert plan_quotas(desired, {}) == desired
    observed = {"producer_byte_rate": 2097152.0, "controller_mutation_rate": 5.0, "request_percentage": 50.0}
    assert plan_quotas(desired, observed) == {"producer_byte_rate": 1048576.0, "controller_mutation_rate": None}
    assert plan_quotas(quota_values(None), observed) == dict.fromkeys(observed)  # a user without quotas: all removed
