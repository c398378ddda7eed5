"""What the operator knows of every custom resource, from its watches (kopf indexes), so that
deciding a topic's owner, a principal's ACL union or a use case's whole desired state costs no
API request. kopf starts handlers only once every index is filled, so no decision is taken on
half the picture (an ACL union missing a KafkaAcl would remove its bindings).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Iterable, Mapping

from kafka_usecase_operator.api import GROUP

# kopf's finalizer too: on topics, users and ACLs the operator sets it itself, before it first writes
# to Kafka for the object, and kopf removes it once the deletion handler has cleaned up.
FINALIZER = f"{GROUP}/finalizer"
ADOPT = f"{GROUP}/adopt"
ROTATE = f"{GROUP}/rotate-password"
_OUR_ANNOTATIONS = (ADOPT, ROTATE)

UseCaseKey = tuple[str, str]  # (namespace, name)


def snapshot(body: Mapping[str, Any]) -> dict:
    """The parts of an object the operator reads later: small, and a plain dict."""
    meta = body["metadata"]
    annotations = {k: v for k, v in (meta.get("annotations") or {}).items() if k in _OUR_ANNOTATIONS}
    return {
        "apiVersion": body["apiVersion"], "kind": body["kind"],
        "metadata": {k: meta.get(k) for k in ("name", "namespace", "uid", "generation", "resourceVersion",
                                                "creationTimestamp", "deletionTimestamp")}
        | {"finalizers": list(meta.get("finalizers") or []), "annotations": annotations},
        "spec": dict(body.get("spec") or {}), "status": dict(body.get("status") or {}),
    }


def pack(body: Mapping[str, Any]) -> str:
    """A snapshot as compact JSON: what the indexes keep. At 10,000 objects, nested dicts per
    object cost tens of megabytes; a string costs a few hundred bytes and compares in one step."""
    return json.dumps(snapshot(body), separators=(",", ":"))


def unpack(packed: str) -> dict:
    return json.loads(packed)


def use_case_key(body: Mapping[str, Any]) -> UseCaseKey | None:
    ref = (body.get("spec") or {}).get("useCase")
    if not isinstance(ref, Mapping) or not ref.get("name"):
        return None
    return ref.get("namespace") or body["metadata"]["namespace"], ref["name"]


def deleting(obj: Mapping[str, Any]) -> bool:
    return bool(obj["metadata"].get("deletionTimestamp"))


@dataclass(frozen=True)
class Claim:
    """One object's claim on a name (a topic, a username) in a use case: the oldest claim wins."""

    created: str
    uid: str
    namespace: str
    name: str
    deleting: bool

    @property
    def ref(self) -> str:
        return f"{self.namespace}/{self.name}"


def claim(body: Mapping[str, Any]) -> Claim:
    meta = body["metadata"]
    return Claim(meta.get("creationTimestamp") or "", meta["uid"], meta["namespace"], meta["name"],
                 bool(meta.get("deletionTimestamp")))


def owner_of(claims: Iterable[Claim]) -> Claim | None:
    live = [c for c in claims if not c.deleting]
    return min(live, key=lambda c: (c.created, c.uid)) if live else None


def topic_name(body: Mapping[str, Any]) -> str:
    return (body.get("spec") or {}).get("topicName") or body["metadata"]["name"]


def username(body: Mapping[str, Any]) -> str:
    return (body.get("spec") or {}).get("username") or f"{body['metadata']['namespace']}.{body['metadata']['name']}"


@dataclass(frozen=True)
class World:
    """The indexes, as kopf passes them to handlers (each maps a key to the values of all objects
    that gave it)."""

    usecases: Mapping  # (ns, name) -> [packed snapshot]
    topics: Mapping  # use case -> [packed snapshot]
    topic_claims: Mapping  # (use case, topic name) -> [Claim]
    users: Mapping  # use case -> [packed snapshot]
    user_claims: Mapping  # (use case, username) -> [Claim]
    user_refs: Mapping  # (ns, name) -> [packed snapshot]
    acls: Mapping  # use case -> [packed snapshot]
    acls_by_user: Mapping  # (use case, user ns, user name) -> [packed snapshot]

    @classmethod
    def of(cls, kwargs: Mapping[str, Any]) -> World:
        return cls(**{name: kwargs[name] for name in cls.__dataclass_fields__})

    def use_case(self, key: UseCaseKey) -> dict | None:
        return _first(self.usecases.get(key, ()))

    def user(self, namespace: str, name: str) -> dict | None:
        return _first(self.user_refs.get((namespace, name), ()))

    def grants_naming(self, key: UseCaseKey, namespace: str, name: str) -> list[dict]:
        """The KafkaAcls of a use case that name the KafkaUser namespace/name."""
        return [unpack(packed) for packed in self.acls_by_user.get((key, namespace, name), ())]

    def everything_of(self, key: UseCaseKey) -> tuple[list[dict], list[dict], list[dict]]:
        return tuple([unpack(packed) for packed in index.get(key, ())] for index in (self.topics, self.users, self.acls))


def _first(packed: Iterable[str]) -> dict | None:
    return next((unpack(p) for p in packed), None)
