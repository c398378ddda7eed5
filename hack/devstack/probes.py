"""Small real-client checks shared by `devstack demo` and the smoke tests."""

from __future__ import annotations

from confluent_kafka import KafkaError, Producer
from confluent_kafka.admin import (AclBinding, AclOperation, AclPermissionType, AdminClient, NewTopic,
                                   ResourcePatternType, ResourceType, ScramCredentialInfo, ScramMechanism,
                                   UserScramCredentialUpsertion)


def create_topic(admin: AdminClient, name: str, partitions: int = 1) -> None:
    admin.create_topics([NewTopic(name, num_partitions=partitions)], request_timeout=30)[name].result(timeout=60)


def create_scram_user(admin: AdminClient, user: str, password: str) -> None:
    upsert = UserScramCredentialUpsertion(user, ScramCredentialInfo(ScramMechanism.SCRAM_SHA_512, 8192),
                                          password.encode())
    admin.alter_user_scram_credentials([upsert])[user].result(timeout=60)


def grant_topic(admin: AdminClient, user: str, topic: str, *operations: AclOperation) -> None:
    bindings = [AclBinding(ResourceType.TOPIC, topic, ResourcePatternType.LITERAL, f"User:{user}", "*",
                           operation, AclPermissionType.ALLOW) for operation in operations]
    for future in admin.create_acls(bindings, request_timeout=30).values():
        future.result(timeout=60)


def produce_as(bootstrap: str, user: str, password: str, topic: str, timeout: float = 20) -> int | None:
    """Produce one message as `user`; None on success, else the first KafkaError code seen.

    Authentication failures arrive through error_cb (the message itself would only time out),
    so both channels are watched.
    """
    errors: list[int] = []
    producer = Producer({
        "bootstrap.servers": bootstrap, "security.protocol": "SASL_PLAINTEXT", "sasl.mechanism": "SCRAM-SHA-512",
        "sasl.username": user, "sasl.password": password, "message.timeout.ms": int(timeout * 1000),
        "error_cb": lambda error: errors.append(error.code()),
    })
    delivery: list[KafkaError | None] = []
    producer.produce(topic, b"hello", on_delivery=lambda error, _msg: delivery.append(error))
    remaining = producer.flush(timeout + 5)
    if delivery and delivery[0] is None:
        return None
    if errors:  # an authentication failure says why better than the timeout it causes
        return errors[0] if KafkaError._AUTHENTICATION not in errors else KafkaError._AUTHENTICATION
    if delivery:
        return delivery[0].code()
    return KafkaError._MSG_TIMED_OUT if remaining else KafkaError._FAIL
