"""Topics, users and ACLs, end to end: `kubectl apply` against the real API server, the operator
process reconciling into a real broker (both metadata modes), and the broker checked with real
clients: credentials from the generated Secret work where the ACLs allow and are denied elsewhere."""

from __future__ import annotations

import base64
import json
import uuid
from pathlib import Path

import pytest
import yaml
from confluent_kafka import KafkaError, KafkaException
from confluent_kafka.admin import AdminClient, ConfigResource, ConfigSource, ResourceType

from devstack import kube, probes
from kafka_usecase_operator.kafka.confluent import ConfluentKafkaAdmin
from kafka_usecase_operator.kafka.model import AclBinding, Topic
from kafka_usecase_operator.kafka.plan import AlterTopicConfig
from operator_process import OperatorProcess
from waiting import eventually

pytestmark = [pytest.mark.kube, pytest.mark.kafka]
ROOT = Path(__file__).parents[2]
EXAMPLES = ROOT / "examples" / "devstack" / "topics-users-acls.yaml"


class Env:
    """One metadata mode: a namespace holding an external use case on that mode's broker."""

    def __init__(self, kube_cluster, kafka, namespace: str):
        self.kube, self.kafka, self.ns = kube_cluster, kafka, namespace
        self.admin = ConfluentKafkaAdmin(kafka.client_config(), timeout=15)

    def kubectl(self, *args, input=None, timeout: float = 60):
        return self.kube.kubectl(*args, input=input, timeout=timeout)

    def apply(self, manifest: dict | str, namespace: str | None = None) -> None:
        text = manifest if isinstance(manifest, str) else json.dumps(manifest)
        self.kubectl("apply", "-n", namespace or self.ns, "-f", "-", input=text)

    def get(self, kind: str, name: str, namespace: str | None = None) -> dict | None:
        found = self.kubectl("get", kind, name, "-n", namespace or self.ns, "-o", "json", "--ignore-not-found")
        return json.loads(found) if found.strip() else None

    def ready(self, kind: str, name: str, namespace: str | None = None) -> dict | None:
        obj = self.get(kind, name, namespace) or {}
        return next((c for c in (obj.get("status") or {}).get("conditions", []) if c["type"] == "Ready"), None)

    def wait_ready(self, kind: str, name: str, status: str = "True", reason: str | None = None,
                   namespace: str | None = None, timeout: float = 90) -> dict:
        def settled():
            """the object's Ready condition reaches the expected status (and reason)"""
            condition = self.ready(kind, name, namespace)
            return condition if condition and condition["status"] == status and \
                (reason is None or condition["reason"] == reason) else None

        return eventually(settled, timeout=timeout)

    def secret(self, name: str, namespace: str | None = None) -> dict[str, str]:
        data = (self.get("secret", name, namespace) or {}).get("data") or {}
        return {k: base64.b64decode(v).decode() for k, v in data.items()}

    def produce(self, user_secret: dict[str, str], topic: str) -> int | None:
        return probes.produce_as(self.kafka.bootstrap_servers, user_secret["username"], user_secret["password"],
                                 topic)

    def t(self, name: str) -> str:
        """A topic name of this test module."""
        return f"{self.ns}.{name}"

    def topic(self, name: str):
        return self.admin.describe_topics([name])[name]


@pytest.fixture(scope="module")
def env(kube_cluster, kafka_cluster, tmp_path_factory):
    namespace = f"ks-{kafka_cluster.mode[:4]}-{uuid.uuid4().hex[:5]}"
    kube_cluster.kubectl("apply", "--server-side", "--force-conflicts", "-f", str(ROOT / "crds"))
    kube_cluster.kubectl("wait", "--for=condition=Established", "crd", "-l",
                         "app.kubernetes.io/part-of=kafka-usecase-operator", "--timeout=60s")
    kube_cluster.kubectl("create", "namespace", namespace)
    kube_cluster.kubectl("create", "namespace", f"{namespace}-other")
    kube.apply_external_admin_secret(kube_cluster.stack, kafka_cluster.client_config(), namespace, "devstack-admin")
    use_case = yaml.safe_load((ROOT / "examples" / "devstack" / "usecase.yaml").read_text())
    use_case["metadata"]["namespace"] = namespace
    use_case["spec"]["external"]["bootstrapServers"] = kafka_cluster.bootstrap_servers
    e = Env(kube_cluster, kafka_cluster, namespace)
    e.apply(use_case)
    e.operator = OperatorProcess(kube_cluster.kubeconfig, [namespace, f"{namespace}-other"],
                                 tmp_path_factory.mktemp("operator") / "operator.log",
                                 {"KUO_RESYNC_SECONDS": "3", "KUO_RETRY_SECONDS": "2",
                                  "KUO_EXTERNAL_CHECK_SECONDS": "5"}).start()
    yield e
    try:  # while the operator runs: it releases the finalizers
        kube_cluster.kubectl("delete", "namespace", namespace, f"{namespace}-other", "--timeout=120s", timeout=130)
    finally:
        e.operator.stop()
    e.operator.assert_no_traceback()


def examples_in(env: Env) -> str:
    """The devstack examples in the test's namespace; topic names prefixed with it, since brokers
    are shared by every run on this devstack (and `make demo` applies the same examples)."""
    docs = list(yaml.safe_load_all(EXAMPLES.read_text()))
    for doc in docs:
        doc["metadata"]["namespace"] = env.ns
        if doc["kind"] == "KafkaTopic":
            doc["spec"]["topicName"] = env.t(doc["metadata"]["name"])
        for rule in doc["spec"].get("acls", []):
            if rule["resource"]["type"] == "topic":
                rule["resource"]["name"] = env.t(rule["resource"]["name"])
    return yaml.safe_dump_all(docs)


def test_examples_become_topics_users_and_acls_that_work(env):
    env.apply(examples_in(env))
    for kind, name in [("kafkatopic", "orders"), ("kafkatopic", "payments"), ("kafkauser", "order-service"),
                       ("kafkauser", "billing"), ("kafkaacl", "order-readers")]:
        env.wait_ready(kind, name)

    orders = env.topic(env.t("orders"))
    assert (orders.partitions, orders.config) == (3, {"retention.ms": "86400000"})
    assert env.get("kafkatopic", "orders")["status"]["topicId"] == orders.topic_id
    secret = env.secret("order-service")
    assert secret["username"] == f"{env.ns}.order-service" and len(secret["password"]) >= 32
    assert secret["bootstrap.servers"] == env.kafka.bootstrap_servers
    assert f'password="{secret["password"]}"' in secret["sasl.jaas.config"]
    assert "sasl.jaas.config=" in secret["client.properties"]
    meta = env.get("secret", "order-service")["metadata"]
    assert meta["labels"]["kafka.usecase.dev/team"] == "orders"
    assert meta["ownerReferences"][0]["uid"] == env.get("kafkauser", "order-service")["metadata"]["uid"]
    eventually(lambda: probes.authenticates_everywhere(env.kafka.bootstrap_servers, secret["username"],
                                                       secret["password"]))
    assert env.produce(secret, env.t("orders")) is None
    assert env.produce(secret, env.t("payments")) == KafkaError.TOPIC_AUTHORIZATION_FAILED
    assert env.produce(env.secret("billing"), env.t("orders")) == KafkaError.TOPIC_AUTHORIZATION_FAILED  # Read only
    status = env.get("kafkauser", "order-service")["status"]
    assert secret["password"] not in json.dumps(status)
    assert secret["password"] not in env.operator.log.read_text()


def test_partitions_grow_but_never_shrink(env):
    env.wait_ready("kafkatopic", "orders")
    env.kubectl("patch", "kafkatopic", "orders", "-n", env.ns, "--type=merge", "-p", '{"spec":{"partitions":4}}')
    eventually(lambda: env.topic(env.t("orders")).partitions == 4)

    env.kubectl("patch", "kafkatopic", "orders", "-n", env.ns, "--type=merge", "-p", '{"spec":{"partitions":2}}')
    condition = env.wait_ready("kafkatopic", "orders", "False", "NotSupported")
    assert "cannot remove partitions" in condition["message"]
    assert env.topic(env.t("orders")).partitions == 4
    env.kubectl("patch", "kafkatopic", "orders", "-n", env.ns, "--type=merge", "-p", '{"spec":{"partitions":4}}')
    env.wait_ready("kafkatopic", "orders")


def test_rotation_on_annotation_replaces_the_password_in_kafka_and_the_secret(env):
    env.wait_ready("kafkauser", "billing")
    old = env.secret("billing")
    env.kubectl("annotate", "kafkauser", "billing", "-n", env.ns, "kafka.usecase.dev/rotate-password=first")

    new = eventually(lambda: (s := env.secret("billing"))["password"] != old["password"] and s)
    assert env.get("kafkauser", "billing")["status"]["passwordRotation"] == "first"
    eventually(lambda: probes.authenticates_everywhere(env.kafka.bootstrap_servers, new["username"], new["password"]))
    assert not probes.authenticates_everywhere(env.kafka.bootstrap_servers, old["username"], old["password"])
    events = json.loads(env.kubectl("get", "events", "-n", env.ns, "-o", "json",
                                    "--field-selector", "reason=PasswordRotated"))["items"]
    assert [e["involvedObject"]["name"] for e in events] == ["billing"]
    assert new["password"] not in json.dumps(events)


def test_changes_made_behind_the_operators_back_are_repaired(env):
    env.wait_ready("kafkauser", "order-service")
    principal = f"User:{env.ns}.order-service"
    write = AclBinding(principal, "TOPIC", env.t("orders"), "LITERAL", "WRITE", "ALLOW")
    stray = AclBinding(principal, "TOPIC", env.t("payments"), "LITERAL", "WRITE", "ALLOW")
    assert write in env.admin.acls_of(principal)

    env.admin.alter_topic_configs([AlterTopicConfig(env.t("orders"), {"retention.ms": "1000"})])
    env.admin.delete_acls([write])
    env.admin.create_acls([stray])
    env.admin.delete_scram([f"{env.ns}.order-service"])

    eventually(lambda: env.topic(env.t("orders")).config == {"retention.ms": "86400000"})
    eventually(lambda: write in env.admin.acls_of(principal) and stray not in env.admin.acls_of(principal))
    secret = env.secret("order-service")
    eventually(lambda: probes.authenticates_everywhere(env.kafka.bootstrap_servers, secret["username"],
                                                       secret["password"]))
    assert env.get("kafkatopic", "orders")["status"].get("lastDriftCorrection")
    events = json.loads(env.kubectl("get", "events", "-n", env.ns, "-o", "json",
                                    "--field-selector", "reason=DriftCorrected"))["items"]
    assert {e["involvedObject"]["name"] for e in events} >= {"orders", "order-service"}


def test_quotas_come_from_the_user_or_the_use_case_defaults_and_drift_is_repaired(env):
    def user(name: str, quotas: dict | None) -> dict:
        spec = {"useCase": {"name": "devstack"}, **({"quotas": quotas} if quotas is not None else {})}
        return {"apiVersion": "kafka.usecase.dev/v1alpha1", "kind": "KafkaUser", "metadata": {"name": name},
                "spec": spec}

    def in_kafka(name: str) -> dict:
        return env.admin.user_quotas([f"{env.ns}.{name}"])[f"{env.ns}.{name}"]

    def status_quotas(name: str) -> dict | None:
        return (env.get("kafkauser", name) or {}).get("status", {}).get("quotas")

    def defaults(quotas: dict | None) -> None:
        env.kubectl("patch", "kafkausecase", "devstack", "-n", env.ns, "--type=merge",
                    "-p", json.dumps({"spec": {"quotas": {"defaults": quotas} if quotas else None}}))

    unmanaged = f"{env.ns}.nobody"  # a principal no KafkaUser names: never touched
    assert env.admin.alter_user_quotas({unmanaged: {"producer_byte_rate": 4096.0}}) == {unmanaged: None}
    for manifest in (user("throttled", {"producerByteRate": 1048576}), user("plain", None), user("opted-out", {})):
        env.apply(manifest)
    for name in ("throttled", "plain", "opted-out"):
        env.wait_ready("kafkauser", name)
    eventually(lambda: in_kafka("throttled") == {"producer_byte_rate": 1048576.0})
    assert status_quotas("throttled") == {"producerByteRate": 1048576, "source": "KafkaUser"}
    assert (in_kafka("plain"), status_quotas("plain")) == ({}, {"source": "None"})
    try:
        # The use case's defaults reach the user without quotas of its own (at the next resync), and no other.
        defaults({"consumerByteRate": 2097152})
        eventually(lambda: in_kafka("plain") == {"consumer_byte_rate": 2097152.0})
        eventually(lambda: status_quotas("plain") == {"consumerByteRate": 2097152, "source": "KafkaUseCase"})
        assert in_kafka("throttled") == {"producer_byte_rate": 1048576.0} and in_kafka("opted-out") == {}
        assert status_quotas("opted-out") == {"source": "KafkaUser"}

        # Changed in Kafka behind the operator's back: put back by the resync, with an Event.
        env.admin.alter_user_quotas({f"{env.ns}.throttled": {"producer_byte_rate": 9e6, "request_percentage": 10.0}})
        eventually(lambda: in_kafka("throttled") == {"producer_byte_rate": 1048576.0})

        def drift_event():
            """a DriftCorrected Event for the user naming what was put back"""
            events = json.loads(env.kubectl("get", "events", "-n", env.ns, "-o", "json", "--field-selector",
                                            "reason=DriftCorrected,involvedObject.name=throttled"))["items"]
            return any("quotas producer_byte_rate=1048576, request_percentage removed" in e["message"]
                       for e in events)

        eventually(drift_event)
        # Deleting a user removes its quota entity.
        env.kubectl("delete", "kafkauser", "throttled", "-n", env.ns, "--timeout=60s", timeout=70)
        eventually(lambda: in_kafka("throttled") == {})
    finally:  # the defaults go, and with them the quotas they gave (later tests run without)
        defaults(None)
    eventually(lambda: in_kafka("plain") == {})
    eventually(lambda: status_quotas("plain") == {"source": "None"})  # no stale value left in the status
    assert env.admin.user_quotas([unmanaged])[unmanaged] == {"producer_byte_rate": 4096.0}
    env.admin.alter_user_quotas({unmanaged: {"producer_byte_rate": None}})


def test_a_shared_grant_removed_keeps_what_the_users_own_acls_still_want(env):
    env.wait_ready("kafkaacl", "order-readers")
    principal = f"User:{env.ns}.order-service"
    describe = AclBinding(principal, "TOPIC", env.t("orders"), "LITERAL", "DESCRIBE", "ALLOW")
    read = AclBinding(principal, "TOPIC", env.t("orders"), "LITERAL", "READ", "ALLOW")
    assert {describe, read} <= env.admin.acls_of(principal)

    env.kubectl("delete", "kafkaacl", "order-readers", "-n", env.ns)

    eventually(lambda: read not in env.admin.acls_of(principal))
    assert describe in env.admin.acls_of(principal)  # the user's inline ACL also grants it
    assert not env.admin.acls_of(f"User:{env.ns}.billing")  # billing's only grants were the shared ones


def test_deletion_policies_keep_or_delete_the_topic(env):
    env.wait_ready("kafkatopic", "payments")  # deletionPolicy: Delete
    env.kubectl("delete", "kafkatopic", "payments", "orders", "-n", env.ns)  # orders: Retain (the default)

    eventually(lambda: env.topic(env.t("payments")) is None)
    assert env.topic(env.t("orders")) is not None


def test_an_existing_topic_is_a_conflict_until_adopted(env):
    name = f"legacy-{uuid.uuid4().hex[:6]}"
    env.admin.create_topics([Topic(name, 1, None)])
    topic = {"apiVersion": "kafka.usecase.dev/v1alpha1", "kind": "KafkaTopic", "metadata": {"name": name},
             "spec": {"useCase": {"name": "devstack"}, "partitions": 1, "deletionPolicy": "Delete"}}
    env.apply(topic)
    condition = env.wait_ready("kafkatopic", name, "False", "Conflict")
    assert "adopt" in condition["message"]

    env.kubectl("delete", "kafkatopic", name, "-n", env.ns)  # not ours: Delete must not delete it
    assert env.topic(name) is not None

    topic["metadata"]["annotations"] = {"kafka.usecase.dev/adopt": "true"}
    env.apply(topic)
    env.wait_ready("kafkatopic", name)
    env.kubectl("delete", "kafkatopic", name, "-n", env.ns)
    eventually(lambda: env.topic(name) is None)


def test_a_namespace_the_use_case_does_not_admit_gets_nothing(env):
    other = f"{env.ns}-other"
    user = {"apiVersion": "kafka.usecase.dev/v1alpha1", "kind": "KafkaUser", "metadata": {"name": "intruder"},
            "spec": {"useCase": {"name": "devstack", "namespace": env.ns}}}
    env.apply(user, namespace=other)

    condition = env.wait_ready("kafkauser", "intruder", "False", "NotAllowed", namespace=other)
    assert env.ns in condition["message"]
    assert env.get("secret", "intruder", namespace=other) is None
    assert env.admin.scram_users([f"{other}.intruder"]) == {f"{other}.intruder": False}


def test_a_topic_applied_before_its_use_case_waits_for_it(env):
    topic = {"apiVersion": "kafka.usecase.dev/v1alpha1", "kind": "KafkaTopic", "metadata": {"name": "early"},
             "spec": {"useCase": {"name": "later"}, "topicName": env.t("early")}}
    env.apply(topic)
    env.wait_ready("kafkatopic", "early", "False", "UseCaseNotFound")
    assert env.topic(env.t("early")) is None

    use_case = env.get("kafkausecase", "devstack")
    env.apply({"apiVersion": use_case["apiVersion"], "kind": "KafkaUseCase", "metadata": {"name": "later"},
               "spec": use_case["spec"]})
    env.wait_ready("kafkatopic", "early")
    assert env.topic(env.t("early")) is not None


def test_a_stopped_broker_means_cluster_not_ready_then_ready(env):
    node = next(n for n in env.kafka.stack.pids if n.startswith("broker"))  # 1 broker: the whole cluster
    env.kafka.stop_nodes([node])
    try:
        topic = {"apiVersion": "kafka.usecase.dev/v1alpha1", "kind": "KafkaTopic", "metadata": {"name": "late"},
                 "spec": {"useCase": {"name": "devstack"}, "topicName": env.t("late")}}
        env.apply(topic)
        env.wait_ready("kafkatopic", "late", "False", "ClusterNotReady", timeout=120)
    finally:
        env.kafka.stack.restart(node)
    env.wait_ready("kafkatopic", "late", timeout=180)
    assert env.topic(env.t("late")) is not None


def test_operator_killed_mid_bulk_apply_converges_to_exactly_the_desired_state(env):
    killed_mid_bulk_apply(env, topic_count=120, user_count=20)


@pytest.mark.slow
def test_operator_killed_mid_a_large_bulk_apply_converges(env):
    killed_mid_bulk_apply(env, topic_count=1000, user_count=200)


def killed_mid_bulk_apply(env, topic_count: int, user_count: int) -> None:
    prefix = f"bulk-{uuid.uuid4().hex[:5]}"
    topics = [{"apiVersion": "kafka.usecase.dev/v1alpha1", "kind": "KafkaTopic", "metadata": {"name": f"{prefix}-{i}"},
               "spec": {"useCase": {"name": "devstack"}, "partitions": 2, "config": {"retention.ms": 3600000 + i}}}
              for i in range(topic_count)]
    users = [{"apiVersion": "kafka.usecase.dev/v1alpha1", "kind": "KafkaUser", "metadata": {"name": f"{prefix}-u{i}"},
              "spec": {"useCase": {"name": "devstack"}, "acls": [
                  {"resource": {"type": "topic", "name": f"{prefix}-{i}"}, "operations": ["Read", "Write"]},
                  {"resource": {"type": "group", "name": f"{prefix}-", "patternType": "prefixed"},
                   "operations": ["Read"]}]}}
             for i in range(user_count)]
    # Server-side: one request per object (client-side apply reads each first), as GitOps tools apply.
    env.kubectl("apply", "--server-side", "-n", env.ns, "-f", "-", timeout=60 + topic_count // 4,
                input=json.dumps({"apiVersion": "v1", "kind": "List", "items": topics + users}))
    eventually(lambda: any(env.topic(f"{prefix}-{i}") for i in range(0, topic_count, 10)), timeout=120,
               interval=0.05)
    env.operator.kill()  # mid-way: some topics exist, most do not; statuses half written
    env.operator.start()

    def all_ready():
        """every topic and user Ready"""
        items = json.loads(env.kubectl("get", "kafkatopics,kafkausers", "-n", env.ns, "-o", "json"))["items"]
        mine = [o for o in items if o["metadata"]["name"].startswith(prefix)]
        return len(mine) == topic_count + user_count and all(any(c["type"] == "Ready" and c["status"] == "True"
                                            for c in (o.get("status") or {}).get("conditions", [])) for o in mine)

    eventually(all_ready, timeout=240 + topic_count // 5, interval=2)
    names = [t["metadata"]["name"] for t in topics]

    # Verified only with requests any broker answers (metadata, configs, ACLs, logins): librdkafka's
    # DescribeTopics and DescribeUserScramCredentials wait for the controller, and on the
    # ZooKeeper-mode broker an earlier test of this module restarted, a fresh client sometimes never
    # learns it ("Failed while waiting for controller"). Ready means the brokers' metadata shows the
    # topic, so no wait here.
    admin = AdminClient(env.kafka.client_config())
    metadata = admin.list_topics(timeout=30).topics
    assert {n: len(metadata[n].partitions) for n in metadata if n.startswith(prefix)} == {n: 2 for n in names}
    futures = admin.describe_configs([ConfigResource(ResourceType.TOPIC, n) for n in names], request_timeout=30)
    overrides = {resource.name: {k: e.value for k, e in future.result(timeout=60).items()
                                 if e.source == ConfigSource.DYNAMIC_TOPIC_CONFIG.value}
                 for resource, future in futures.items()}
    assert overrides == {f"{prefix}-{i}": {"retention.ms": str(3600000 + i)} for i in range(topic_count)}
    usernames = [f"{env.ns}.{u['metadata']['name']}" for u in users]

    def every_users_acls():
        """every user's ACLs, read by a client that finds the controller"""
        try:  # the same ZooKeeper-mode trouble: a client stuck waiting for the controller is replaced
            fresh = ConfluentKafkaAdmin(env.kafka.client_config(), timeout=15)
            return {user: fresh.acls_of(f"User:{user}") for user in usernames}
        except KafkaException as error:
            if error.args[0].code() != KafkaError._TIMED_OUT:
                raise
            return None

    assert eventually(every_users_acls, timeout=120, interval=1) == {user: {
        AclBinding(f"User:{user}", "TOPIC", f"{prefix}-{i}", "LITERAL", "READ", "ALLOW"),
        AclBinding(f"User:{user}", "TOPIC", f"{prefix}-{i}", "LITERAL", "WRITE", "ALLOW"),
        AclBinding(f"User:{user}", "GROUP", f"{prefix}-", "PREFIXED", "READ", "ALLOW")} for i, user in enumerate(usernames)}
    for i, user in enumerate(usernames):
        secret = env.secret(f"{prefix}-u{i}")
        assert probes.authenticates_everywhere(env.kafka.bootstrap_servers, secret["username"], secret["password"])

