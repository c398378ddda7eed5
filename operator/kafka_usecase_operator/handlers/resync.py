"""Drift repair: one loop per use case (a kopf daemon on the KafkaUseCase, not a timer per object:
per-object timers cost a task and a kept body each) re-runs every topic, user and ACL reconciler
of the use case against Kafka. What it had to change on a settled, Ready object was drift: it says
so in an Event (DriftCorrected) and in status.lastDriftCorrection. Only objects the operator
manages are compared, so topics and principals no resource names are never touched."""

from __future__ import annotations

import asyncio

import kopf

from kafka_usecase_operator import conditions
from kafka_usecase_operator.api import GROUP, VERSION
from kafka_usecase_operator.reconcile import acls, topics, users
from kafka_usecase_operator.handlers.kafka_state import write_status
from kafka_usecase_operator.reconcile.context import Context, changed_fields, new_status, ready_reason
from kafka_usecase_operator.world import World, deleting, unpack

RECONCILERS = {"KafkaTopic": topics.reconcile, "KafkaUser": users.reconcile, "KafkaAcl": acls.reconcile}


@kopf.daemon(GROUP, VERSION, "kafkausecases", id="resync", cancellation_timeout=5.0)
async def resync(namespace: str, name: str, stopped: kopf.DaemonStopped, memo: kopf.Memo, **kwargs) -> None:
    while not await stopped.wait(memo.settings.resync_seconds):
        world = World.of(kwargs)
        await resync_use_case(memo.ctx, world, (namespace, name))
        memo.diffbase.keep_only({unpack(packed)["metadata"]["uid"] for index in (world.topics, world.users, world.acls)
                                 for values in index.values() for packed in values})


async def resync_use_case(ctx: Context, world: World, key: tuple[str, str]) -> None:
    topic_objs, user_objs, acl_objs = world.everything_of(key)
    # Users before the KafkaAcls that name them; topics alongside (the batchers group them).
    await asyncio.gather(*(resync_one(ctx, world, obj) for obj in topic_objs + user_objs))
    await asyncio.gather(*(resync_one(ctx, world, obj) for obj in acl_objs))


async def resync_one(ctx: Context, world: World, obj: dict) -> None:
    status, generation = obj["status"], obj["metadata"].get("generation")
    if deleting(obj) or status.get("observedGeneration") != generation:
        return  # a handler is on it
    async with ctx.lock(obj["metadata"]["uid"]):
        outcome = await RECONCILERS[obj["kind"]](ctx, world, obj)
    fields = changed_fields(status, new_status(status, outcome, generation))
    if outcome.changes and ready_reason(status):
        message = "; ".join(outcome.changes)
        fields["lastDriftCorrection"] = conditions.now()
        kopf.event(obj, type="Normal", reason="DriftCorrected", message=f"corrected in Kafka: {message}")
    await write_status(ctx, obj, fields)
