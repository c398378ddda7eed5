"""What every reconciler shares: the API, the clusters, the indexes, and the shape of its answer."""

from __future__ import annotations

import asyncio
import time
import weakref
from dataclasses import dataclass, field
from typing import Any

from kafka_usecase_operator import conditions
from kafka_usecase_operator.api.common import Reason, UseCaseRef
from kafka_usecase_operator.api.usecase import KafkaUseCaseSpec
from kafka_usecase_operator.kafka.connections import ClusterNotReady, Connections
from kafka_usecase_operator.kafka.executor import KafkaExecutor, describe_error, is_unreachable
from kafka_usecase_operator.kube.rest import Ref, Rest
from kafka_usecase_operator.settings import OperatorSettings
from kafka_usecase_operator.tenancy import admits
from kafka_usecase_operator.world import FINALIZER, World, UseCaseKey


@dataclass
class Outcome:
    """A reconciler's answer: the Ready condition, status fields, and what it changed in Kafka."""

    ready: bool
    reason: str
    message: str
    fields: dict[str, Any] = field(default_factory=dict)
    retry: float | None = None  # not settled: try again in this many seconds
    changes: list[str] = field(default_factory=list)  # e.g. "created topic orders", "added 2 ACL bindings"
    events: list[tuple[str, str]] = field(default_factory=list)  # (reason, message): Normal Events to post


def failed(ctx: Context, error: Exception, key: UseCaseKey, kafka: KafkaExecutor | None) -> Outcome:
    """A failed reconciliation: a cluster not there (yet) is retried, with a new admin client
    (librdkafka's can stay stuck on a restarted ZooKeeper-mode controller); Kafka refusing the
    change is reported in Kafka's words and tried again at the next resync."""
    explained = kafka.explain(error) if kafka else describe_error(error)
    retry = ctx.settings.retry_seconds
    if isinstance(error, ClusterNotReady):
        return Outcome(False, Reason.CLUSTER_NOT_READY, str(error), retry=retry)
    if is_unreachable(error):
        ctx.connections.forget(key)
        return Outcome(False, Reason.CLUSTER_NOT_READY, f"KafkaUseCase {key[0]}/{key[1]}: {explained}", retry=retry)
    return Outcome(False, Reason.KAFKA_ERROR, explained)


def new_status(previous: dict | None, outcome: Outcome, generation: int | None) -> dict:
    """The status an outcome gives: Ready (its lastTransitionTime kept unless it flips),
    observedGeneration, and the outcome's fields."""
    previous = previous or {}
    ready = conditions.Observed("Ready", outcome.ready, outcome.reason, outcome.message)
    return {"conditions": conditions.merge(previous.get("conditions", []), [ready], generation, conditions.now()),
            "observedGeneration": generation, **outcome.fields}


def changed_fields(previous: dict | None, status: dict) -> dict:
    """Only what differs, so an unchanged status costs no write; as a merge patch, so a key gone
    from a nested object (e.g. a quota no longer in force) is removed (null), not left behind."""
    previous = previous or {}
    patch = {}
    for key, value in status.items():
        before = previous.get(key)
        if before == value:
            continue
        if isinstance(before, dict) and isinstance(value, dict):
            value = {**value, **{k: None for k in before if k not in value}}
        patch[key] = value
    return patch


def ready_reason(status: dict | None) -> str | None:
    ready = next((c for c in (status or {}).get("conditions", []) if c.get("type") == "Ready"), None)
    return ready.get("reason") if ready and ready.get("status") == "True" else None


class NamespaceLabels:
    """Namespace labels for `access: Selector`, read at most every `ttl` seconds per namespace."""

    def __init__(self, rest: Rest, ttl: float = 30.0):
        self.rest, self.ttl = rest, ttl
        self._cache: dict[str, tuple[float, dict]] = {}

    async def of(self, namespace: str) -> dict[str, str]:
        cached = self._cache.get(namespace)
        if cached and time.monotonic() - cached[0] < self.ttl:
            return cached[1]
        found = await self.rest.request("GET", f"/api/v1/namespaces/{namespace}") or {}
        labels = (found.get("metadata") or {}).get("labels") or {}
        self._cache[namespace] = (time.monotonic(), labels)
        return labels


@dataclass
class Context:
    rest: Rest
    connections: Connections
    settings: OperatorSettings
    namespaces: NamespaceLabels
    _locks: weakref.WeakValueDictionary = field(default_factory=weakref.WeakValueDictionary)
    _claimed: set[str] = field(default_factory=set)  # uids claimed by this process: ahead of the indexes

    def lock(self, key) -> asyncio.Lock:
        """One reconciliation at a time per object (handler and resync) and per principal."""
        lock = self._locks.get(key)
        if lock is None:
            lock = self._locks[key] = asyncio.Lock()
        return lock

    async def scope(self, world: World, obj: dict, ref: UseCaseRef) -> tuple[UseCaseKey, dict] | Outcome:
        """The use case an object references, if it exists and admits the object's namespace."""
        namespace = obj["metadata"]["namespace"]
        key = (ref.namespace or namespace, ref.name)
        use_case = world.use_case(key)
        if use_case is None:
            return Outcome(False, Reason.USE_CASE_NOT_FOUND, f"KafkaUseCase {key[0]}/{key[1]} not found",
                           retry=self.settings.retry_seconds)  # `kubectl apply -f dir/` applies in any order
        if not await self.admitted(use_case, namespace):
            return Outcome(False, Reason.NOT_ALLOWED, f"KafkaUseCase {key[0]}/{key[1]} does not admit references "
                                                      f"from namespace {namespace} (its spec.access)")
        return key, use_case

    async def admitted(self, use_case: dict, namespace: str) -> bool:
        try:
            access = KafkaUseCaseSpec.model_validate(use_case.get("spec") or {}).access
        except ValueError:
            return False  # an invalid use case admits no one until it is fixed
        use_case_namespace = use_case["metadata"]["namespace"]
        labels = await self.namespaces.of(namespace) if access.namespaces.from_ == "Selector" else {}
        return admits(access, use_case_namespace, namespace, labels)

    async def claim(self, obj: dict) -> None:
        """The finalizer goes on before the operator first writes to Kafka for an object: what it
        created is then always cleaned up, and a topic it created is told from one it found."""
        if not self.is_claimed(obj):
            await self.rest.add_finalizer(ref_of(obj), obj["metadata"], FINALIZER)
        self._claimed.add(obj["metadata"]["uid"])

    def is_claimed(self, obj: dict) -> bool:
        """Claimed, as far as this process knows: an index learns of a new finalizer only when its
        watch event arrives, which may be after another reconciler reads it."""
        return claimed(obj) or obj["metadata"]["uid"] in self._claimed

    def forget(self, obj: dict) -> None:
        """The object is going: kopf removes the finalizer once the deletion handler succeeds."""
        self._claimed.discard(obj["metadata"]["uid"])


PLURALS = {"KafkaTopic": "kafkatopics", "KafkaUser": "kafkausers", "KafkaAcl": "kafkaacls"}


def ref_of(obj: dict) -> Ref:
    meta = obj["metadata"]
    return Ref(obj["apiVersion"], PLURALS[obj["kind"]], meta["namespace"], meta["name"])


def claimed(obj: dict) -> bool:
    return FINALIZER in (obj["metadata"].get("finalizers") or [])
