"""The few admin calls the operator needs, behind a narrow Protocol (cert-manager's ACME client
interface, Strimzi's AdminClientProvider): one real adapter (confluent.py) and an in-memory fake
(fake.py) for planner and executor unit tests. Every call takes a batch and answers per item, so
one failure never hides the others. An item's answer is a value, or the exception it failed with."""

from __future__ import annotations

from typing import Protocol

from kafka_usecase_operator.kafka.model import AclBinding, Topic
from kafka_usecase_operator.kafka.plan import AlterTopicConfig, QuotaChange, QuotaValues


class KafkaAdmin(Protocol):
    def describe_topics(self, names: list[str]) -> dict[str, Topic | None | Exception]:
        """None for a topic that does not exist; config holds the non-default settings only."""

    def create_topics(self, topics: list[Topic]) -> dict[str, Exception | None]: ...

    def create_partitions(self, totals: dict[str, int]) -> dict[str, Exception | None]: ...

    def alter_topic_configs(self, changes: list[AlterTopicConfig]) -> dict[str, Exception | None]: ...

    def delete_topics(self, names: list[str]) -> dict[str, Exception | None]: ...

    def scram_users(self, users: list[str]) -> dict[str, bool | Exception]:
        """Whether each user has a SCRAM-SHA-512 credential."""

    def upsert_scram(self, passwords: dict[str, str]) -> dict[str, Exception | None]: ...

    def delete_scram(self, users: list[str]) -> dict[str, Exception | None]: ...

    def acls_of(self, principal: str) -> set[AclBinding]:
        """The bindings of one principal: filtered on the broker, never a listing of every ACL."""

    def create_acls(self, bindings: list[AclBinding]) -> dict[AclBinding, Exception | None]: ...

    def delete_acls(self, bindings: list[AclBinding]) -> dict[AclBinding, Exception | None]: ...

    def user_quotas(self, users: list[str]) -> dict[str, QuotaValues | Exception]:
        """Each user entity's quotas ({} for none): one request however many users are asked."""

    def alter_user_quotas(self, changes: dict[str, QuotaChange]) -> dict[str, Exception | None]:
        """Set each user's keys, or remove those mapped to None."""
