"""Small real-client checks shared by `devstack demo` and the smoke tests."""

from __future__ import annotations

import time

from confluent_kafka import Consumer, KafkaError, KafkaException, Producer
from confluent_kafka.admin import (AclBinding, AclOperation, AclPermissionType, AdminClient, NewTopic,
                                   ResourcePatternType, ResourceType, ScramCredentialInfo, ScramMechanism,
                                   UserScramCredentialUpsertion)


def create_topic(admin: AdminClient, name: str, partitions: int = 1) -> None:
    admin.create_topics([NewTopic(name, num_partitions=partitions)], request_timeout=30)[name].result(timeout=60)


def create_scram_user(admin: AdminClient, user: str, password: str) -> None:
    upsert = UserScramCredentialUpsertion(user, ScramCredentialInfo(ScramMechanism.SCRAM_SHA_512, 8192),
                                          password.encode())
    admin.alter_user_scram_credentials([upsert])[user].result(timeout=60)


def authenticates_everywhere(bootstrap: str, user: str, password: str) -> bool:
    """True once every broker accepts the user's SCRAM login: a new credential reaches the brokers
    asynchronously (ZooKeeper watches, KRaft metadata), so a fresh user can be refused for a moment."""
    for broker in bootstrap.split(","):
        errors: list[int] = []
        client = AdminClient({"bootstrap.servers": broker, "security.protocol": "SASL_PLAINTEXT",
                              "sasl.mechanism": "SCRAM-SHA-512", "sasl.username": user, "sasl.password": password,
                              "log_level": 0, "error_cb": lambda error: errors.append(error.code())})
        try:
            client.list_topics(timeout=5)
        except KafkaException:
            return False
        client.poll(0)
        if KafkaError._AUTHENTICATION in errors:
            return False
    return True


def grant_topic(admin: AdminClient, user: str, topic: str, *operations: AclOperation) -> None:
    bindings = [AclBinding(ResourceType.TOPIC, topic, ResourcePatternType.LITERAL, f"User:{user}", "*",
                           operation, AclPermissionType.ALLOW) for operation in operations]
    for future in admin.create_acls(bindings, request_timeout=30).values():
        future.result(timeout=60)


def produce_as(bootstrap: str, user: str, password: str, topic: str, timeout: float = 20) -> int | None:
    """Produce one message as `user`; None on success, else the KafkaError code that stopped it.

    An authentication failure arrives through error_cb while the message itself would only time
    out, so both channels are watched and an authentication error ends the wait at once.
    """
    client_errors: list[int] = []
    producer = Producer({
        "bootstrap.servers": bootstrap, "security.protocol": "SASL_PLAINTEXT", "sasl.mechanism": "SCRAM-SHA-512",
        "sasl.username": user, "sasl.password": password, "message.timeout.ms": int(timeout * 1000),
        "log_level": 0,  # failures are reported through error_cb and delivery reports, not stderr
        "error_cb": lambda error: client_errors.append(error.code()),
    })
    delivery: list[KafkaError | None] = []
    producer.produce(topic, b"hello", on_delivery=lambda error, _msg: delivery.append(error))
    deadline = time.monotonic() + timeout + 5
    while not delivery and KafkaError._AUTHENTICATION not in client_errors and time.monotonic() < deadline:
        producer.poll(0.1)
    if KafkaError._AUTHENTICATION in client_errors:
        return KafkaError._AUTHENTICATION
    if delivery:
        return None if delivery[0] is None else delivery[0].code()
    return KafkaError._MSG_TIMED_OUT


def consume_as(bootstrap: str, user: str, password: str, topic: str, group: str, timeout: float = 20) -> int | None:
    """Read one message from the start of `topic` in consumer group `group`; None on success, else
    the KafkaError code that stopped it (e.g. GROUP_AUTHORIZATION_FAILED)."""
    consumer = Consumer({
        "bootstrap.servers": bootstrap, "security.protocol": "SASL_PLAINTEXT", "sasl.mechanism": "SCRAM-SHA-512",
        "sasl.username": user, "sasl.password": password, "group.id": group, "auto.offset.reset": "earliest",
        "log_level": 0})
    try:
        consumer.subscribe([topic])
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            message = consumer.poll(0.5)
            if message is None:
                continue
            if message.error():
                if message.error().code() == KafkaError._PARTITION_EOF:
                    continue
                return message.error().code()
            return None
        return KafkaError._TIMED_OUT
    finally:
        consumer.close()
