"""KafkaUser -> a SCRAM credential, its ACL bindings and the Secret its applications mount.
Also the principal ACL sync that KafkaAcl shares: a principal's bindings are the union of its
KafkaUser's inline grants and every KafkaAcl naming it."""

from __future__ import annotations

import secrets

from kafka_usecase_operator.api import InvalidSpec, KafkaAcl, KafkaUser
from kafka_usecase_operator.api.common import Quotas, Reason
from kafka_usecase_operator.api.usecase import UseCaseQuotas
from kafka_usecase_operator.kafka.executor import KafkaExecutor, describe_error
from kafka_usecase_operator.kafka.model import AclBinding
from kafka_usecase_operator.kafka.plan import acl_bindings, plan_acls, plan_quotas, quota_values
from kafka_usecase_operator.kube.rest import Ref
from kafka_usecase_operator.reconcile.context import Context, Outcome, failed, ready_reason
from kafka_usecase_operator.render import user_secret
from kafka_usecase_operator.world import ROTATE, World, UseCaseKey, deleting, owner_of, use_case_key, username

MIN_PASSWORD = 12
RESERVED = {"controller"}  # besides the use case's admin user: the KRaft controllers' own principal


def principal(user: dict) -> str:
    return f"User:{username(user)}"


def new_password() -> str:
    return secrets.token_urlsafe(32)  # 43 characters from the OS's CSPRNG


async def reconcile(ctx: Context, world: World, obj: dict) -> Outcome:
    try:
        spec = KafkaUser.parse(obj)
    except InvalidSpec as error:
        return Outcome(False, Reason.INVALID_SPEC, str(error))
    meta, name = obj["metadata"], username(obj)
    scope = await ctx.scope(world, obj, spec.use_case)
    if isinstance(scope, Outcome):
        return scope
    key, use_case = scope
    owner = owner_of(world.user_claims.get((key, name), ()))
    if owner is not None and owner.uid != meta["uid"]:
        return Outcome(False, Reason.CONFLICT, f"username {name} belongs to KafkaUser {owner.ref}")
    secret_ref = Ref("v1", "secrets", meta["namespace"], meta["name"])
    kafka = None
    try:
        kafka, cluster = await ctx.connections.connect(use_case)
        if name in RESERVED | {cluster.admin_username}:
            return Outcome(False, Reason.CONFLICT, f"username {name} is reserved for the operator's own use")
        # A new user's Secret is created without a read first (one request saved per user); a
        # conflict on creation still finds one left by a cut-short run, or someone else's.
        existing = await ctx.rest.get(secret_ref) if (obj.get("status") or {}).get("secret") else None
        if existing is not None and not user_secret.owned_by(existing, meta["uid"]):
            return _foreign(secret_ref)
        current = user_secret.read(existing).get("password")
        rotation = (meta.get("annotations") or {}).get(ROTATE)
        rotate = bool(rotation) and rotation != (obj.get("status") or {}).get("passwordRotation") and \
            spec.authentication.password is None
        if spec.authentication.password is not None:
            wanted = await _password_from_secret(ctx, meta["namespace"], spec.authentication.password.value_from)
            if isinstance(wanted, Outcome):
                return wanted
        else:
            wanted = new_password() if rotate or not current else current
        changes = []
        await ctx.claim(obj)
        if not await kafka.scram_exists(name) or wanted != current:
            await kafka.upsert_scram(name, wanted)  # Kafka first, then the Secret: the Secret never lies
            changes.append("password rotated" if rotate else "SCRAM credential set")
        secret = user_secret.user_secret(obj, user_secret.credentials(
            name, wanted, cluster.bootstrap_servers, cluster.security_protocol), spec.team)
        if existing is None and await ctx.rest.create(secret_ref, secret) is None:
            existing = await ctx.rest.get(secret_ref)
            if existing is not None and not user_secret.owned_by(existing, meta["uid"]):
                return _foreign(secret_ref)
        if existing is not None and (existing.get("data") != secret["data"] or
                                     (existing["metadata"].get("labels") or {}) != secret["metadata"]["labels"]):
            await ctx.rest.merge_patch(secret_ref, {"metadata": {"labels": secret["metadata"]["labels"]},
                                                    "data": secret["data"]})
            changes.append(f"Secret {secret_ref.name} updated")
        changes += await sync_principal(ctx, world, kafka, key, obj)
        quotas, source = quotas_in_force(spec.quotas, use_case)
        changes += await sync_quotas(kafka, name, quotas, had_quotas=bool(_status_quotas(obj)))
    except Exception as error:  # per item: Kafka's refusal, or the cluster not there
        return failed(ctx, error, key, kafka)
    fields = {"username": name, "secret": secret_ref.name,
              "quotas": {**(quotas.model_dump(by_alias=True, exclude_none=True) if quotas else {}), "source": source}}
    if rotation:
        fields["passwordRotation"] = rotation
    first = ready_reason(obj.get("status")) is None
    reason = Reason.CREATED if first else (Reason.UPDATED if changes else ready_reason(obj.get("status")))
    message = f"principal User:{name}: {'; '.join(changes)}" if changes else f"principal User:{name} is as specified"
    events = [("PasswordRotated", f"new password for User:{name} set in Kafka, then in Secret {secret_ref.name}")] \
        if rotate else []
    return Outcome(True, reason, message, fields=fields, changes=changes, events=events)


def _foreign(secret: Ref) -> Outcome:
    return Outcome(False, Reason.CONFLICT, f"Secret {secret.name} exists and does not belong to this KafkaUser: "
                                           "rename one of them")


async def delete(ctx: Context, world: World, obj: dict, use_case: dict) -> str | None:
    """Remove the user's SCRAM credential and every ACL binding of its principal."""
    kafka, _ = await ctx.connections.connect(use_case)
    name = username(obj)
    async with ctx.lock(("principal", use_case_key(obj), name)):
        failures = await kafka.delete_acls(await kafka.acls_of(principal(obj)))
    if await kafka.scram_exists(name):
        await kafka.delete_scram(name)
    await sync_quotas(kafka, name, None, had_quotas=bool(_status_quotas(obj)))
    return describe_error(failures[0]) if failures else None


# --- quotas -------------------------------------------------------------------------------------

def quotas_in_force(own: Quotas | None, use_case: dict) -> tuple[Quotas | None, str]:
    """The user's own quotas when it sets any (an empty `quotas: {}` too: it opts out of the
    defaults), else its use case's defaults, else none; and which of the three it is."""
    if own is not None:
        return own, "KafkaUser"
    # (the use case was validated: ctx.scope admits no one to an invalid one)
    defaults = UseCaseQuotas.model_validate((use_case.get("spec") or {}).get("quotas") or {}).defaults
    return (defaults, "KafkaUseCase") if defaults is not None else (None, "None")


async def sync_quotas(kafka: KafkaExecutor, user: str, quotas: Quotas | None, had_quotas: bool) -> list[str]:
    """Make the user's quota entity in Kafka hold exactly `quotas`. Opt-in: a user that has no
    quotas and had none from the operator costs no request, and whatever quota someone set for it
    by hand (before an upgrade, say) is left alone."""
    desired = quota_values(quotas)
    if not desired and not had_quotas:
        return []
    observed = await kafka.user_quotas(user)
    change = plan_quotas(desired, observed)
    if not change:
        return []
    await kafka.alter_user_quotas(user, change)
    parts = [f"{key}={value:.15g}" if value is not None else f"{key} removed" for key, value in sorted(change.items())]
    return [f"quotas {', '.join(parts)}"]


def _status_quotas(user: dict) -> dict:
    """The quota values the status last said were in force (without `source`)."""
    return {k: v for k, v in ((user.get("status") or {}).get("quotas") or {}).items() if k != "source"}


# --- a principal's ACLs -------------------------------------------------------------------------

def desired_bindings(ctx: Context, world: World, key: UseCaseKey, user: dict) -> set[AclBinding]:
    """The union of the user's inline grants and every live KafkaAcl naming it that its reconciler
    accepted (valid, its namespace admitted: it claimed it)."""
    who = principal(user)
    wanted = acl_bindings(who, KafkaUser.parse(user).acls)
    meta = user["metadata"]
    for grant in world.grants_naming(key, meta["namespace"], meta["name"]):
        if deleting(grant) or not ctx.is_claimed(grant):
            continue
        try:
            wanted |= acl_bindings(who, KafkaAcl.parse(grant).acls)
        except InvalidSpec:
            continue
    return wanted


async def sync_principal(ctx: Context, world: World, kafka: KafkaExecutor, key: UseCaseKey, user: dict) -> list[str]:
    """Make the principal's bindings in Kafka exactly the desired union."""
    async with ctx.lock(("principal", key, username(user))):
        wanted = desired_bindings(ctx, world, key, user)
        plan = plan_acls(wanted, await kafka.acls_of(principal(user)))
        failures = await kafka.create_acls(plan.add) + await kafka.delete_acls(plan.remove)
    if failures:
        raise failures[0]
    changes = []
    if plan.add:
        changes.append(f"{len(plan.add)} ACL binding(s) added")
    if plan.remove:
        changes.append(f"{len(plan.remove)} ACL binding(s) removed")
    return changes


def managed_user(ctx: Context, world: World, key: UseCaseKey, user: dict | None) -> bool:
    """A KafkaUser the operator manages in this use case: claimed, live, owner of its username."""
    if user is None or deleting(user) or not ctx.is_claimed(user) or use_case_key(user) != key:
        return False
    owner = owner_of(world.user_claims.get((key, username(user)), ()))
    return owner is not None and owner.uid == user["metadata"]["uid"]


async def _password_from_secret(ctx: Context, namespace: str, source) -> str | Outcome:
    ref = source.secret_key_ref
    secret = await ctx.rest.get(Ref("v1", "secrets", namespace, ref.name))
    value = user_secret.read(secret).get(ref.key)
    if value is None:
        return Outcome(False, Reason.SECRET_NOT_FOUND, f"Secret {ref.name} with key {ref.key} not found "
                                                       "(spec.authentication.password.valueFrom.secretKeyRef)",
                       retry=ctx.settings.retry_seconds)
    if len(value) < MIN_PASSWORD:
        return Outcome(False, Reason.INVALID_SPEC, f"spec.authentication.password: the password in Secret {ref.name} "
                                                   f"key {ref.key} is shorter than {MIN_PASSWORD} characters")
    return value
