"""An in-memory KafkaAdmin for unit tests of planners and executors: the same contract as the
real adapter (tests/contract_kafka_admin.py runs against both), none of the I/O."""

from __future__ import annotations

import uuid
from dataclasses import replace

from kafka_usecase_operator.kafka.model import AclBinding, Topic
from kafka_usecase_operator.kafka.plan import AlterTopicConfig


class KafkaAdminError(Exception):
    pass


class FakeKafkaAdmin:
    def __init__(self, default_replication_factor: int = 1):
        self.topics: dict[str, Topic] = {}
        self.scram: dict[str, str] = {}
        self.acls: set[AclBinding] = set()
        self.quotas: dict[str, dict[str, float]] = {}  # user -> Kafka's quota key -> value
        self.default_replication_factor = default_replication_factor

    def describe_topics(self, names):
        return {name: self.topics.get(name) for name in names}

    def create_topics(self, topics):
        results = {}
        for topic in topics:
            if topic.name in self.topics:
                results[topic.name] = KafkaAdminError(f"Topic '{topic.name}' already exists.")
                continue
            rf = topic.replication_factor or self.default_replication_factor
            self.topics[topic.name] = replace(topic, replication_factor=rf, config=dict(topic.config),
                                              topic_id=str(uuid.uuid4()))
            results[topic.name] = None
        return results

    def create_partitions(self, totals):
        results = {}
        for name, total in totals.items():
            topic = self.topics.get(name)
            if topic is None or total <= topic.partitions:
                results[name] = KafkaAdminError(f"cannot set {name} to {total} partitions")
                continue
            self.topics[name] = replace(topic, partitions=total)
            results[name] = None
        return results

    def alter_topic_configs(self, changes: list[AlterTopicConfig]):
        results = {}
        for change in changes:
            topic = self.topics.get(change.name)
            if topic is None:
                results[change.name] = KafkaAdminError(f"unknown topic {change.name}")
                continue
            config = {k: v for k, v in topic.config.items() if k not in change.delete} | change.set
            self.topics[change.name] = replace(topic, config=config)
            results[change.name] = None
        return results

    def delete_topics(self, names):
        return {name: None if self.topics.pop(name, None) else KafkaAdminError(f"unknown topic {name}")
                for name in names}

    def scram_users(self, users):
        return {user: user in self.scram for user in users}

    def upsert_scram(self, passwords):
        self.scram.update(passwords)
        return {user: None for user in passwords}

    def delete_scram(self, users):
        return {user: None if self.scram.pop(user, None) is not None else KafkaAdminError(f"no credential for {user}")
                for user in users}

    def acls_of(self, principal):
        return {binding for binding in self.acls if binding.principal == principal}

    def create_acls(self, bindings):
        self.acls.update(bindings)
        return {binding: None for binding in bindings}

    def delete_acls(self, bindings):
        self.acls.difference_update(bindings)
        return {binding: None for binding in bindings}

    def user_quotas(self, users):
        return {user: dict(self.quotas.get(user, {})) for user in users}

    def alter_user_quotas(self, changes):
        for user, change in changes.items():
            values = self.quotas.setdefault(user, {})
            for key, value in change.items():
                if value is None:
                    values.pop(key, None)
                else:
                    values[key] = value
            if not values:
                del self.quotas[user]
        return {user: None for user in changes}
