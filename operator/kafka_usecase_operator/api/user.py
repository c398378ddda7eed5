"""KafkaUser: a SASL/SCRAM identity in a use case's cluster, with its ACLs and a credentials Secret."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

from kafka_usecase_operator.api.common import (READY_COLUMNS, Grants, Kind, Model, PrinterColumn, Quotas, Rule,
                                               SecretKeyRef, KafkaStateStatus, UseCaseRef, immutable)

USERNAME = r"^[A-Za-z0-9._@-]+$"


class PasswordSource(Model):
    secret_key_ref: SecretKeyRef
    """A Secret key holding the password (at least 12 characters)."""


class Password(Model):
    value_from: PasswordSource


class Authentication(Model):
    type: Literal["scram-sha-512"] = "scram-sha-512"
    password: Password | None = None
    """Where the password comes from; unset: the operator generates one (32+ characters) and
    rotates it when the KafkaUser is annotated `kafka.usecase.dev/rotate-password`."""


class KafkaUserSpec(Model):
    rules = (Rule("has(self.username) == has(oldSelf.username) && (!has(self.username) || self.username == oldSelf.username)",
                  "username is immutable: it is the Kafka principal that ACLs and credentials belong to",
                  check=None, field_path=".username"),)

    use_case: Annotated[UseCaseRef, Field(json_schema_extra={"x-kubernetes-validations": [immutable("useCase").schema()]})]
    """The KafkaUseCase whose cluster the user lives in. Immutable."""
    username: Annotated[str | None, Field(min_length=1, max_length=253, pattern=USERNAME)] = None
    """Kafka principal name (`User:<username>`); defaults to `<namespace>.<name>`. Immutable."""
    authentication: Authentication = Authentication()
    acls: Grants = []
    """This user's grants; its effective ACLs also include every KafkaAcl that names it."""
    team: Annotated[str | None, Field(max_length=63, pattern=r"^[a-z0-9A-Z]([-a-z0-9A-Z_.]*[a-z0-9A-Z])?$")] = None
    """Owning team; carried as a label on the credentials Secret."""
    quotas: Quotas | None = None
    """This user's quotas; unset: the use case's `quotas.defaults`, if any, else none."""


class QuotasInForce(Quotas):
    source: Literal["KafkaUser", "KafkaUseCase", "None"] = "None"
    """`KafkaUser`: the user's own spec.quotas; `KafkaUseCase`: its use case's quotas.defaults;
    `None`: no quota."""


class KafkaUserStatus(KafkaStateStatus):
    username: str | None = None
    """The Kafka principal is `User:<username>`."""
    secret: str | None = None
    """The Secret with `username`, `password`, `sasl.jaas.config`, `bootstrap.servers` and a `client.properties`."""
    password_rotation: str | None = None
    """The value of the `kafka.usecase.dev/rotate-password` annotation last acted on: setting the
    annotation to any new value rotates the password once."""
    quotas: QuotasInForce | None = None
    """The quotas Kafka enforces for this user, and where they come from."""


KafkaUser = Kind(
    kind="KafkaUser", plural="kafkausers", short_names=("ku",), spec=KafkaUserSpec, status=KafkaUserStatus,
    description="A SASL/SCRAM-SHA-512 user in a use case's cluster, with its ACLs and a Secret of ready-to-use "
                "client credentials.",
    printer_columns=(
        PrinterColumn("Username", ".status.username"),
        PrinterColumn("Use case", ".spec.useCase.name"),
        PrinterColumn("Secret", ".status.secret", priority=1),
        PrinterColumn("Quotas", ".status.quotas.source", priority=1),
        *READY_COLUMNS,
    ),
)
