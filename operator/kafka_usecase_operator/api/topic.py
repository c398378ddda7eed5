"""KafkaTopic: a topic in a use case's cluster."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

from kafka_usecase_operator.api.common import (READY_COLUMNS, ConfigMap, Kind, Model, PrinterColumn, Rule, KafkaStateStatus,
                                               UseCaseRef, immutable)

TOPIC_NAME = r"^[a-zA-Z0-9._-]+$"
MAX_TOPIC_NAME = 249


class KafkaTopicSpec(Model):
    use_case: Annotated[UseCaseRef, Field(json_schema_extra={"x-kubernetes-validations": [immutable("useCase").schema()]})]
    """The KafkaUseCase whose cluster holds the topic. Immutable."""
    topic_name: Annotated[str | None, Field(min_length=1, max_length=MAX_TOPIC_NAME, pattern=TOPIC_NAME)] = None
    """Name of the topic in Kafka; defaults to metadata.name. Letters, digits, '.', '_' and '-',
    at most 249 characters. Immutable."""
    partitions: Annotated[int, Field(ge=1, le=1_000_000)] = 1
    """Number of partitions; can grow, never shrink."""
    replicas: Annotated[int | None, Field(ge=1, le=32767)] = None
    """Replication factor; the cluster's default.replication.factor when unset. Cannot change after creation."""
    config: ConfigMap = {}
    """Topic configuration, e.g. `retention.ms: 604800000`, `cleanup.policy: compact`."""
    deletion_policy: Literal["Retain", "Delete"] = "Retain"
    """What deleting this object does to the topic: `Retain` keeps it and its data in Kafka, `Delete` deletes it."""

    rules = (Rule("!has(self.topicName) || (self.topicName != '.' && self.topicName != '..')",
                  "may not be '.' or '..'", check=lambda s: s.topic_name not in (".", ".."), field_path=".topicName"),)


def _effective_name(obj: str) -> str:
    return f"(has({obj}.spec.topicName) ? {obj}.spec.topicName : {obj}.metadata.name)"


class KafkaTopicStatus(KafkaStateStatus):
    topic_name: str | None = None
    """The topic's name in Kafka."""
    topic_id: str | None = None
    partitions: int | None = None
    """Partitions the topic has in Kafka."""
    replicas: int | None = None


KafkaTopic = Kind(
    kind="KafkaTopic", plural="kafkatopics", short_names=("kt",), spec=KafkaTopicSpec, status=KafkaTopicStatus,
    description="A Kafka topic in a use case's cluster.",
    printer_columns=(
        PrinterColumn("Topic", ".status.topicName"),
        PrinterColumn("Use case", ".spec.useCase.name"),
        PrinterColumn("Partitions", ".spec.partitions", type="integer"),
        PrinterColumn("Replicas", ".spec.replicas", type="integer"),
        *READY_COLUMNS,
    ),
    object_rules=(
        Rule(f"{_effective_name('self')} == {_effective_name('oldSelf')}",
             "the topic's name (spec.topicName, or metadata.name when unset) cannot change", check=None,
             field_path=".spec.topicName"),
        Rule("has(self.spec.topicName) || (size(self.metadata.name) <= 249 && self.metadata.name != '.' "
             "&& self.metadata.name != '..')",
             "metadata.name is not a legal topic name: set spec.topicName",
             check=lambda obj: obj[0].topic_name is not None or len(obj[1].get("name", "")) <= MAX_TOPIC_NAME,
             field_path=".spec.topicName"),
    ),
)
