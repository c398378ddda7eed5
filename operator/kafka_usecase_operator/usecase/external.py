"""Can the operator reach an external use case's cluster with its admin Secret? One admin request."""

from __future__ import annotations

import base64

from confluent_kafka import KafkaError, KafkaException
from confluent_kafka.admin import AdminClient

from kafka_usecase_operator.api.usecase import ExternalCluster


def check_external(external: ExternalCluster, secret: dict | None, timeout: float) -> str | None:
    """None when the admin connection works, else why not (never including the password)."""
    name = external.admin_secret_ref.name
    if secret is None:
        return f"admin Secret {name} not found"
    data = {key: base64.b64decode(value).decode() for key, value in (secret.get("data") or {}).items()}
    missing = [key for key in ("username", "password") if key not in data]
    if missing:
        return f"admin Secret {name} has no key {' or '.join(missing)}"
    client_errors: list[KafkaError] = []
    admin = AdminClient({
        "bootstrap.servers": external.bootstrap_servers, "security.protocol": external.security_protocol,
        "sasl.mechanism": external.sasl_mechanism, "sasl.username": data["username"],
        "sasl.password": data["password"], "log_level": 0, "error_cb": client_errors.append,
    })
    try:
        admin.describe_cluster(request_timeout=timeout).result(timeout=timeout + 5)
        return None
    except KafkaException as error:
        admin.poll(0)  # serve error_cb: an authentication failure says more than the timeout it causes
        auth = [e for e in client_errors if e.code() == KafkaError._AUTHENTICATION]
        return f"authentication failed for {data['username']}" if auth else str(error.args[0].str())
