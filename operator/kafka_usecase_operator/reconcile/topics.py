"""KafkaTopic -> a topic in the use case's cluster: observe, plan, act, report."""

from __future__ import annotations

from confluent_kafka import KafkaError, KafkaException

from kafka_usecase_operator.api import InvalidSpec, KafkaTopic
from kafka_usecase_operator.api.common import Reason
from kafka_usecase_operator.kafka.executor import KafkaExecutor, describe_error, error_code, is_unreachable
from kafka_usecase_operator.kafka.model import Topic
from kafka_usecase_operator.kafka.plan import AddPartitions, AlterTopicConfig, CreateTopic, Refused, plan_topic
from kafka_usecase_operator.reconcile.context import Context, Outcome, failed, ready_reason
from kafka_usecase_operator.world import ADOPT, World, owner_of, topic_name

METADATA_RETRY_SECONDS = 1.0


def config_value(value) -> str:
    return str(value).lower() if isinstance(value, bool) else str(value)


async def reconcile(ctx: Context, world: World, obj: dict) -> Outcome:
    try:
        spec = KafkaTopic.parse(obj)
    except InvalidSpec as error:
        return Outcome(False, Reason.INVALID_SPEC, str(error))
    name = topic_name(obj)
    scope = await ctx.scope(world, obj, spec.use_case)
    if isinstance(scope, Outcome):
        return scope
    key, use_case = scope
    owner = owner_of(world.topic_claims.get((key, name), ()))
    if owner is not None and owner.uid != obj["metadata"]["uid"]:
        return Outcome(False, Reason.CONFLICT, f"topic {name} is managed by KafkaTopic {owner.ref}")
    desired = Topic(name, spec.partitions, spec.replicas, {k: config_value(v) for k, v in spec.config.items()})
    kafka = None
    try:
        kafka, _cluster = await ctx.connections.connect(use_case)
        observed = await kafka.describe_topic(name)
        ours = ctx.is_claimed(obj) or (obj["metadata"].get("annotations") or {}).get(ADOPT) == "true"
        if observed is not None and not ours:
            return Outcome(False, Reason.CONFLICT, f"topic {name} already exists in Kafka and no KafkaTopic manages "
                                                   f"it; annotate {ADOPT}=true to manage it")
        # Owned topics are declarative: an override the spec does not set goes back to the default.
        plan = plan_topic(desired, observed, frozenset(observed.config) if observed else frozenset())
        if isinstance(plan, Refused):
            return Outcome(False, plan.reason, plan.message, fields=_fields(observed))
        await ctx.claim(obj)
        changes = [await _execute(kafka, action) for action in plan]
        if changes:
            observed = await kafka.describe_topic(name)
    except Exception as error:  # per item: Kafka's refusal, or the cluster not there
        return failed(ctx, error, key, kafka)
    created = any(change.startswith("created") for change in changes)
    if observed is None:
        # CreateTopics answers once the controller has it; brokers learn it a moment later, and a
        # producer told Ready before then would get UNKNOWN_TOPIC_OR_PARTITION.
        return Outcome(False, Reason.RECONCILING, f"topic {name} created; waiting for the brokers' metadata to "
                                                  f"show it", retry=METADATA_RETRY_SECONDS)
    reason = Reason.CREATED if created else (Reason.UPDATED if changes else
                                             ready_reason(obj.get("status")) or Reason.CREATED)
    message = f"topic {name}: {'; '.join(changes)}" if changes else f"topic {name} is as specified"
    return Outcome(True, reason, message, fields=_fields(observed), changes=changes)


async def delete(ctx: Context, world: World, obj: dict, use_case: dict) -> str | None:
    """Delete the topic if the policy says so; None when done, else why it cannot be done now."""
    try:
        spec = KafkaTopic.parse(obj)
    except InvalidSpec:
        return None  # never created anything
    if spec.deletion_policy != "Delete":
        return None
    kafka, _ = await ctx.connections.connect(use_case)
    try:
        await kafka.delete_topic(topic_name(obj))
    except KafkaException as error:
        if is_unreachable(error):
            raise  # the caller waits for the cluster, or releases after the timeout
        if error_code(error) != KafkaError.UNKNOWN_TOPIC_OR_PART:  # already gone is done
            return describe_error(error)
    return None


async def _execute(kafka: KafkaExecutor, action) -> str:
    match action:
        case CreateTopic(topic=topic):
            try:
                await kafka.create_topic(topic)
            except KafkaException as error:
                # The controller has it but this broker's metadata did not yet: our own earlier
                # create (it was claimed first), answered after we stopped waiting or were killed.
                if error_code(error) != KafkaError.TOPIC_ALREADY_EXISTS:
                    raise
            return f"created with {topic.partitions} partitions"
        case AddPartitions(name=name, total=total):
            await kafka.add_partitions(name, total)
            return f"partitions increased to {total}"
        case AlterTopicConfig(set=changed, delete=dropped):
            await kafka.alter_config(action)
            parts = [f"{k}={v}" for k, v in sorted(changed.items())] + [f"{k} reset to default" for k in dropped]
            return f"config {', '.join(parts)}"
    raise TypeError(action)


def _fields(topic: Topic | None) -> dict:
    if topic is None:
        return {}
    return {"topicName": topic.name, "topicId": topic.topic_id, "partitions": topic.partitions,
            "replicas": topic.replication_factor}
