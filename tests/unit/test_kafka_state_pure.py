"""Pure parts of topics/users/ACLs: the user Secret, claims, status folding, the executor's batching."""

import asyncio
import base64

import pytest

from kafka_usecase_operator.kafka.executor import KafkaExecutor
from kafka_usecase_operator.kafka.fake import FakeKafkaAdmin
from kafka_usecase_operator.kafka.model import AclBinding, Topic
from kafka_usecase_operator.reconcile.context import Outcome, changed_fields, new_status
from kafka_usecase_operator.reconcile.topics import config_value
from kafka_usecase_operator.render import user_secret
from kafka_usecase_operator.world import Claim, owner_of, snapshot, topic_name, use_case_key, username

pytestmark = pytest.mark.unit

USER = {"apiVersion": "kafka.usecase.dev/v1alpha1", "kind": "KafkaUser",
        "metadata": {"name": "billing", "namespace": "shop", "uid": "u-1", "resourceVersion": "7",
                     "managedFields": [{"big": "noise"}],
                     "annotations": {"kubectl.kubernetes.io/last-applied-configuration": "{...}",
                                     "kafka.usecase.dev/rotate-password": "2026-11"}},
        "spec": {"useCase": {"name": "analytics", "namespace": "kafka"}}}


def test_the_user_secret_carries_ready_to_use_client_settings_and_its_owner():
    data = user_secret.credentials("shop.billing", 'p"w\\d', "b:9092", "SASL_SSL")
    secret = user_secret.user_secret(USER, data, team="payments")

    decoded = {k: base64.b64decode(v).decode() for k, v in secret["data"].items()}
    assert decoded["sasl.jaas.config"] == ('org.apache.kafka.common.security.scram.ScramLoginModule required '
                                           'username="shop.billing" password="p\\"w\\\\d";')
    assert decoded["client.properties"].splitlines() == [
        "bootstrap.servers=b:9092", "security.protocol=SASL_SSL", "sasl.mechanism=SCRAM-SHA-512",
        f"sasl.jaas.config={decoded['sasl.jaas.config']}"]
    assert set(decoded) == {"username", "password", "sasl.jaas.config", "bootstrap.servers", "security.protocol",
                            "sasl.mechanism", "client.properties"}
    assert secret["metadata"]["labels"]["kafka.usecase.dev/team"] == "payments"
    assert secret["metadata"]["ownerReferences"][0]["uid"] == "u-1"
    assert user_secret.owned_by(secret, "u-1") and not user_secret.owned_by(secret, "u-2")
    assert user_secret.read(secret) == decoded


def test_snapshots_keep_what_reconcilers_read_and_drop_the_rest():
    kept = snapshot(USER)
    assert "managedFields" not in kept["metadata"]
    assert kept["metadata"]["annotations"] == {"kafka.usecase.dev/rotate-password": "2026-11"}
    assert use_case_key(USER) == ("kafka", "analytics")
    assert username(USER) == "shop.billing"
    assert topic_name({"metadata": {"name": "orders"}, "spec": {}}) == "orders"
    assert use_case_key({"metadata": {"namespace": "x"}, "spec": {}}) is None  # invalid: indexed nowhere


def test_the_oldest_live_claim_owns_a_name():
    old = Claim("2026-01-01T00:00:00Z", "b", "ns", "first", deleting=False)
    new = Claim("2026-02-01T00:00:00Z", "a", "ns", "second", deleting=False)
    assert owner_of([new, old]) == old
    assert owner_of([new, Claim(old.created, old.uid, old.namespace, old.name, deleting=True)]) == new
    assert owner_of([]) is None


def test_status_keeps_the_transition_time_and_writes_only_what_changed():
    first = new_status({}, Outcome(False, "ClusterNotReady", "down"), 3)
    again = new_status(first, Outcome(False, "ClusterNotReady", "down"), 3)
    assert changed_fields(first, again) == {}
    ready = new_status(first, Outcome(True, "Created", "ok", fields={"topicId": "x"}), 3)
    assert set(changed_fields(first, ready)) == {"conditions", "topicId"}
    assert ready["observedGeneration"] == 3


def test_config_values_are_written_as_kafka_reads_them():
    assert [config_value(v) for v in (True, 86400000, "compact")] == ["true", "86400000", "compact"]


def test_the_executor_sends_many_callers_items_in_one_request_each_with_its_own_outcome():
    admin = FakeKafkaAdmin()
    admin.create_topics([Topic("taken", 1, None)])
    executor = KafkaExecutor(admin, max_items=100, max_delay=0.05)

    async def many():
        names = [f"t{i}" for i in range(50)] + ["taken"]
        return await asyncio.gather(*(executor.create_topic(Topic(n, 1, None)) for n in names), return_exceptions=True)

    outcomes = asyncio.run(many())
    assert outcomes[:50] == [None] * 50 and isinstance(outcomes[50], Exception)
    assert executor.requests_sent == 1


def test_with_batching_off_every_item_is_its_own_request():
    executor = KafkaExecutor(FakeKafkaAdmin(), max_items=1)
    bindings = [AclBinding("User:a", "TOPIC", f"t{i}", "LITERAL", "READ", "ALLOW") for i in range(5)]

    assert asyncio.run(executor.create_acls(bindings)) == []
    assert executor.requests_sent == 5


def test_kopfs_connection_cap_leaves_room_for_every_watch_stream():
    import importlib

    import kopf

    importlib.import_module("kafka_usecase_operator.handlers")  # registers the handlers with kopf
    from kafka_usecase_operator.handlers.lifecycle import WATCHED_RESOURCES, kopf_connections
    from kafka_usecase_operator.settings import OperatorSettings

    registry = kopf.get_default_registry()
    watched = {h.selector for part in (registry._indexing, registry._watching, registry._changing,
                                       registry._spawning) for h in part.get_all_handlers()}
    four = OperatorSettings(namespaces=["a", "b", "c", "d"], api_connections=20)

    assert len(watched) == WATCHED_RESOURCES
    assert kopf_connections(four) == 4 * WATCHED_RESOURCES + 20
    assert kopf_connections(OperatorSettings(api_connections=20)) == WATCHED_RESOURCES + 20


def test_quotas_in_force_are_the_users_own_else_the_use_cases_defaults_else_none():
    from kafka_usecase_operator.api.common import Quotas
    from kafka_usecase_operator.reconcile.users import quotas_in_force

    use_case = {"spec": {"quotas": {"defaults": {"producerByteRate": 1048576}}}}
    own = Quotas(consumer_byte_rate=2048)
    assert quotas_in_force(own, use_case) == (own, "KafkaUser")
    assert quotas_in_force(Quotas(), use_case) == (Quotas(), "KafkaUser")  # `quotas: {}` opts out of the defaults
    assert quotas_in_force(None, use_case) == (Quotas(producer_byte_rate=1048576), "KafkaUseCase")
    assert quotas_in_force(None, {"spec": {}}) == (None, "None")


def test_one_quota_describe_serves_every_user_of_a_resync():
    admin = FakeKafkaAdmin()
    admin.quotas = {"a": {"producer_byte_rate": 1024.0}, "unmanaged": {"request_percentage": 10.0}}
    calls = []
    describe = admin.user_quotas
    admin.user_quotas = lambda users: calls.append(len(users)) or describe(users)
    executor = KafkaExecutor(admin, max_items=100, max_delay=0.05)

    async def resync():
        return await asyncio.gather(*(executor.user_quotas(f"u{i}") for i in range(300)), executor.user_quotas("a"))

    results = asyncio.run(resync())
    assert calls == [301] and results[-1] == {"producer_byte_rate": 1024.0} and results[0] == {}


def test_quotas_are_synced_only_for_users_that_have_or_had_them():
    from kafka_usecase_operator.api.common import Quotas
    from kafka_usecase_operator.reconcile.users import sync_quotas

    admin = FakeKafkaAdmin()
    admin.quotas = {"by-hand": {"producer_byte_rate": 4096.0}}
    executor = KafkaExecutor(admin, max_items=1)

    async def sync(user, quotas, had):
        return await sync_quotas(executor, user, quotas, had_quotas=had)

    assert asyncio.run(sync("by-hand", None, False)) == []  # opt-in: never touched, no request
    assert executor.requests_sent == 0 and admin.quotas["by-hand"] == {"producer_byte_rate": 4096.0}
    assert asyncio.run(sync("u", Quotas(producer_byte_rate=1048576), False)) == ["quotas producer_byte_rate=1048576"]
    assert asyncio.run(sync("u", Quotas(producer_byte_rate=1048576), True)) == []
    assert asyncio.run(sync("u", Quotas(request_percentage=12.5), True)) == \
        ["quotas producer_byte_rate removed, request_percentage=12.5"]
    assert asyncio.run(sync("u", None, True)) == ["quotas request_percentage removed"]
    assert "u" not in admin.quotas


def test_a_key_gone_from_a_nested_status_object_is_removed_not_left_behind():
    previous = {"quotas": {"producerByteRate": 1048576, "source": "KafkaUser"}, "username": "a"}
    assert changed_fields(previous, {"quotas": {"source": "None"}, "username": "a"}) == \
        {"quotas": {"source": "None", "producerByteRate": None}}
    assert changed_fields(previous, dict(previous)) == {}
