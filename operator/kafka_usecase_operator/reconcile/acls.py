"""KafkaAcl -> its grants bound to every KafkaUser it names, as part of each principal's union."""

from __future__ import annotations

from kafka_usecase_operator.api import InvalidSpec, KafkaAcl
from kafka_usecase_operator.api.common import Reason
from kafka_usecase_operator.kafka.plan import acl_bindings
from kafka_usecase_operator.reconcile.context import Context, Outcome, failed, ready_reason
from kafka_usecase_operator.reconcile.users import managed_user, principal, sync_principal
from kafka_usecase_operator.world import World, use_case_key


def named_users(world: World, obj: dict, spec) -> list[tuple[str, dict | None]]:
    namespace = obj["metadata"]["namespace"]
    return [(f"{ref.namespace or namespace}/{ref.name}", world.user(ref.namespace or namespace, ref.name))
            for ref in spec.principals]


async def reconcile(ctx: Context, world: World, obj: dict) -> Outcome:
    try:
        spec = KafkaAcl.parse(obj)
    except InvalidSpec as error:
        return Outcome(False, Reason.INVALID_SPEC, str(error))
    scope = await ctx.scope(world, obj, spec.use_case)
    if isinstance(scope, Outcome):
        return scope
    key, use_case = scope
    users = named_users(world, obj, spec)
    present = [user for _, user in users if managed_user(ctx, world, key, user)]
    missing = [ref for ref, user in users if not managed_user(ctx, world, key, user)]
    changes: list[str] = []
    kafka = None
    try:
        kafka, _ = await ctx.connections.connect(use_case)
        await ctx.claim(obj)
        for user in present:
            changes += [f"{principal(user)}: {change}" for change in
                        await sync_principal(ctx, world, kafka, key, user)]
    except Exception as error:  # per item: Kafka's refusal, or the cluster not there
        return failed(ctx, error, key, kafka)
    bindings = sum(len(acl_bindings(principal(user), spec.acls)) for user in present)
    fields = {"bindings": bindings}
    if missing:
        return Outcome(False, Reason.USER_NOT_FOUND,
                       f"no KafkaUser of this use case named {', '.join(missing)}; granted to the others",
                       fields=fields, retry=ctx.settings.retry_seconds, changes=changes)
    reason = Reason.UPDATED if changes and ready_reason(obj.get("status")) else \
        ready_reason(obj.get("status")) or Reason.CREATED
    message = "; ".join(changes) if changes else f"{bindings} binding(s) for {len(present)} principal(s)"
    return Outcome(True, reason, message, fields=fields, changes=changes)


async def delete(ctx: Context, world: World, obj: dict, use_case: dict) -> str | None:
    """Re-sync every principal it named: its index entry is marked deleting, so it no longer counts
    and only the bindings nothing else wants go."""
    try:
        spec = KafkaAcl.parse(obj)
    except InvalidSpec:
        return None
    key = use_case_key(obj)
    kafka, _ = await ctx.connections.connect(use_case)
    for _, user in named_users(world, obj, spec):
        if managed_user(ctx, world, key, user):
            await sync_principal(ctx, world, kafka, key, user)
    return None
