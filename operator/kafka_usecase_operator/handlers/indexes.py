"""kopf indexes of every KafkaUseCase, KafkaTopic, KafkaUser and KafkaAcl (see world.py)."""

from __future__ import annotations

import kopf

from kafka_usecase_operator.api import GROUP, VERSION
from kafka_usecase_operator.world import claim, pack, topic_name, use_case_key, username


@kopf.index(GROUP, VERSION, "kafkausecases")
def usecases(body: kopf.Body, namespace: str, name: str, **_):
    return {(namespace, name): pack(body)}


@kopf.index(GROUP, VERSION, "kafkatopics")
def topics(body: kopf.Body, **_):
    key = use_case_key(body)
    return {key: pack(body)} if key else {}


@kopf.index(GROUP, VERSION, "kafkatopics")
def topic_claims(body: kopf.Body, **_):
    key = use_case_key(body)
    return {(key, topic_name(body)): claim(body)} if key else {}


@kopf.index(GROUP, VERSION, "kafkausers")
def users(body: kopf.Body, **_):
    key = use_case_key(body)
    return {key: pack(body)} if key else {}


@kopf.index(GROUP, VERSION, "kafkausers")
def user_claims(body: kopf.Body, **_):
    key = use_case_key(body)
    return {(key, username(body)): claim(body)} if key else {}


@kopf.index(GROUP, VERSION, "kafkausers")
def user_refs(body: kopf.Body, namespace: str, name: str, **_):
    return {(namespace, name): pack(body)}


@kopf.index(GROUP, VERSION, "kafkaacls")
def acls(body: kopf.Body, **_):
    key = use_case_key(body)
    return {key: pack(body)} if key else {}


@kopf.index(GROUP, VERSION, "kafkaacls")
def acls_by_user(body: kopf.Body, namespace: str, **_):
    key = use_case_key(body)
    principals = (body.get("spec") or {}).get("principals")
    if not key or not isinstance(principals, list):
        return {}
    value = pack(body)
    return {(key, p.get("namespace") or namespace, p.get("name")): value
            for p in principals if isinstance(p, dict) and p.get("name")}
