"""What every KafkaAdmin must do, checked against the in-memory fake (unit) and the confluent-kafka
adapter on real brokers in both metadata modes (integration): the fake stays honest."""

import uuid

from kafka_usecase_operator.kafka.model import AclBinding, Topic
from kafka_usecase_operator.kafka.plan import AlterTopicConfig
from waiting import eventually


def _name(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def topics_are_created_described_grown_and_reconfigured(admin):
    name = _name("contract")
    assert admin.describe_topics([name]) == {name: None}

    assert admin.create_topics([Topic(name, 2, None, {"retention.ms": "60000"})]) == {name: None}
    assert isinstance(admin.create_topics([Topic(name, 2, None)])[name], Exception)  # already exists

    def created():
        """2 partitions and retention.ms as created (brokers learn metadata asynchronously)"""
        described = admin.describe_topics([name])[name]
        return described is not None and described.replication_factor >= 1 and \
            (described.partitions, described.config) == (2, {"retention.ms": "60000"})

    eventually(created, timeout=30)

    assert admin.create_partitions({name: 4}) == {name: None}
    change = AlterTopicConfig(name, {"cleanup.policy": "compact"}, ("retention.ms",))
    assert admin.alter_topic_configs([change]) == {name: None}

    def grown_and_reconfigured():
        """the topic has 4 partitions and only cleanup.policy set (brokers learn metadata asynchronously)"""
        described = admin.describe_topics([name])[name]
        return (described.partitions, described.config) == (4, {"cleanup.policy": "compact"})

    eventually(grown_and_reconfigured, timeout=30)
    assert admin.delete_topics([name]) == {name: None}
    eventually(lambda: admin.describe_topics([name])[name] is None, timeout=30)


def one_bad_item_does_not_fail_the_batch(admin):
    good, bad = _name("good"), _name("bad")
    admin.create_topics([Topic(bad, 1, None)])

    results = admin.create_topics([Topic(good, 1, None), Topic(bad, 1, None)])

    assert results[good] is None and isinstance(results[bad], Exception)


def scram_credentials_come_and_go(admin):
    user = _name("user")
    assert admin.scram_users([user]) == {user: False}
    assert admin.upsert_scram({user: "a-password-of-some-length"}) == {user: None}
    eventually(lambda: admin.scram_users([user]) == {user: True}, timeout=30)
    assert admin.delete_scram([user]) == {user: None}
    eventually(lambda: admin.scram_users([user]) == {user: False}, timeout=30)


def acls_are_observed_per_principal(admin):
    mine, other = f"User:{_name('p')}", f"User:{_name('q')}"
    read = AclBinding(mine, "TOPIC", "orders", "LITERAL", "READ", "ALLOW")
    write = AclBinding(mine, "TOPIC", "orders", "LITERAL", "WRITE", "ALLOW")
    group = AclBinding(mine, "GROUP", "g-", "PREFIXED", "READ", "DENY")
    theirs = AclBinding(other, "TOPIC", "orders", "LITERAL", "READ", "ALLOW")

    assert admin.create_acls([read, write, group, theirs]) == {read: None, write: None, group: None, theirs: None}
    eventually(lambda: admin.acls_of(mine) == {read, write, group}, timeout=30)  # per principal: not theirs

    assert admin.delete_acls([write]) == {write: None}
    eventually(lambda: admin.acls_of(mine) == {read, group}, timeout=30)
    assert admin.acls_of(other) == {theirs}


def user_quotas_are_set_changed_and_removed_one_user_at_a_time(admin):
    mine, other = _name("quota"), _name("quota")
    assert admin.user_quotas([mine, other]) == {mine: {}, other: {}}

    assert admin.alter_user_quotas({mine: {"producer_byte_rate": 1048576.0, "request_percentage": 50.0},
                                    other: {"consumer_byte_rate": 2048.0}}) == {mine: None, other: None}
    both = {mine: {"producer_byte_rate": 1048576.0, "request_percentage": 50.0}, other: {"consumer_byte_rate": 2048.0}}
    eventually(lambda: admin.user_quotas([mine, other]) == both, timeout=30)

    assert admin.alter_user_quotas({mine: {"producer_byte_rate": 2097152.0, "request_percentage": None,
                                           "controller_mutation_rate": 5.0}}) == {mine: None}
    eventually(lambda: admin.user_quotas([mine]) == {mine: {"producer_byte_rate": 2097152.0,
                                                             "controller_mutation_rate": 5.0}}, timeout=30)
    assert admin.user_quotas([other]) == {other: {"consumer_byte_rate": 2048.0}}  # untouched

    assert admin.alter_user_quotas({mine: {"producer_byte_rate": None, "controller_mutation_rate": None},
                                    other: {"consumer_byte_rate": None}}) == {mine: None, other: None}
    eventually(lambda: admin.user_quotas([mine, other]) == {mine: {}, other: {}}, timeout=30)


CONTRACT = [topics_are_created_described_grown_and_reconfigured, one_bad_item_does_not_fail_the_batch,
            scram_credentials_come_and_go, acls_are_observed_per_principal,
            user_quotas_are_set_changed_and_removed_one_user_at_a_time]
