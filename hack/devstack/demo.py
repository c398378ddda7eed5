"""`devstack demo`: start the whole devstack and show, with real clients, that it works.

Secured brokers in both metadata modes; the operator reconciling the devstack examples (topics,
users, ACLs) into the KRaft brokers, checked with the generated credentials; a KafkaUseCase
rendered into a cluster whose pods the real scheduler places on dedicated nodes.
"""

from __future__ import annotations

import base64
import json
import os
import secrets
import time
import sys
import uuid
from pathlib import Path

from confluent_kafka import KafkaError
from confluent_kafka.admin import AclOperation, AdminClient

from devstack import build, images, kafka, kube, nodes, paths, probes, realpods
from devstack.proc import Stack, run
from kafka_usecase_operator.kafka.confluent import ConfluentKafkaAdmin

DEMO_NAMESPACE = "devstack-demo"
EXAMPLES_NAMESPACE = "devstack"
USE_CASE_NAMESPACE = "demo-analytics"
REPO = paths.HACK_DIR.parent


def run_demo() -> None:
    run_root = paths.run_dir()
    build.build_all()
    say = build.say
    say("starting the control plane ...")
    kube_stack = kube.up(run_root)
    for mode in kafka.MODES:
        cluster = kafka.plan(mode)
        say(f"starting {cluster.name} (Kafka {cluster.version}) ...")
        kafka.up(cluster, run_root)

    print("\n== Nodes: a dedicated pool for ZooKeeper/KRaft controllers, one for brokers ==")
    print(kube.kubectl(kube_stack, "get", "nodes", "-L", "kafka.usecase.dev/pool"))
    for mode in kafka.MODES:
        _show_kafka(Stack.load(f"kafka-{mode}", run_root))
    _show_scheduling(kube_stack)
    _show_topics_users_acls(kube_stack, Stack.load("kafka-kraft", run_root), run_root)
    _show_use_case(kube_stack)
    if os.environ.get("DEVSTACK_REAL_NODES", "1") != "0":
        _show_real_use_case(kube_stack, run_root)
    print("\n== Use it ==")
    print("  eval $(.venv/bin/devstack env --mode kraft)     # or --mode zookeeper")
    print("  .venv/bin/devstack status                       # memory and start-up times")
    print("  .venv/bin/devstack down                         # stop everything")


def _show_kafka(stack: Stack) -> None:
    config = kafka.admin_config(stack)
    admin = AdminClient(config)
    suffix = uuid.uuid4().hex[:6]
    user, password, topic, other = f"demo-app-{suffix}", secrets.token_urlsafe(24), f"orders-{suffix}", f"payments-{suffix}"
    probes.create_topic(admin, topic)
    probes.create_topic(admin, other)
    probes.create_scram_user(admin, user, password)
    probes.grant_topic(admin, user, topic, AclOperation.WRITE, AclOperation.DESCRIBE)
    bootstrap = config["bootstrap.servers"]
    print(f"\n== {stack.config['shape']} at {bootstrap} ==")
    print(f"  created topics {topic}, {other}; SCRAM-SHA-512 user {user} with WRITE on {topic} only")
    outcomes = [
        (f"{user} produces to {topic}", probes.produce_as(bootstrap, user, password, topic), None),
        (f"{user} produces to {other}", probes.produce_as(bootstrap, user, password, other),
         KafkaError.TOPIC_AUTHORIZATION_FAILED),
        (f"{user} with a wrong password", probes.produce_as(bootstrap, user, "wrong", topic, timeout=10),
         KafkaError._AUTHENTICATION),
    ]
    for what, got, expected in outcomes:
        shown = "delivered" if got is None else KafkaError(got).name()
        verdict = "as expected" if got == expected else "UNEXPECTED"
        print(f"  {what:55} -> {shown} ({verdict})")


def _show_topics_users_acls(kube_stack: Stack, kraft: Stack, run_root) -> None:
    """The main job: examples/devstack applied with kubectl, reconciled by the operator into the
    KRaft brokers, then checked there with real clients and the generated credentials."""
    kube.kubectl(kube_stack, "apply", "--server-side", "--force-conflicts", "-f", str(REPO / "crds"))
    kube.kubectl(kube_stack, "wait", "--for=condition=Established", "crd", "-l",
                 "app.kubernetes.io/part-of=kafka-usecase-operator", "--timeout=60s")
    start_operator(kube_stack, run_root, [USE_CASE_NAMESPACE, EXAMPLES_NAMESPACE])
    examples = REPO / "examples" / "devstack"
    kube.kubectl(kube_stack, "apply", "-f", str(examples / "namespace.yaml"))
    kube.apply_external_admin_secret(kube_stack, kafka.admin_config(kraft), EXAMPLES_NAMESPACE, "devstack-admin")
    kube.kubectl(kube_stack, "apply", "-f", str(examples))
    print("\n== kubectl apply -f examples/devstack: the operator reconciles them into the KRaft brokers ==")
    objects = ["kafkatopic/orders", "kafkatopic/payments", "kafkauser/order-service", "kafkauser/billing",
               "kafkaacl/order-readers"]
    kube.kubectl(kube_stack, "wait", "--for=condition=Ready", *objects, "-n", EXAMPLES_NAMESPACE, "--timeout=120s",
                 timeout=130)
    print(kube.kubectl(kube_stack, "get", "kafka", "-n", EXAMPLES_NAMESPACE))
    config = kafka.admin_config(kraft)
    admin = ConfluentKafkaAdmin(config)
    bootstrap = config["bootstrap.servers"]
    orders = admin.describe_topics(["orders"])["orders"]
    print(f"  on the broker: topic orders, {orders.partitions} partitions, config {orders.config}")
    for user in ("order-service", "billing"):
        bindings = sorted(f"{b.operation} {b.resource_type.lower()}:{b.resource_name}{'*' if b.pattern_type == 'PREFIXED' else ''}"
                          for b in admin.acls_of(f"User:{EXAMPLES_NAMESPACE}.{user}"))
        print(f"  on the broker: User:{EXAMPLES_NAMESPACE}.{user} may {', '.join(bindings)}")
    writer, reader = _credentials(kube_stack, "order-service"), _credentials(kube_stack, "billing")
    _wait_until(lambda: probes.authenticates_everywhere(bootstrap, writer["username"], writer["password"]))
    _wait_until(lambda: probes.authenticates_everywhere(bootstrap, reader["username"], reader["password"]))
    outcomes = [
        ("order-service produces to orders", probes.produce_as(bootstrap, writer["username"], writer["password"], "orders"),
         None),
        ("billing consumes orders (group billing-demo)",
         probes.consume_as(bootstrap, reader["username"], reader["password"], "orders", "billing-demo"), None),
        ("order-service produces to payments",
         probes.produce_as(bootstrap, writer["username"], writer["password"], "payments"),
         KafkaError.TOPIC_AUTHORIZATION_FAILED),
    ]
    print("  with the credentials from the generated Secrets:")
    for what, got, expected in outcomes:
        shown = "ok" if got is None else KafkaError(got).name()
        print(f"  {what:55} -> {shown} ({'as expected' if got == expected else 'UNEXPECTED'})")


def _credentials(kube_stack: Stack, secret: str) -> dict[str, str]:
    data = json.loads(kube.kubectl(kube_stack, "get", "secret", secret, "-n", EXAMPLES_NAMESPACE, "-o", "json"))["data"]
    return {key: base64.b64decode(value).decode() for key, value in data.items()}


def _wait_until(check, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not check() and time.monotonic() < deadline:
        time.sleep(0.5)


def _show_use_case(kube_stack: Stack) -> None:
    """The operator reconciles a KafkaUseCase: objects appear, pods land on dedicated nodes."""
    kube.kubectl(kube_stack, "apply", "-f", "-", input=json.dumps(
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": USE_CASE_NAMESPACE}}))
    manifest = (REPO / "examples" / "analytics" / "usecase.yaml").read_text().replace(
        "namespace: kafka-analytics", f"namespace: {USE_CASE_NAMESPACE}")
    kube.kubectl(kube_stack, "apply", "-f", "-", input=manifest)
    print("\n== The operator reconciles examples/analytics/usecase.yaml "
          f"in namespace {USE_CASE_NAMESPACE} ==")
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        use_case = json.loads(kube.kubectl(kube_stack, "get", "kafkausecase", "analytics", "-n", USE_CASE_NAMESPACE,
                                           "-o", "json"))
        if any(c["type"] == "Ready" and c["status"] == "True" for c in (use_case.get("status") or {}).get("conditions", [])):
            break
        time.sleep(1)
    print(kube.kubectl(kube_stack, "get", "kafkausecase,statefulsets,services,pvc", "-n", USE_CASE_NAMESPACE))
    print(kube.kubectl(kube_stack, "get", "pods", "-n", USE_CASE_NAMESPACE, "-o", "wide"))
    for condition in (use_case.get("status") or {}).get("conditions", []):
        print(f"  {condition['type']:18} {condition['status']:6} {condition['reason']}: {condition['message']}")
    data = json.loads(kube.kubectl(kube_stack, "get", "configmap", "analytics-kafka-config", "-n", USE_CASE_NAMESPACE,
                                   "-o", "json"))["data"]
    config = data[f"{data['latest']}.server.properties"]  # the newest configuration version
    print("\n  rendered server.properties (excerpt):")
    for line in config.splitlines():
        if line.startswith(("zookeeper.connect", "advertised.listeners", "authorizer", "log.retention", "min.insync")):
            print(f"    {line}")


def _show_real_use_case(kube_stack: Stack, run_root) -> None:
    """A KRaft use case as real pods: the operator installed with Helm as a pod, brokers and a
    controller on real nodes, a client pod producing and consuming through a generated Secret."""
    namespace = "demo-real"
    print("\n== Real nodes: kubelets running the project's images ==")
    nodes.up(run_root, kube_stack, nodes.plan(), lambda node: images.archives(node.pool))
    print(kube.kubectl(kube_stack, "get", "nodes", "-l", "type=real", "-o", "wide"))
    values = run_root / "demo-real-values.json"  # JSON is YAML to helm
    values.write_text(json.dumps(realpods.chart_values(watchNamespaces=[namespace])))
    kube.kubectl(kube_stack, "apply", "-f", "-", input=json.dumps(
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}}))
    run([kube.binary("helm"), "--kubeconfig", kube_stack.config["kubeconfig"], "upgrade", "--install",
                      "kuo", str(REPO / "charts" / "kafka-usecase-operator"), "-n", "demo-operator",
                      "--create-namespace", "-f", str(values), "--wait", "--timeout", "180s"], "helm install", timeout=200)
    use_case = realpods.use_case("kraft", namespace, name="pricing")
    user = {"apiVersion": "kafka.usecase.dev/v1alpha1", "kind": "KafkaUser", "metadata": {"name": "pricer", "namespace": namespace},
            "spec": {"useCase": {"name": "pricing"}, "acls": [
                {"resource": {"type": "topic", "name": "prices"}, "operations": ["Write", "Read", "Describe"]},
                {"resource": {"type": "group", "name": "e2e-", "patternType": "prefixed"}, "operations": ["Read"]}]}}
    topic = {"apiVersion": "kafka.usecase.dev/v1alpha1", "kind": "KafkaTopic", "metadata": {"name": "prices", "namespace": namespace},
             "spec": {"useCase": {"name": "pricing"}, "partitions": 3, "replicas": 1}}
    started = time.monotonic()
    kube.kubectl(kube_stack, "apply", "-f", "-", input=json.dumps({"apiVersion": "v1", "kind": "List",
                                                                    "items": [use_case, topic, user]}))
    kube.kubectl(kube_stack, "wait", "--for=condition=Ready", "kafkausecase/pricing", "kafkatopic/prices",
                 "kafkauser/pricer", "-n", namespace, "--timeout=300s", timeout=320)
    print(f"  Ready in {time.monotonic() - started:.0f}s")
    print(kube.kubectl(kube_stack, "get", "kafkausecase,pods,pvc", "-n", namespace, "-o", "wide"))
    for action in ("produce", "consume"):
        name = f"demo-{action}"
        kube.kubectl(kube_stack, "delete", "pod", name, "-n", namespace, "--ignore-not-found")
        kube.kubectl(kube_stack, "apply", "-f", "-", input=json.dumps(
            realpods.client_pod(namespace, name, "pricer", [action, "prices", "100"])))
        kube.kubectl(kube_stack, "wait", "--for=jsonpath={.status.phase}=Succeeded", f"pod/{name}", "-n", namespace,
                     "--timeout=180s", timeout=200)
        result = json.loads(kube.kubectl(kube_stack, "logs", name, "-n", namespace).strip().splitlines()[-1])
        counts = {key: len(value) if isinstance(value, list) else value for key, value in result.items()}
        print(f"  {action} through the generated Secret: {counts}")


def start_operator(kube_stack: Stack, run_root, namespaces: list[str]) -> Stack:
    """`kafka-usecase-operator run` in the background, as a devstack component (`devstack down` stops it)."""
    stack = Stack.load("operator", run_root) or Stack("operator", run_root / "operator")
    if stack.alive("operator"):
        stack.stop()
    stack.root.mkdir(parents=True, exist_ok=True)
    operator = str(Path(sys.executable).with_name("kafka-usecase-operator"))
    argv = [operator, "run", "--liveness-port", "18080"]
    for namespace in namespaces:
        argv += ["--namespace", namespace]
    stack.start("operator", argv, env={"KUBECONFIG": kube_stack.config["kubeconfig"], "KUO_OPERATOR_NAMESPACE": "kafka-system"})
    return stack


def _show_scheduling(kube_stack: Stack) -> None:
    kube.kubectl(kube_stack, "delete", "namespace", DEMO_NAMESPACE, "--ignore-not-found", "--wait=true", timeout=120)
    kube.kubectl(kube_stack, "create", "namespace", DEMO_NAMESPACE)
    kube.kubectl(kube_stack, "apply", "-n", DEMO_NAMESPACE, "-f", "-", input=kube.example_quorum_statefulset())
    print("\n== A 3-node quorum StatefulSet on the dedicated pool (nodeSelector, toleration, anti-affinity) ==")
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        pods = json.loads(kube.kubectl(kube_stack, "get", "pods", "-n", DEMO_NAMESPACE, "-o", "json"))["items"]
        if len(pods) == 3 and all(p["status"].get("phase") == "Running" for p in pods):
            break
        time.sleep(1)
    print(kube.kubectl(kube_stack, "get", "pods", "-n", DEMO_NAMESPACE, "-o", "wide"))
