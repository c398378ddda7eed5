"""The Secret a KafkaUser's applications mount: pure, so its exact contents are unit-tested."""

from __future__ import annotations

import base64

from kafka_usecase_operator.render.cluster import GROUP, MANAGED_BY

TEAM_LABEL = f"{GROUP}/team"
USER_LABEL = f"{GROUP}/kafka-user"
SCRAM_MECHANISM = "SCRAM-SHA-512"


def jaas_config(username: str, password: str) -> str:
    quoted = [value.replace("\\", "\\\\").replace('"', '\\"') for value in (username, password)]
    return f'org.apache.kafka.common.security.scram.ScramLoginModule required username="{quoted[0]}" ' \
           f'password="{quoted[1]}";'


def credentials(username: str, password: str, bootstrap_servers: str, security_protocol: str) -> dict[str, str]:
    jaas = jaas_config(username, password)
    properties = (f"bootstrap.servers={bootstrap_servers}\nsecurity.protocol={security_protocol}\n"
                  f"sasl.mechanism={SCRAM_MECHANISM}\nsasl.jaas.config={jaas}\n")
    return {"username": username, "password": password, "sasl.jaas.config": jaas,
            "bootstrap.servers": bootstrap_servers, "security.protocol": security_protocol,
            "sasl.mechanism": SCRAM_MECHANISM, "client.properties": properties}


def user_secret(user: dict, data: dict[str, str], team: str | None) -> dict:
    """Owned by the KafkaUser (deleted with it); `team` as a label so teams can find their Secrets."""
    meta = user["metadata"]
    labels = {"app.kubernetes.io/managed-by": MANAGED_BY, "app.kubernetes.io/part-of": "kafka-usecase-operator",
              "app.kubernetes.io/component": "kafka-user-credentials", USER_LABEL: meta["name"]}
    if team:
        labels[TEAM_LABEL] = team
    return {
        "apiVersion": "v1", "kind": "Secret", "type": "Opaque",
        "metadata": {"name": meta["name"], "namespace": meta["namespace"], "labels": labels,
                     "ownerReferences": [{"apiVersion": user["apiVersion"], "kind": user["kind"], "name": meta["name"],
                                          "uid": meta["uid"], "controller": True, "blockOwnerDeletion": False}]},
        "data": {key: base64.b64encode(value.encode()).decode() for key, value in data.items()},
    }


def read(secret: dict | None) -> dict[str, str]:
    return {k: base64.b64decode(v).decode() for k, v in ((secret or {}).get("data") or {}).items()}


def owned_by(secret: dict, uid: str) -> bool:
    return any(ref.get("uid") == uid for ref in secret["metadata"].get("ownerReferences") or [])
