"""KafkaUseCase: render the cluster, apply it, and keep the status true to what runs."""

from __future__ import annotations

import base64
import secrets
import threading
from collections import defaultdict

import kopf

from kafka_usecase_operator import conditions
from kafka_usecase_operator.usecase import status as usecase_status
from kafka_usecase_operator.api import GROUP, VERSION, InvalidSpec, KafkaUseCase
from kafka_usecase_operator.api.common import Reason
from kafka_usecase_operator.usecase.judgement import REFUSALS, refuse_change
from kafka_usecase_operator.usecase.external import check_external
from kafka_usecase_operator.kafka.cluster_state import ClusterState
from kafka_usecase_operator.render import cluster
from kafka_usecase_operator.render.model import ClusterModel, cluster_model, new_cluster_id
from kafka_usecase_operator.settings import OperatorSettings
from kafka_usecase_operator.usecase.reconciler import ClusterReconciler, Outcome, admin_config, paused, pod_ready

# One pass at a time per use case: a spec change and the timer both apply its children and move
# its configuration pointers.
_passes: defaultdict[str, threading.Lock] = defaultdict(threading.Lock)

API_VERSION = f"{GROUP}/{VERSION}"
PLURAL = "kafkausecases"


@kopf.on.resume(GROUP, VERSION, PLURAL)
@kopf.on.create(GROUP, VERSION, PLURAL)
@kopf.on.update(GROUP, VERSION, PLURAL, field="spec")
def reconcile(body: kopf.Body, name: str, namespace: str, uid: str, meta: kopf.Meta, status: kopf.Status,
              patch: kopf.Patch, memo: kopf.Memo, **_) -> None:
    generation = meta.get("generation")
    try:
        spec = KafkaUseCase.parse(body)
    except InvalidSpec as error:
        _report(patch, status, generation, [conditions.Observed("Ready", False, Reason.INVALID_SPEC, str(error))])
        kopf.warn(body, reason=Reason.INVALID_SPEC, message=str(error))
        return
    if spec.external:
        _check_external(body, namespace, spec, status, patch, memo)
        return
    c = cluster_model(name, namespace, spec, memo.settings.images, status)
    refusal = refuse_change(c, _running_quorum(memo.kube, c), (status or {}).get("kafkaVersion"),
                            _largest_topic_replication(memo.kube, name, namespace, memo.settings.namespaces))
    if refusal:
        _report(patch, status, generation, [refusal])
        kopf.warn(body, reason=refusal.reason, message=f"change not applied: {refusal.message}")
        return
    if paused(meta):
        _report(patch, status, generation, [_paused(body)])
        return
    owner = cluster.Owner(name, uid)
    with _passes[uid]:
        cluster_id = _ensure_secrets(memo.kube, c, owner)
        outcome = Outcome()
        _reconciler(memo, c, owner, cluster_id).apply_children(outcome)
    _post(body, outcome)
    fields = _in_cluster_status(memo.kube, c, status, generation, cluster_id)
    if _was_paused(status):
        fields["conditions"] = conditions.merge(fields["conditions"], [_resumed()], generation, conditions.now())
    for key, value in fields.items():
        patch.status[key] = value


# One timer per in-cluster use case: keeps its children as declared and drives the roller. A pass
# that failed (an API error, say) is retried at the same pace, not after kopf's default minute.
@kopf.timer(GROUP, VERSION, PLURAL, interval=OperatorSettings.from_env().cluster_check_seconds,
            backoff=OperatorSettings.from_env().cluster_check_seconds, when=lambda spec, **_: not spec.get("external"))
def keep_cluster(body: kopf.Body, name: str, namespace: str, uid: str, meta: kopf.Meta, status: kopf.Status,
                 memo: kopf.Memo, **_) -> None:
    status = status or {}
    generation = status.get("observedGeneration")
    ready = next((c for c in status.get("conditions", []) if c.get("type") == "Ready"), {})
    if generation is None or ready.get("reason") in (*REFUSALS, Reason.INVALID_SPEC):
        return  # not created yet, or a refused change: nothing of it is applied, by a timer neither
    if paused(meta):
        if not _was_paused(status):
            _merge_conditions(memo, namespace, name, [_paused(body)])
        return
    try:
        spec = KafkaUseCase.parse(body)
    except InvalidSpec:
        return
    c = cluster_model(name, namespace, spec, memo.settings.images, status)
    was_rolling = any(c.get("type") == "Rolling" and c.get("status") == "True" for c in status.get("conditions", []))
    outcome = Outcome()
    with _passes[uid]:
        reconciler = _reconciler(memo, c, cluster.Owner(name, uid), status.get("clusterId") or "")
        budget = reconciler.roll(outcome, dict(meta.get("annotations") or {}), was_rolling)
        reconciler.apply_children(outcome, budget)
    _post(body, outcome)
    observed = [conditions.Observed("Rolling", *outcome.rolling)]
    if _was_paused(status):
        observed.append(_resumed())
    _merge_conditions(memo, namespace, name, observed,
                      {"interBrokerProtocolVersion": outcome.protocol} if outcome.protocol else {})


def _merge_conditions(memo: kopf.Memo, namespace: str, name: str, observed: list[conditions.Observed],
                      fields: dict | None = None) -> None:
    """Merge conditions (and `fields`) into the use case's status as it is now (read fresh, written only
    if it did not change meanwhile), so a Ready that the pod and StatefulSet events computed is never
    put back."""
    for _attempt in range(3):
        owner = memo.kube.get(API_VERSION, "KafkaUseCase", namespace, name)
        if owner is None:
            return
        status = owner.get("status") or {}
        new = {"conditions": conditions.merge(status.get("conditions", []), observed, status.get("observedGeneration"),
                                              conditions.now()), **(fields or {})}
        if all(status.get(k) == v for k, v in new.items()) or memo.kube.patch_status(owner, new):
            return


@kopf.on.event("apps", "v1", "statefulsets", labels={cluster.USE_CASE_LABEL: kopf.PRESENT,
                                                     "app.kubernetes.io/managed-by": cluster.MANAGED_BY})
@kopf.on.event("v1", "pods", labels={cluster.USE_CASE_LABEL: kopf.PRESENT,
                                         "app.kubernetes.io/managed-by": cluster.MANAGED_BY})
def child_changed(body: kopf.Body, labels: kopf.Labels, namespace: str, memo: kopf.Memo, **_) -> None:
    """A rollout progressed or a pod was (not) scheduled: recompute the owner's status. A broker that
    goes or is not ready holds node drains at once (the next pass re-judges them on ISR)."""
    for _attempt in range(3):  # the owner may change between our read and our write: read again
        owner = memo.kube.get(API_VERSION, "KafkaUseCase", namespace, labels[cluster.USE_CASE_LABEL])
        if owner is None or owner["metadata"].get("deletionTimestamp"):
            return
        if body.get("kind") == "Pod" and labels.get("app.kubernetes.io/component") == "broker" and not pod_ready(body):
            _hold_drains(owner, memo)
        if _refresh_status(owner, memo):
            return


def _hold_drains(owner: dict, memo: kopf.Memo) -> None:
    try:
        spec = KafkaUseCase.parse(owner)
    except InvalidSpec:
        return
    meta = owner["metadata"]
    if spec.external or paused(meta):
        return
    c = cluster_model(meta["name"], meta["namespace"], spec, memo.settings.images, owner.get("status"))
    _reconciler(memo, c, cluster.Owner(meta["name"], meta["uid"]), (owner.get("status") or {}).get("clusterId")
                ).hold_drains()


def _refresh_status(owner: dict, memo: kopf.Memo) -> bool:
    """Recompute an in-cluster use case's status from its children; False if the write lost a race."""
    namespace = owner["metadata"]["namespace"]
    try:
        spec = KafkaUseCase.parse(owner)
    except InvalidSpec:
        return True  # the KafkaUseCase handler reports it
    status = owner.get("status") or {}
    if spec.external or status.get("observedGeneration") is None:
        return True  # not ours to report, or the KafkaUseCase handler has not reported the first status yet
    if any(c.get("type") == "Ready" and c.get("reason") in (*REFUSALS, Reason.INVALID_SPEC)
           for c in status.get("conditions", [])):
        return True  # a refused change stays reported until the user fixes it
    c = cluster_model(owner["metadata"]["name"], namespace, spec, memo.settings.images, status)
    new = _in_cluster_status(memo.kube, c, status, status["observedGeneration"], status.get("clusterId"))
    return new == {k: status.get(k) for k in new} or memo.kube.patch_status(owner, new)


# One timer per *external* use case (few per cluster): re-checks the admin connection.
@kopf.timer(GROUP, VERSION, PLURAL, interval=OperatorSettings.from_env().external_check_seconds,
            when=lambda spec, **_: bool(spec.get("external")))
def recheck_external(body: kopf.Body, namespace: str, status: kopf.Status, patch: kopf.Patch, memo: kopf.Memo,
                     **_) -> None:
    try:
        spec = KafkaUseCase.parse(body)
    except InvalidSpec:
        return
    _check_external(body, namespace, spec, status, patch, memo)


# --- helpers ----------------------------------------------------------------------------------

def _reconciler(memo: kopf.Memo, c: ClusterModel, owner: cluster.Owner, cluster_id: str | None) -> ClusterReconciler:
    return ClusterReconciler(memo.kube, c, owner, cluster.OperatorIdentity(memo.settings.operator_namespace),
                             cluster_id or "", lambda: _cluster_state(memo, c))


# The roller's admin view of each cluster, kept while its address and credentials stay the same.
_states: dict[tuple[str, str], tuple[str, ClusterState]] = {}


def _cluster_state(memo: kopf.Memo, c: ClusterModel) -> ClusterState:
    secret = memo.kube.get("v1", "Secret", c.namespace, c.admin_secret)
    if secret is None:
        raise LookupError(f"admin Secret {c.admin_secret} not found")
    config = admin_config(c, secret)
    fingerprint = repr(sorted(config.items()))
    kept = _states.get((c.namespace, c.name))
    if kept is None or kept[0] != fingerprint:
        if kept is not None:
            kept[1].close()
        kept = _states[(c.namespace, c.name)] = (fingerprint, ClusterState(config, memo.settings.kafka_timeout_seconds))
    return kept[1]


def _post(body: kopf.Body, outcome: Outcome) -> None:
    for type_, reason, message in outcome.events:
        kopf.event(body, type=type_, reason=reason, message=message)


def _was_paused(status: dict | None) -> bool:
    return any(c.get("type") == "ReconciliationPaused" and c.get("status") == "True"
               for c in (status or {}).get("conditions", []))


def _resumed() -> conditions.Observed:
    return conditions.Observed("ReconciliationPaused", False, "Resumed", "changes to the cluster are applied again")


def _paused(body: kopf.Body) -> conditions.Observed:
    message = (f"annotation {cluster.GROUP}/pause-reconciliation is \"true\": no change is applied to the cluster, "
               "no pod is restarted; remove it to go on")
    kopf.info(body, reason="ReconciliationPaused", message=message)
    return conditions.Observed("ReconciliationPaused", True, "Paused", message)


def _check_external(body, namespace, spec, status, patch, memo) -> None:
    external = spec.external
    secret = memo.kube.get("v1", "Secret", namespace, external.admin_secret_ref.name)
    error = check_external(external, secret, memo.settings.kafka_timeout_seconds)
    previous_ready = next((c for c in (status or {}).get("conditions", []) if c.get("type") == "Ready"), None)
    observed = usecase_status.external_conditions(error, external.bootstrap_servers)
    _report(patch, status, body["metadata"].get("generation"), observed,
            {"mode": "external", "bootstrapServers": external.bootstrap_servers,
             "adminSecret": external.admin_secret_ref.name})
    if error and (previous_ready is None or previous_ready.get("status") != "False"):
        kopf.warn(body, reason=Reason.UNREACHABLE, message=error)


def _report(patch: kopf.Patch, status: dict | None, generation: int | None, observed: list[conditions.Observed],
            fields: dict | None = None) -> None:
    previous = (status or {}).get("conditions", [])
    patch.status["conditions"] = conditions.merge(previous, observed, generation, conditions.now())
    patch.status["observedGeneration"] = generation
    for key, value in (fields or {}).items():
        patch.status[key] = value


def _in_cluster_status(kube, c: ClusterModel, status: dict | None, generation, cluster_id) -> dict:
    brokers = _observe(kube, c, c.broker_set, "broker")
    quorum = _observe(kube, c, c.quorum_set, "zookeeper" if c.mode == "zookeeper" else "controller")
    observed = usecase_status.in_cluster_conditions(c, brokers, quorum)
    previous = (status or {}).get("conditions", [])
    return {"conditions": conditions.merge(previous, observed, generation, conditions.now()),
            "observedGeneration": generation, **usecase_status.in_cluster_fields(c, brokers, quorum, cluster_id)}


def _observe(kube, c: ClusterModel, statefulset: str, component: str) -> usecase_status.SetObservation | None:
    sts = kube.get("apps/v1", "StatefulSet", c.namespace, statefulset)
    pods = kube.list("v1", "Pod", c.namespace, f"{cluster.USE_CASE_LABEL}={c.name},app.kubernetes.io/component={component}")
    return usecase_status.SetObservation.from_objects(sts, pods)


def _running_quorum(kube, c: ClusterModel) -> int | None:
    sts = kube.get("apps/v1", "StatefulSet", c.namespace, c.quorum_set)
    return sts["spec"]["replicas"] if sts else None


def _largest_topic_replication(kube, use_case: str, namespace: str, watched: list[str]) -> int:
    """The largest replication factor among the KafkaTopics of this use case, wherever the operator
    watches (a namespace list needs no cluster-wide permission)."""
    topics = [t for ns in watched for t in kube.list(API_VERSION, "KafkaTopic", ns)] if watched else \
        kube.list(API_VERSION, "KafkaTopic", None)
    largest = 0
    for topic in topics:
        ref = topic.get("spec", {}).get("useCase", {})
        if ref.get("name") == use_case and (ref.get("namespace") or topic["metadata"]["namespace"]) == namespace:
            largest = max(largest, topic["spec"].get("replicas") or 0)
    return largest


def _ensure_secrets(kube, c: ClusterModel, owner: cluster.Owner) -> str | None:
    """The admin (and KRaft controller) credentials and the KRaft cluster id: generated once and
    kept, so a lost status or a restarted operator never changes them. Returns the cluster id.
    They live as long as the data that holds them: while a volume is kept when the use case is
    deleted (storage.deleteClaim false), so are they, and a re-created use case finds both. The
    ownership follows deleteClaim when it changes: owned Secrets beside kept volumes would be
    garbage-collected, and a re-created cluster could no longer read its own data."""
    data_kept = not all(component.storage.delete_claim for component in cluster.components(c))
    references = [] if data_kept else [owner.reference()]
    generated = {c.admin_secret: {"username": "admin", "password": secrets.token_urlsafe(32)}}
    if c.mode == "kraft":
        generated[c.controller_secret] = {"username": "controller", "password": secrets.token_urlsafe(32),
                                          "cluster-id": new_cluster_id()}
    found = {}
    for name, data in generated.items():
        secret = kube.create_if_absent(cluster.credentials_secret(c, name, owner if references else None, data))
        if [r["uid"] for r in secret["metadata"].get("ownerReferences") or []] != [r["uid"] for r in references]:
            kube.set_owner_references(secret, references)
        found[name] = secret
    if c.mode != "kraft":
        return None
    controller = found[c.controller_secret]
    return base64.b64decode(controller["data"]["cluster-id"]).decode()
