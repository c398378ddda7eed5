"""The configuration the operator renders for a use case really runs: a 3-node ZooKeeper ensemble
with 3 Kafka 3.9 brokers, and 3 KRaft controllers with 3 Kafka 4.x brokers, started as local
processes from the devstack's jars. Only host names, ports and paths are rewritten to local ones,
and the test proves, key by key, that the rewrite changed nothing else."""

import re
import secrets
import uuid

import pytest
from confluent_kafka import KafkaError, KafkaException
from confluent_kafka.admin import AdminClient

from devstack import kafka as devkafka
from devstack import probes, proc
from kafka_usecase_operator.api import KafkaUseCase
from kafka_usecase_operator.render import config
from kafka_usecase_operator.render.model import CONTROLLER_ID_OFFSET, cluster_model, controller_directory_id
from waiting import eventually

pytestmark = pytest.mark.kafka

# Keys whose values name hosts, ports or paths: the only ones a local rewrite may change.
LOCATION_KEYS = {"listeners", "advertised.listeners", "controller.quorum.bootstrap.servers", "zookeeper.connect",
                 "log.dirs",
                 "dataDir", "clientPort"}


def properties(text: str) -> dict[str, str]:
    pairs = (line.split("=", 1) for line in text.splitlines() if line.strip() and not line.startswith("#"))
    return {key.strip(): value.strip() for key, value in pairs}


def assert_only_locations_changed(rendered: str, local: str) -> None:
    before, after = properties(rendered), properties(local)
    assert before.keys() == after.keys()
    changed = {key for key in before if before[key] != after[key]}
    assert changed <= LOCATION_KEYS | {k for k in before if re.fullmatch(r"server\.\d+", k)}, changed


def localize(text: str, hosts: dict[str, str], extra: dict[str, str]) -> str:
    for name, address in {**hosts, **extra}.items():
        text = text.replace(name, address)
    return text


def use_case(mode: str) -> tuple:
    quorum = {"zookeeper": {"replicas": 3}} if mode == "zookeeper" else {"controllers": {"replicas": 3}}
    spec = KafkaUseCase.parse({"metadata": {"name": "boot"}, "spec": {
        "profile": "critical", "metadataQuorum": {"mode": mode},
        "kafka": {"version": "3.9.2" if mode == "zookeeper" else "4.3.1", "replicas": 3}, **quorum}})
    return cluster_model(f"boot-{mode[:2]}", "apps", spec)


@pytest.fixture
def stack(tmp_path):
    stack = proc.Stack(f"render-{uuid.uuid4().hex[:6]}", tmp_path)
    stack.save()
    yield stack
    stack.stop([c for c in stack.running() if c.startswith("broker")])
    stack.stop()


def admin_for(bootstrap: str, password: str) -> AdminClient:
    return AdminClient({"bootstrap.servers": bootstrap, "security.protocol": "SASL_PLAINTEXT",
                        "sasl.mechanism": "SCRAM-SHA-512", "sasl.username": "admin", "sasl.password": password,
                        "log_level": 0})


def assert_secured(bootstrap: str, admin_password: str) -> None:
    admin = admin_for(bootstrap, admin_password)

    def formed():
        """all three brokers registered and a controller elected, seen through the admin's SCRAM login"""
        try:
            cluster = admin.describe_cluster(request_timeout=10).result(timeout=15)
        except KafkaException:
            return False  # still electing; a loaded 2-core machine can take a while
        return len(cluster.nodes) == 3 and cluster.controller is not None

    eventually(formed, timeout=120, interval=1)
    topic, user, password = f"t-{uuid.uuid4().hex[:6]}", f"u-{uuid.uuid4().hex[:6]}", secrets.token_urlsafe(16)
    probes.create_topic(admin, topic)
    probes.create_scram_user(admin, user, password)
    eventually(lambda: probes.authenticates_everywhere(bootstrap, user, password), timeout=60)
    assert probes.produce_as(bootstrap, user, password, topic) == KafkaError.TOPIC_AUTHORIZATION_FAILED


def test_zookeeper_mode_configuration_boots(stack, tmp_path):
    cluster = use_case("zookeeper")
    admin_password = secrets.token_urlsafe(24)
    launcher = devkafka.JvmLauncher(stack, cluster.version)
    zk_hosts = {s.host: f"127.0.3.{s.id}" for s in cluster.zookeeper_servers}
    rendered_zoo = config.zoo_cfg(cluster)
    for server in cluster.zookeeper_servers:
        # Distinct ports per node: zoo.cfg binds all addresses, as it must in a pod.
        local = localize(rendered_zoo, zk_hosts, {cluster.zookeeper_data_dir: str(tmp_path / f"zk-{server.id}")})
        local = re.sub(r"clientPort=\d+", f"clientPort={32180 + server.id}", local)
        local = re.sub(r"server\.(\d+)=(\S+):2888:3888", lambda m: f"server.{m[1]}={m[2]}:{32880 + int(m[1])}:"
                       f"{33880 + int(m[1])}", local)
        assert_only_locations_changed(rendered_zoo, local)
        (tmp_path / f"zk-{server.id}").mkdir()
        (tmp_path / f"zk-{server.id}" / "myid").write_text(f"{server.id}\n")
        (tmp_path / f"zk-{server.id}.cfg").write_text(local)
        launcher.start(f"zookeeper-{server.id}", "org.apache.zookeeper.server.quorum.QuorumPeerMain",
                       tmp_path / f"zk-{server.id}.cfg", "256m")
    connect = ",".join(f"127.0.3.{s.id}:{32180 + s.id}" for s in cluster.zookeeper_servers)
    for server in cluster.zookeeper_servers:
        launcher.wait_zookeeper(f"zookeeper-{server.id}", f"127.0.3.{server.id}", port=32180 + server.id)
    # What the broker pods' init container does before any broker serves clients.
    proc.run(launcher.argv("org.apache.zookeeper.ZooKeeperMain", "-server", connect, "create",
                           cluster.zookeeper_chroot, ""), "creating the chroot", timeout=60)
    proc.run(launcher.argv("kafka.admin.ConfigCommand", "--zookeeper", connect + cluster.zookeeper_chroot, "--alter",
                           "--add-config", f"SCRAM-SHA-512=[password={admin_password}]", "--entity-type", "users",
                           "--entity-name", "admin"), "creating the admin credential", timeout=120)

    template = config.broker_properties(cluster)
    broker_ips = {}
    for ordinal in range(3):
        pod_host = cluster.pod_host(cluster.broker_set, cluster.broker_headless, ordinal)
        ip = f"127.0.3.{11 + ordinal}"
        broker_ips[pod_host] = ip
        rendered = config.fill_placeholders(template, ordinal, pod_host, admin_password)
        local = localize(rendered, {**zk_hosts, pod_host: ip, "0.0.0.0": ip},
                         {cluster.data_dir: str(tmp_path / f"broker-{ordinal}")})
        local = re.sub(r"zookeeper\.connect=.*", f"zookeeper.connect={connect}{cluster.zookeeper_chroot}", local)
        assert_only_locations_changed(rendered, local)
        (tmp_path / f"broker-{ordinal}.properties").write_text(local)
        launcher.start(f"broker-{ordinal}", "kafka.Kafka", tmp_path / f"broker-{ordinal}.properties", "512m")
    for ordinal in range(3):
        launcher.wait_listening(f"broker-{ordinal}", f"127.0.3.{11 + ordinal}", 9092, 120)

    bootstrap = ",".join(f"{ip}:9092" for ip in broker_ips.values())
    assert_secured(bootstrap, admin_password)
    # No credentials, no entry: a plaintext client cannot even list topics.
    with pytest.raises(KafkaException):
        AdminClient({"bootstrap.servers": bootstrap, "log_level": 0}).list_topics(timeout=5)


def test_kraft_mode_configuration_boots(stack, tmp_path):
    cluster = use_case("kraft")
    admin_password, controller_password = secrets.token_urlsafe(24), secrets.token_urlsafe(24)
    launcher = devkafka.JvmLauncher(stack, cluster.version)
    controller_hosts = {cluster.pod_host(cluster.quorum_set, cluster.quorum_headless, i): f"127.0.4.{1 + i}"
                        for i in range(3)}
    broker_hosts = {cluster.pod_host(cluster.broker_set, cluster.broker_headless, i): f"127.0.4.{11 + i}"
                    for i in range(3)}
    cluster_id = devkafka.new_cluster_id()
    nodes = []  # (name, rendered, local host, node id)
    for ordinal, (pod_host, ip) in enumerate(controller_hosts.items()):
        rendered = config.fill_placeholders(config.controller_properties(cluster), CONTROLLER_ID_OFFSET + ordinal,
                                            pod_host, admin_password, controller_password)
        nodes.append((f"controller-{ordinal}", rendered, ip))
    for ordinal, (pod_host, ip) in enumerate(broker_hosts.items()):
        rendered = config.fill_placeholders(config.broker_properties(cluster), ordinal, pod_host, admin_password,
                                            controller_password)
        nodes.append((f"broker-{ordinal}", rendered, ip))
    initial_controllers = localize(cluster.initial_controllers(cluster_id), controller_hosts, {})
    for name, rendered, ip in nodes:
        local = localize(rendered, {**controller_hosts, **broker_hosts, "0.0.0.0": ip},
                         {cluster.data_dir: str(tmp_path / name)})
        assert_only_locations_changed(rendered, local)
        (tmp_path / f"{name}.properties").write_text(local)
        # What each pod's start script does the first time: format with the cluster id and the admin,
        # as a dynamic quorum (controllers with the initial voters, brokers with none).
        quorum = ["--initial-controllers", initial_controllers] if name.startswith("controller") else \
            ["--no-initial-controllers"]
        proc.run(launcher.argv("kafka.tools.StorageTool", "format", "-t", cluster_id, "-c",
                               str(tmp_path / f"{name}.properties"), *quorum, "--add-scram",
                               f"SCRAM-SHA-512=[name=admin,password={admin_password}]"), f"formatting {name}",
                 timeout=120)
    for name, _, _ in nodes:
        launcher.start(name, "kafka.Kafka", tmp_path / f"{name}.properties",
                       "512m" if name.startswith("broker") else "256m")
    for name, _, ip in nodes:
        launcher.wait_listening(name, ip, 9092 if name.startswith("broker") else 9093, 180)

    assert_secured(",".join(f"{ip}:9092" for ip in broker_hosts.values()), admin_password)
    controller = "127.0.4.1:9093"
    with pytest.raises(KafkaException):  # unauthenticated: nowhere on the controller listener
        AdminClient({"bootstrap.servers": controller, "log_level": 0}).list_topics(timeout=5)
    errors = []
    probe = AdminClient({"bootstrap.servers": controller, "security.protocol": "SASL_PLAINTEXT",
                         "sasl.mechanism": "PLAIN", "sasl.username": "controller", "sasl.password": "wrong",
                         "log_level": 0, "error_cb": lambda e: errors.append(e.code())})
    with pytest.raises(KafkaException):
        probe.list_topics(timeout=5)
    for _ in range(20):  # error_cb is served by poll()
        if errors:
            break
        probe.poll(0.5)
    assert KafkaError._AUTHENTICATION in errors  # the controller listener checked the password

    # A dynamic quorum (KIP-853): the voters, with the directory ids they were formatted with, are in
    # the metadata log, so controllers can later be added and removed without a static list.
    command_config = tmp_path / "controller-client.properties"
    command_config.write_text(
        "security.protocol=SASL_PLAINTEXT\nsasl.mechanism=PLAIN\nsasl.jaas.config=org.apache.kafka.common.security."
        f'plain.PlainLoginModule required username="controller" password="{controller_password}";\n')
    described = proc.run(launcher.argv("org.apache.kafka.tools.MetadataQuorumCommand", "--bootstrap-controller",
                                       controller, "--command-config", str(command_config), "describe", "--status"),
                         "describing the metadata quorum", timeout=120)
    voters = re.search(r"CurrentVoters:\s*(\[.*\])", described).group(1)
    for ordinal in range(3):
        node_id = CONTROLLER_ID_OFFSET + ordinal
        assert f'"id": {node_id}, "directoryId": "{controller_directory_id(cluster_id, node_id)}"' in voters, voters

