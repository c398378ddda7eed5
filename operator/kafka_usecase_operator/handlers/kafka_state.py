"""KafkaTopic, KafkaUser and KafkaAcl handlers: the same thin shape for each kind, the work is in
reconcile/. Run the kind's reconciler under the object's lock and fold its Outcome into the status
(only what changed), an Event when Ready turns False, a retry with backoff while the cluster is not
there; on deletion, clean up Kafka and release the finalizer."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Awaitable, Callable

import kopf

from kafka_usecase_operator.api import GROUP, VERSION
from kafka_usecase_operator.api.common import Reason
from kafka_usecase_operator.kafka.connections import ClusterNotReady
from kafka_usecase_operator.kafka.executor import describe_error, is_unreachable
from kafka_usecase_operator.reconcile import acls, topics, users
from kafka_usecase_operator.kube.rest import ApiError
from kafka_usecase_operator.reconcile.context import Context, Outcome, changed_fields, claimed, new_status, ref_of
from kafka_usecase_operator.world import World, deleting, snapshot, use_case_key

Reconciler = Callable[[Context, World, dict], Awaitable[Outcome]]
Deleter = Callable[[Context, World, dict, dict], Awaitable[str | None]]  # (..., object, its use case)


async def settle(reconciler: Reconciler, body: kopf.Body, memo: kopf.Memo, indexes: dict) -> None:
    obj = snapshot(body)
    ctx: Context = memo.ctx
    async with ctx.lock(obj["metadata"]["uid"]):
        outcome = await reconciler(ctx, World.of(indexes), obj)
    status = new_status(obj["status"], outcome, obj["metadata"].get("generation"))
    # Written here rather than through kopf's patch: kopf re-reads and diffs every patch it
    # applies (its consistency check), which at thousands of objects is a fifth of its CPU.
    await write_status(ctx, obj, changed_fields(obj["status"], status))
    for reason, message in outcome.events:
        kopf.event(obj, type="Normal", reason=reason, message=message)
    if not outcome.ready and outcome.reason != Reason.RECONCILING and _was_ready_or_new(obj["status"], outcome.reason):
        kopf.warn(obj, reason=outcome.reason, message=outcome.message)
    if outcome.retry is not None:
        raise kopf.TemporaryError(outcome.message, delay=outcome.retry)


async def write_status(ctx: Context, obj: dict, fields: dict) -> None:
    if not fields:
        return
    try:
        await ctx.rest.merge_patch(ref_of(obj), {"status": fields}, "/status")
    except ApiError as error:
        if error.status != 404:  # deleted meanwhile: nothing left to report on
            raise


def _was_ready_or_new(status: dict, reason: str) -> bool:
    ready = next((c for c in status.get("conditions", []) if c.get("type") == "Ready"), None)
    return ready is None or ready.get("status") == "True" or ready.get("reason") != reason


async def release(deleter: Deleter, body: kopf.Body, memo: kopf.Memo, indexes: dict) -> None:
    """Clean up Kafka, then kopf removes the finalizer; raising keeps it (and retries)."""
    obj = snapshot(body)
    ctx: Context = memo.ctx
    memo.diffbase.forget(obj["metadata"]["uid"])
    ctx.forget(obj)
    world = World.of(indexes)
    use_case = world.use_case(use_case_key(obj))
    if use_case is None or deleting(use_case):
        kopf.warn(obj, reason="FinalizerReleased", message="its KafkaUseCase is gone or being deleted: "
                                                            "released without touching Kafka")
        return
    try:
        async with ctx.lock(obj["metadata"]["uid"]):
            problem = await deleter(ctx, world, obj, use_case)
    except Exception as error:
        if not (isinstance(error, ClusterNotReady) or is_unreachable(error)):
            raise
        problem = describe_error(error)
        waited = _seconds_since(obj["metadata"]["deletionTimestamp"])
        if waited < ctx.settings.finalizer_release_seconds:
            raise kopf.TemporaryError(f"cannot clean up Kafka yet: {problem}", delay=ctx.settings.retry_seconds)
        kopf.warn(obj, reason="FinalizerReleased",
                  message=f"cluster unreachable for {waited:.0f}s ({problem}): released; its Kafka state is left behind")
        return
    if problem:
        raise kopf.TemporaryError(f"Kafka refused the clean-up: {problem}", delay=ctx.settings.retry_seconds)


def _seconds_since(timestamp: str) -> float:
    then = datetime.strptime(timestamp, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=timezone.utc)
    return (datetime.now(timezone.utc) - then).total_seconds()


def _register(plural: str, module) -> None:
    @kopf.on.resume(GROUP, VERSION, plural, id=f"reconcile-{plural}")
    @kopf.on.create(GROUP, VERSION, plural, id=f"reconcile-{plural}")
    @kopf.on.update(GROUP, VERSION, plural, id=f"reconcile-{plural}")
    async def reconcile(body: kopf.Body, memo: kopf.Memo, **kwargs) -> None:
        await settle(module.reconcile, body, memo, kwargs)

    # Only for objects the operator wrote to Kafka for (it set the finalizer then): kopf neither
    # adds the finalizer to the others nor removes it from these.
    @kopf.on.delete(GROUP, VERSION, plural, id=f"delete-{plural}",
                    when=lambda body, **_: claimed(body))
    async def delete(body: kopf.Body, memo: kopf.Memo, **kwargs) -> None:
        await release(module.delete, body, memo, kwargs)


for _plural, _module in (("kafkatopics", topics), ("kafkausers", users), ("kafkaacls", acls)):
    _register(_plural, _module)
