"""KafkaAcl: one set of grants shared by several KafkaUsers."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

from kafka_usecase_operator.api.common import (DNS_LABEL, DNS_SUBDOMAIN, MAX_GRANTS, READY_COLUMNS, AclRule, Kind,
                                               Model, PrinterColumn, KafkaStateStatus, UseCaseRef, immutable)


class UserRef(Model):
    name: Annotated[str, Field(min_length=1, max_length=253, pattern=DNS_SUBDOMAIN)]
    """Name of a KafkaUser."""
    namespace: Annotated[str | None, Field(max_length=63, pattern=DNS_LABEL)] = None
    """Its namespace; defaults to this KafkaAcl's namespace."""


class KafkaAclSpec(Model):
    use_case: Annotated[UseCaseRef, Field(json_schema_extra={"x-kubernetes-validations": [immutable("useCase").schema()]})]
    """The KafkaUseCase whose cluster the grants apply to. Immutable."""
    principals: Annotated[list[UserRef], Field(min_length=1, max_length=256)]
    """The KafkaUsers these grants apply to."""
    acls: Annotated[list[AclRule], Field(min_length=1, max_length=MAX_GRANTS)]
    """The grants; a principal's effective ACLs are the union of its KafkaUser's and every KafkaAcl naming it."""


class KafkaAclStatus(KafkaStateStatus):
    bindings: int | None = None
    """ACL bindings in Kafka that this object contributes."""


KafkaAcl = Kind(
    kind="KafkaAcl", plural="kafkaacls", short_names=("kacl",), spec=KafkaAclSpec, status=KafkaAclStatus,
    description="Grants shared by several KafkaUsers in one use case.",
    printer_columns=(
        PrinterColumn("Use case", ".spec.useCase.name"),
        PrinterColumn("Bindings", ".status.bindings", type="integer"),
        *READY_COLUMNS,
    ),
)
