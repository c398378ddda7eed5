"""The pure builders: a KafkaUseCase in, its cluster's Kubernetes objects and config files out."""

import re
from pathlib import Path

import pytest
import yaml

from kafka_usecase_operator.api import KafkaUseCase
from kafka_usecase_operator.render import cluster, config, profiles
from kafka_usecase_operator.render.model import cluster_model
from kafka_usecase_operator.usecase import configs

pytestmark = pytest.mark.unit
ROOT = Path(__file__).parents[2]
OWNER = cluster.Owner("analytics", "0000-uid")
OPERATOR = cluster.OperatorIdentity("kafka-system")


def example(path: str):
    doc = yaml.safe_load((ROOT / "examples" / path).read_text())
    return cluster_model(doc["metadata"]["name"], doc["metadata"]["namespace"], KafkaUseCase.parse(doc))


def use_case(spec: dict, name: str = "uc"):
    return cluster_model(name, "apps", KafkaUseCase.parse({"metadata": {"name": name}, "spec": spec}))


def by_kind(objects, kind):
    return {o["metadata"]["name"]: o for o in objects if o["kind"] == kind}


def newest_files(objects) -> dict[str, dict[str, str]]:
    """Each ConfigMap's newest configuration version: its files by name."""
    return {name: configs.files_of(m["data"], m["data"]["latest"]) for name, m in by_kind(objects, "ConfigMap").items()}


@pytest.mark.parametrize("path", ["analytics/usecase.yaml", "realtime/usecase.yaml"])
def test_every_child_points_at_its_use_case_and_carries_the_labels(path):
    c = example(path)
    for obj in cluster.build(c, OWNER, OPERATOR):
        assert obj["metadata"]["ownerReferences"] == [OWNER.reference()]
        assert obj["metadata"]["namespace"] == c.namespace
        labels = obj["metadata"]["labels"]
        assert labels["kafka.usecase.dev/use-case"] == c.name
        assert labels["app.kubernetes.io/managed-by"] == "kafka-usecase-operator"


def test_zookeeper_mode_children():
    objects = cluster.build(example("analytics/usecase.yaml"), OWNER, OPERATOR)

    assert set(by_kind(objects, "StatefulSet")) == {"analytics-kafka", "analytics-zookeeper"}
    assert set(by_kind(objects, "Service")) == {"analytics-kafka-brokers", "analytics-kafka-bootstrap",
                                                "analytics-zookeeper-nodes", "analytics-zookeeper-client"}
    assert set(by_kind(objects, "PodDisruptionBudget")) == {"analytics-kafka", "analytics-zookeeper"}
    zk_config = newest_files(objects)["analytics-zookeeper-config"]["zoo.cfg"]
    assert re.findall(r"^server\.(\d)=analytics-zookeeper-(\d)\.analytics-zookeeper-nodes\.kafka-analytics\.svc:2888:3888$",
                      zk_config, re.M) == [("1", "0"), ("2", "1"), ("3", "2")]
    broker_config = config.broker_properties(example("analytics/usecase.yaml"))
    assert "zookeeper.connect=analytics-zookeeper-0.analytics-zookeeper-nodes.kafka-analytics.svc:2181," in broker_config
    assert broker_config.split("zookeeper.connect=")[1].splitlines()[0].endswith("/kafka-analytics")


def test_quorum_runs_one_per_dedicated_node_and_never_beside_its_brokers():
    c = example("analytics/usecase.yaml")
    zookeeper = by_kind(cluster.build(c, OWNER, OPERATOR), "StatefulSet")["analytics-zookeeper"]["spec"]["template"]["spec"]

    assert zookeeper["nodeSelector"] == {"kafka.usecase.dev/pool": "metadata"}
    assert zookeeper["tolerations"] == [{"key": "kafka.usecase.dev/pool", "operator": "Equal", "value": "metadata",
                                         "effect": "NoSchedule"}]
    required = zookeeper["affinity"]["podAntiAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]
    avoided = [term["labelSelector"]["matchLabels"]["app.kubernetes.io/component"] for term in required]
    assert sorted(avoided) == ["broker", "zookeeper"]
    assert all(term["topologyKey"] == "kubernetes.io/hostname" for term in required)
    brokers = by_kind(cluster.build(c, OWNER, OPERATOR), "StatefulSet")["analytics-kafka"]["spec"]["template"]["spec"]
    broker_terms = brokers["affinity"]["podAntiAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]
    assert sorted(t["labelSelector"]["matchLabels"]["app.kubernetes.io/component"] for t in broker_terms) == [
        "broker", "zookeeper"]


def test_no_secret_is_rendered_into_a_config_map():
    c = example("realtime/usecase.yaml")
    objects = cluster.build(c, OWNER, OPERATOR, cluster_id="abc")
    for config_map in by_kind(objects, "ConfigMap").values():
        for text in config_map["data"].values():
            for value in re.findall(r'password="([^"]*)"', text):
                assert value in config.PLACEHOLDERS
    for statefulset in by_kind(objects, "StatefulSet").values():
        env = statefulset["spec"]["template"]["spec"]["containers"][0]["env"]
        passwords = [e for e in env if e["name"].endswith("PASSWORD")]
        assert passwords and all("secretKeyRef" in e["valueFrom"] and "value" not in e for e in passwords)


def test_kraft_controllers_authenticate_and_nothing_trusts_anonymous():
    c = example("realtime/usecase.yaml")
    for text in (config.broker_properties(c), config.controller_properties(c)):
        assert "ANONYMOUS" not in text
        assert "sasl.mechanism.controller.protocol=PLAIN" in text
    controllers = by_kind(cluster.build(c, OWNER, OPERATOR, cluster_id="abc"), "StatefulSet")["realtime-controllers"]
    env = {e["name"]: e for e in controllers["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert env["CLUSTER_ID"]["value"] == "abc"
    assert "node_id=$((ordinal + 1000))" in newest_files(cluster.build(c, OWNER, OPERATOR))[
        "realtime-controllers-config"]["start.sh"]


def test_kraft_clusters_are_formatted_as_a_dynamic_quorum():
    """KIP-853: no static voter list; controllers are formatted with the same initial voters, each
    with a directory id of its own that stays the same for the same cluster and node."""
    c = example("realtime/usecase.yaml")
    assert "controller.quorum.voters" not in config.broker_properties(c) + config.controller_properties(c)
    assert "controller.quorum.bootstrap.servers=realtime-controllers-0.realtime-controllers-nodes.kafka-realtime.svc:9093," \
        in config.controller_properties(c)
    statefulsets = by_kind(cluster.build(c, OWNER, OPERATOR, cluster_id="4nKxQ8cYT0uB7iWTJt9qfg"), "StatefulSet")
    env = {e["name"]: e.get("value") for e in
           statefulsets["realtime-controllers"]["spec"]["template"]["spec"]["containers"][0]["env"]}
    voters = env["INITIAL_CONTROLLERS"].split(",")
    assert [v.split("@")[0] for v in voters] == ["1000", "1001", "1002"]
    directory_ids = [v.rsplit(":", 1)[1] for v in voters]
    assert len(set(directory_ids)) == 3 and all(len(d) == 22 and not d.startswith("-") for d in directory_ids)
    assert c.initial_controllers("4nKxQ8cYT0uB7iWTJt9qfg") == env["INITIAL_CONTROLLERS"]  # stable
    assert c.initial_controllers("another-cluster-id0000") != env["INITIAL_CONTROLLERS"]
    brokers = statefulsets["realtime-kafka"]["spec"]["template"]["spec"]["containers"][0]["env"]
    assert "INITIAL_CONTROLLERS" not in {e["name"] for e in brokers}
    scripts = newest_files(cluster.build(c, OWNER, OPERATOR))
    assert '--initial-controllers "${INITIAL_CONTROLLERS}"' in scripts["realtime-controllers-config"]["start.sh"]
    assert "--no-initial-controllers" in scripts["realtime-kafka-config"]["start.sh"]


def test_a_config_change_adds_a_version_and_moves_no_pod_and_the_template_does_not_change():
    base = {"kafka": {"replicas": 3, "config": {"log.retention.hours": 24}}}
    changed = {"kafka": {"replicas": 3, "config": {"log.retention.hours": 48}}}
    first = by_kind(cluster.build(use_case(base), OWNER, OPERATOR), "ConfigMap")["uc-kafka-config"]["data"]
    live = cluster.Live(config_data={"uc-kafka-config": first})
    objects = cluster.build(use_case(changed), OWNER, OPERATOR, live=live)
    second = by_kind(objects, "ConfigMap")["uc-kafka-config"]["data"]

    old, new = first["latest"], second["latest"]
    assert old != new
    # every pod still starts with the version it ran: only the roller moves a pointer
    assert configs.pointers(second) == {0: old, 1: old, 2: old}
    assert "log.retention.hours=48" in configs.files_of(second, new)["server.properties"]
    assert "log.retention.hours=24" in configs.files_of(second, old)["server.properties"]
    template = lambda objs: by_kind(objs, "StatefulSet")["uc-kafka"]["spec"]["template"]
    assert template(objects) == template(cluster.build(use_case(base), OWNER, OPERATOR))


def test_versions_no_pod_points_at_are_dropped_and_new_pods_start_with_the_newest():
    files = {"server.properties": "a=1\n", "start.sh": "x"}
    older = configs.versioned_data({"server.properties": "a=0\n", "start.sh": "x"}, 2, None)
    data = configs.versioned_data(files, 3, older, advance=frozenset({0}))
    newest = configs.version_of(files)

    assert configs.pointers(data) == {0: newest, 1: older["latest"], 2: newest}
    shrunk = configs.versioned_data(files, 1, data)
    assert configs.pointers(shrunk) == {0: newest}
    assert not any(key.startswith(older["latest"]) for key in shrunk)


def test_the_statefulsets_leave_restarts_to_the_operator():
    for sts in by_kind(cluster.build(use_case({}), OWNER, OPERATOR), "StatefulSet").values():
        assert sts["spec"]["updateStrategy"] == {"type": "OnDelete"}
        assert sts["spec"]["template"]["spec"]["containers"][0]["command"] == ["/bin/bash", "/config/launch.sh"]


@pytest.mark.parametrize("access, expected", [
    ({"namespaces": {"from": "Same"}}, [{"podSelector": {}}]),
    ({"namespaces": {"from": "All"}}, [{"namespaceSelector": {}}]),
    ({"namespaces": {"from": "Selector", "selector": {"matchLabels": {"team": "pricing"}}}},
     [{"namespaceSelector": {"matchLabels": {"team": "pricing"}}}]),
])
def test_brokers_admit_clients_from_the_namespaces_access_allows(access, expected):
    policies = by_kind(cluster.build(use_case({"access": access}), OWNER, OPERATOR), "NetworkPolicy")

    assert policies["uc-broker"]["spec"]["ingress"][0]["from"] == expected
    quorum_sources = policies["uc-controller"]["spec"]["ingress"][0]["from"]
    assert {"podSelector": {}} not in quorum_sources and {"namespaceSelector": {}} not in quorum_sources


def test_user_config_wins_over_the_profile_and_replication_fits_the_cluster():
    single = use_case({"profile": "critical", "kafka": {"replicas": 1, "config": {"log.retention.hours": 1}}})

    settings = single.broker_config

    assert settings["log.retention.hours"] == "1"
    assert settings["default.replication.factor"] == "1" and settings["min.insync.replicas"] == "1"
    assert settings["unclean.leader.election.enable"] == "false"


def test_images_follow_the_version_unless_overridden():
    zookeeper_mode = by_kind(cluster.build(example("analytics/usecase.yaml"), OWNER, OPERATOR), "StatefulSet")
    overridden = by_kind(cluster.build(use_case({"kafka": {"image": "registry.local/kafka:4.3.1-patched"}}),
                                       OWNER, OPERATOR), "StatefulSet")

    def image(sts):
        return sts["spec"]["template"]["spec"]["containers"][0]["image"]

    assert image(zookeeper_mode["analytics-kafka"]) == "ghcr.io/kafka-usecase/kafka:3.9.2"
    assert image(zookeeper_mode["analytics-zookeeper"]) == "ghcr.io/kafka-usecase/kafka:3.9.2"  # ZooKeeper 3.8 inside
    assert image(overridden["uc-kafka"]) == "registry.local/kafka:4.3.1-patched"


def test_registry_pull_policy_and_secrets_come_from_the_operator_settings():
    from kafka_usecase_operator.render.images import ImageSettings
    from kafka_usecase_operator.render.model import cluster_model

    base = example("realtime/usecase.yaml")
    c = cluster_model(base.name, base.namespace, base.spec, ImageSettings("registry.example/kuo", "Always", ("regcred",)))
    pod = by_kind(cluster.build(c, OWNER, OPERATOR), "StatefulSet")[c.broker_set]["spec"]["template"]["spec"]
    assert pod["containers"][0]["image"] == f"registry.example/kuo/kafka:{c.version}"
    assert pod["containers"][0]["imagePullPolicy"] == "Always"
    assert pod["imagePullSecrets"] == [{"name": "regcred"}]


def test_a_use_cases_own_pull_policy_and_secrets_replace_the_operators_on_every_pod():
    from kafka_usecase_operator.render.images import ImageSettings

    operator = ImageSettings("registry.example/kuo", "IfNotPresent", ("operator-cred",))
    spec = {"metadataQuorum": {"mode": "zookeeper"}, "imagePullPolicy": "Always",
            "imagePullSecrets": [{"name": "team-cred"}]}
    own = cluster_model("uc", "apps", KafkaUseCase.parse({"metadata": {"name": "uc"}, "spec": spec}), operator)
    none = cluster_model("uc", "apps", KafkaUseCase.parse(
        {"metadata": {"name": "uc"}, "spec": {"imagePullSecrets": []}}), operator)

    for sts in by_kind(cluster.build(own, OWNER, OPERATOR), "StatefulSet").values():
        pod = sts["spec"]["template"]["spec"]
        assert pod["imagePullSecrets"] == [{"name": "team-cred"}]
        assert pod["containers"][0]["imagePullPolicy"] == "Always"
        assert pod["containers"][0]["image"].startswith("registry.example/kuo/")  # the registry stays the operator's
    for sts in by_kind(cluster.build(none, OWNER, OPERATOR), "StatefulSet").values():
        pod = sts["spec"]["template"]["spec"]
        assert not pod.get("imagePullSecrets")
        assert pod["containers"][0]["imagePullPolicy"] == "IfNotPresent"


def test_heap_follows_the_memory_limit_capped_or_the_override():
    from kafka_usecase_operator.api.usecase import Resources
    from kafka_usecase_operator.render.model import heap_options

    assert heap_options(None, Resources(limits={"memory": "2Gi"}), 1024) == "-Xms1024m -Xmx1024m"
    assert heap_options(None, Resources(requests={"memory": "1500M"}), 1024) == "-Xms715m -Xmx715m"
    assert heap_options(None, Resources(limits={"memory": "64Gi"}), 1024) == "-Xms6144m -Xmx6144m"
    assert heap_options(None, None, 512) == "-Xms512m -Xmx512m"
    assert heap_options("768Mi", Resources(limits={"memory": "2Gi"}), 1024) == "-Xms768m -Xmx768m"


def test_data_lives_below_the_volume_root_and_no_secret_is_on_a_command_line():
    c = example("realtime/usecase.yaml")
    maps = newest_files(cluster.config_maps(c))
    broker = maps[f"{c.broker_set}-config"]
    assert "log.dirs=/var/lib/kafka/data/kafka-log\n" in broker["server.properties"]
    script = broker["start.sh"]
    assert "sed " not in script and "--add-scram" in script
    # the only lines that mention a password write it into files, with bash builtins
    for line in script.splitlines():
        if "PASSWORD}" in line and not line.lstrip().startswith("#"):
            assert line.lstrip().startswith(("config=", "printf", "--add-scram", '--add-config')), line


def test_profiles_document_is_generated_from_the_table():
    assert (ROOT / "docs" / "profiles.md").read_text() == profiles.profiles_table()


def test_the_inter_broker_protocol_stays_at_what_runs_until_every_broker_runs_the_new_version():
    spec = KafkaUseCase.parse({"metadata": {"name": "uc"}, "spec": {
        "metadataQuorum": {"mode": "zookeeper"}, "kafka": {"version": "3.9.2"}}})
    fresh = cluster_model("uc", "apps", spec)
    upgrading = cluster_model("uc", "apps", spec, status={"interBrokerProtocolVersion": "3.8"})

    assert "inter.broker.protocol.version=3.9\n" in config.broker_properties(fresh)
    assert "inter.broker.protocol.version=3.8\n" in config.broker_properties(upgrading)
    assert "inter.broker.protocol.version" not in config.broker_properties(use_case({}))  # KRaft: metadata.version
