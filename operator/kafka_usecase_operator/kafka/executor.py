"""The executor: async, per-item calls over one cluster's KafkaAdmin, batched.

Every handler asks for one item (describe this topic, create that user); a Batcher per operation
gathers what many handlers ask within `max_delay` (or `max_items`) into one admin request and
hands each caller its own item's outcome, so one failure never blocks the others. With
`max_items=1` batching is off: one admin request per item (the benchmark's baseline).
"""

from __future__ import annotations

import asyncio
import concurrent.futures

from confluent_kafka import KafkaError, KafkaException

from kafka_usecase_operator.kafka.admin import KafkaAdmin
from kafka_usecase_operator.kafka.batching import Batcher
from kafka_usecase_operator.kafka.model import AclBinding, Topic
from kafka_usecase_operator.kafka.plan import AlterTopicConfig, QuotaChange, QuotaValues

# Errors that mean "the cluster cannot be reached (yet)", not "Kafka refused this item".
UNREACHABLE_CODES = {KafkaError._TRANSPORT, KafkaError._TIMED_OUT, KafkaError._ALL_BROKERS_DOWN, KafkaError._RESOLVE,
                     KafkaError._TIMED_OUT_QUEUE, KafkaError.REQUEST_TIMED_OUT, KafkaError._AUTHENTICATION,
                     KafkaError.NOT_CONTROLLER, KafkaError.BROKER_NOT_AVAILABLE}


def error_code(error: BaseException) -> int | None:
    if isinstance(error, KafkaException) and error.args and isinstance(error.args[0], KafkaError):
        return error.args[0].code()
    return None


def is_unreachable(error: BaseException) -> bool:
    if isinstance(error, (TimeoutError, concurrent.futures.TimeoutError)):
        return True
    return error_code(error) in UNREACHABLE_CODES


def describe_error(error: BaseException) -> str:
    """Kafka's own words, without the exception class noise."""
    if isinstance(error, KafkaException) and error.args and isinstance(error.args[0], KafkaError):
        return error.args[0].str()
    return str(error) or type(error).__name__


def _first(item):
    return item[0]


class KafkaExecutor:
    def __init__(self, admin: KafkaAdmin, max_items: int = 100, max_delay: float = 0.1):
        self.admin = admin

        def batcher(call, key=lambda item: item):
            return Batcher(call, key, max_items=max_items, max_delay=max_delay if max_items > 1 else 0.0)

        self._describe = batcher(admin.describe_topics)
        self._create = batcher(admin.create_topics, key=lambda topic: topic.name)
        self._partitions = batcher(lambda items: admin.create_partitions(dict(items)), key=_first)
        self._configs = batcher(admin.alter_topic_configs, key=lambda change: change.name)
        self._delete = batcher(admin.delete_topics)
        self._scram = batcher(admin.scram_users)
        self._upsert = batcher(lambda items: admin.upsert_scram(dict(items)), key=_first)
        self._delete_scram = batcher(admin.delete_scram)
        self._create_acls = batcher(admin.create_acls)
        self._delete_acls = batcher(admin.delete_acls)
        # A describe reads every user entity at once: one request serves a whole resync's users.
        self._quotas = Batcher(admin.user_quotas, max_items=max(max_items, 10_000) if max_items > 1 else 1,
                               max_delay=max_delay if max_items > 1 else 0.0)
        self._alter_quotas = batcher(lambda items: admin.alter_user_quotas(dict(items)), key=_first)
        self._batchers = [self._describe, self._create, self._partitions, self._configs, self._delete, self._scram,
                          self._upsert, self._delete_scram, self._create_acls, self._delete_acls, self._quotas,
                          self._alter_quotas]
        self._acl_reads = 0

    def explain(self, error: BaseException) -> str:
        """Kafka's words for a failure; a timeout caused by a refused login says so."""
        authentication = getattr(self.admin, "authentication_error", None)
        if authentication and is_unreachable(error):
            return f"{describe_error(error)} ({authentication})"
        return describe_error(error)

    @property
    def requests_sent(self) -> int:
        return self._acl_reads + sum(b.requests_sent for b in self._batchers)

    async def describe_topic(self, name: str) -> Topic | None:
        return await self._describe.submit(name)

    async def create_topic(self, topic: Topic) -> None:
        await self._create.submit(topic)

    async def add_partitions(self, name: str, total: int) -> None:
        await self._partitions.submit((name, total))

    async def alter_config(self, change: AlterTopicConfig) -> None:
        await self._configs.submit(change)

    async def delete_topic(self, name: str) -> None:
        await self._delete.submit(name)

    async def scram_exists(self, user: str) -> bool:
        return await self._scram.submit(user)

    async def upsert_scram(self, user: str, password: str) -> None:
        await self._upsert.submit((user, password))

    async def delete_scram(self, user: str) -> None:
        await self._delete_scram.submit(user)

    async def user_quotas(self, user: str) -> QuotaValues:
        return await self._quotas.submit(user)

    async def alter_user_quotas(self, user: str, change: QuotaChange) -> None:
        await self._alter_quotas.submit((user, change))

    def close(self) -> None:
        close = getattr(self.admin, "close", None)
        if close:
            close()

    async def acls_of(self, principal: str) -> set[AclBinding]:
        """Filtered on the broker by principal: one request each (a filter cannot be batched)."""
        self._acl_reads += 1
        return await asyncio.to_thread(self.admin.acls_of, principal)

    async def create_acls(self, bindings) -> list[BaseException]:
        """Every binding's own outcome gathered; the failures returned."""
        return _failures(await asyncio.gather(*(self._create_acls.submit(b) for b in bindings), return_exceptions=True))

    async def delete_acls(self, bindings) -> list[BaseException]:
        return _failures(await asyncio.gather(*(self._delete_acls.submit(b) for b in bindings), return_exceptions=True))


def _failures(outcomes) -> list[BaseException]:
    return [outcome for outcome in outcomes if isinstance(outcome, BaseException)]
