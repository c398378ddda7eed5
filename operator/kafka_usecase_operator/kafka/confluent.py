"""KafkaAdmin on confluent-kafka's AdminClient: one request per batch, answers per item. Client
quotas, which confluent-kafka lacks, go through kafka-python (quotas.py)."""

from __future__ import annotations

from concurrent.futures import Future

from confluent_kafka import KafkaError, KafkaException, TopicCollection
from confluent_kafka import admin as ck

from kafka_usecase_operator.kafka.model import AclBinding, Topic
from kafka_usecase_operator.kafka.plan import AlterTopicConfig
from kafka_usecase_operator.kafka.quotas import KafkaPythonQuotas

SCRAM = ck.ScramMechanism.SCRAM_SHA_512
SCRAM_ITERATIONS = 4096  # the minimum Kafka accepts for SCRAM-SHA-512, as Strimzi uses: hashed client-side, per user


class ConfluentKafkaAdmin:
    def __init__(self, config: dict, timeout: float = 30.0):
        # librdkafka's own log lines would print every retry to stderr; errors reach us as results,
        # and an authentication failure (which otherwise shows only as a timeout) is kept here.
        self.authentication_error: str | None = None
        self.client = ck.AdminClient({**config, "log_level": 0, "error_cb": self._on_error})
        self.timeout = timeout
        self.quotas = KafkaPythonQuotas(config, timeout)

    def close(self) -> None:
        """confluent-kafka's client goes with its last reference; kafka-python's has a thread to stop."""
        self.quotas.close()

    def _on_error(self, error: KafkaError) -> None:
        if error.code() == KafkaError._AUTHENTICATION:
            self.authentication_error = error.str()

    # --- topics ---------------------------------------------------------------------------------
    def describe_topics(self, names):
        if not names:
            return {}
        described = self.client.describe_topics(TopicCollection(list(names)), request_timeout=self.timeout)
        configs = self.client.describe_configs([ck.ConfigResource(ck.ResourceType.TOPIC, n) for n in names],
                                               request_timeout=self.timeout)
        configs_by_name = {resource.name: future for resource, future in configs.items()}
        results = {}
        for name, future in described.items():
            try:
                description = future.result(timeout=self.timeout + 5)
            except KafkaException as error:
                results[name] = None if _code(error) == KafkaError.UNKNOWN_TOPIC_OR_PART else error
                continue
            try:
                entries = configs_by_name[name].result(timeout=self.timeout + 5)
            except KafkaException as error:
                results[name] = error
                continue
            overrides = {k: e.value for k, e in entries.items()
                         if e.source == ck.ConfigSource.DYNAMIC_TOPIC_CONFIG.value}
            results[name] = Topic(name, len(description.partitions), len(description.partitions[0].replicas), overrides,
                                  topic_id=str(description.topic_id))
        return results

    def create_topics(self, topics):
        new = [ck.NewTopic(t.name, num_partitions=t.partitions, replication_factor=t.replication_factor or -1,
                           config=dict(t.config)) for t in topics]
        return self._per_item(self.client.create_topics(new, request_timeout=self.timeout) if new else {})

    def create_partitions(self, totals):
        new = [ck.NewPartitions(name, total) for name, total in totals.items()]
        return self._per_item(self.client.create_partitions(new, request_timeout=self.timeout) if new else {})

    def alter_topic_configs(self, changes: list[AlterTopicConfig]):
        resources = []
        for change in changes:
            entries = [ck.ConfigEntry(k, v, incremental_operation=ck.AlterConfigOpType.SET) for k, v in change.set.items()]
            entries += [ck.ConfigEntry(k, None, incremental_operation=ck.AlterConfigOpType.DELETE) for k in change.delete]
            resources.append(ck.ConfigResource(ck.ResourceType.TOPIC, change.name, incremental_configs=entries))
        if not resources:
            return {}
        futures = self.client.incremental_alter_configs(resources, request_timeout=self.timeout)
        return {resource.name: _outcome(future, self.timeout) for resource, future in futures.items()}

    def delete_topics(self, names):
        return self._per_item(self.client.delete_topics(list(names), request_timeout=self.timeout) if names else {})

    # --- SCRAM ----------------------------------------------------------------------------------
    def scram_users(self, users):
        if not users:
            return {}
        futures = self.client.describe_user_scram_credentials(list(users), request_timeout=self.timeout)
        results = {}
        for user, future in futures.items():
            try:
                description = future.result(timeout=self.timeout + 5)
                results[user] = any(info.mechanism == SCRAM for info in description.scram_credential_infos)
            except KafkaException as error:
                results[user] = False if _code(error) == KafkaError.RESOURCE_NOT_FOUND else error
        return results

    def upsert_scram(self, passwords):
        changes = [ck.UserScramCredentialUpsertion(user, ck.ScramCredentialInfo(SCRAM, SCRAM_ITERATIONS), password.encode())
                   for user, password in passwords.items()]
        return self._per_item(self.client.alter_user_scram_credentials(changes, request_timeout=self.timeout)
                              if changes else {})

    def delete_scram(self, users):
        changes = [ck.UserScramCredentialDeletion(user, SCRAM) for user in users]
        return self._per_item(self.client.alter_user_scram_credentials(changes, request_timeout=self.timeout)
                              if changes else {})

    # --- ACLs -----------------------------------------------------------------------------------
    def acls_of(self, principal):
        query = ck.AclBindingFilter(ck.ResourceType.ANY, None, ck.ResourcePatternType.ANY, principal, None,
                                    ck.AclOperation.ANY, ck.AclPermissionType.ANY)
        found = self.client.describe_acls(query, request_timeout=self.timeout).result(timeout=self.timeout + 5)
        return {_from_confluent(b) for b in found}

    def create_acls(self, bindings):
        if not bindings:
            return {}
        futures = self.client.create_acls([_to_confluent(b) for b in bindings], request_timeout=self.timeout)
        by_key = {_from_confluent(b): future for b, future in futures.items()}
        return {binding: _outcome(by_key[binding], self.timeout) for binding in bindings}

    def delete_acls(self, bindings):
        if not bindings:
            return {}
        filters = [_to_confluent(b, filter=True) for b in bindings]
        futures = self.client.delete_acls(filters, request_timeout=self.timeout)
        outcomes = [_outcome(future, self.timeout) for future in futures.values()]
        return dict(zip(bindings, outcomes))

    # --- client quotas (kafka-python) -------------------------------------------------------------
    def user_quotas(self, users):
        return self.quotas.user_quotas(users)

    def alter_user_quotas(self, changes):
        return self.quotas.alter_user_quotas(changes)

    def _per_item(self, futures: dict) -> dict:
        return {key: _outcome(future, self.timeout) for key, future in futures.items()}


def _outcome(future: Future, timeout: float) -> Exception | None:
    try:
        future.result(timeout=timeout + 5)
        return None
    except Exception as error:  # per item: reported, never raised past the batch
        return error


def _code(error: KafkaException) -> int | None:
    return error.args[0].code() if error.args and isinstance(error.args[0], KafkaError) else None


def _to_confluent(binding: AclBinding, filter: bool = False):
    make = ck.AclBindingFilter if filter else ck.AclBinding
    return make(ck.ResourceType[binding.resource_type], binding.resource_name,
                ck.ResourcePatternType[binding.pattern_type], binding.principal, binding.host,
                ck.AclOperation[binding.operation], ck.AclPermissionType[binding.permission])


def _from_confluent(binding) -> AclBinding:
    return AclBinding(binding.principal, binding.restype.name, binding.name, binding.resource_pattern_type.name,
                      binding.operation.name, binding.permission_type.name, binding.host)
