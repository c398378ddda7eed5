"""The custom resources' API (group kafka.usecase.dev, version v1alpha1) as pydantic models.

The models are the single source of truth: the CRDs in crds/ and docs/api.md are generated from
them (`make crds`), and handlers validate every spec with them again on entry.
"""

from kafka_usecase_operator.api.acl import KafkaAcl, KafkaAclSpec, KafkaAclStatus
from kafka_usecase_operator.api.common import Condition, InvalidSpec, Kind, Reason
from kafka_usecase_operator.api.topic import KafkaTopic, KafkaTopicSpec, KafkaTopicStatus
from kafka_usecase_operator.api.usecase import KafkaUseCase, KafkaUseCaseSpec, KafkaUseCaseStatus
from kafka_usecase_operator.api.user import KafkaUser, KafkaUserSpec, KafkaUserStatus

GROUP = "kafka.usecase.dev"
VERSION = "v1alpha1"
KINDS = (KafkaUseCase, KafkaTopic, KafkaUser, KafkaAcl)

__all__ = [
    "GROUP", "VERSION", "KINDS", "Condition", "InvalidSpec", "Kind", "Reason",
    "KafkaUseCase", "KafkaUseCaseSpec", "KafkaUseCaseStatus", "KafkaTopic", "KafkaTopicSpec", "KafkaTopicStatus",
    "KafkaUser", "KafkaUserSpec", "KafkaUserStatus", "KafkaAcl", "KafkaAclSpec", "KafkaAclStatus",
]
