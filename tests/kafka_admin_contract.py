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


CONTRACT = [topics_are_created_described_grown_and_reconfigured, one_bad_item_does_not_fail_the_batch,
            scram_credentials_come_and_go, acls_are_observed_per_principal]
