"""The devstack's pure parts: cluster shapes, rendered broker/ZooKeeper configs, node sets."""

import base64
from pathlib import Path

import pytest

from devstack import kafka, kube
from devstack.errors import DevstackError

pytestmark = pytest.mark.unit


def properties(text: str) -> dict[str, str]:
    pairs = (line.split("=", 1) for line in text.splitlines() if line and not line.startswith("#"))
    return {key: value for key, value in pairs}


def test_zookeeper_mode_on_kafka_4_is_refused_with_the_fix():
    with pytest.raises(DevstackError, match="--mode kraft or --kafka-version 3.9.2"):
        kafka.plan("zookeeper", "4.3.1")


@pytest.mark.parametrize("brokers", [0, 2, 5])
def test_broker_counts_other_than_1_or_3_are_refused(brokers):
    with pytest.raises(DevstackError, match="--brokers must be 1 or 3"):
        kafka.plan("kraft", brokers=brokers)


def test_single_kraft_broker_is_a_combined_node():
    cluster = kafka.plan("kraft")

    assert [n.roles for n in cluster.nodes] == [("broker", "controller")]
    assert cluster.voters == "11@127.0.2.11:9093"


def test_three_kraft_brokers_get_three_dedicated_controllers():
    cluster = kafka.plan("kraft", brokers=3)

    assert [n.host for n in cluster.quorum_nodes] == ["127.0.2.1", "127.0.2.2", "127.0.2.3"]
    assert all(n.roles == ("broker",) for n in cluster.broker_nodes)
    assert cluster.voters == "1@127.0.2.1:9093,2@127.0.2.2:9093,3@127.0.2.3:9093"
    assert cluster.bootstrap_servers == "127.0.2.11:9092,127.0.2.12:9092,127.0.2.13:9092"
    assert cluster.min_insync_replicas == 2


def test_both_modes_use_separate_address_ranges():
    kraft, zookeeper = kafka.plan("kraft", brokers=3), kafka.plan("zookeeper", brokers=3, zookeepers=3)

    assert not {n.host for n in kraft.nodes} & {n.host for n in zookeeper.nodes}


@pytest.mark.parametrize("brokers", [1, 3])
def test_kraft_configs_authenticate_the_controller_listener_and_trust_no_anonymous(brokers):
    cluster = kafka.plan("kraft", brokers=brokers)
    for node in cluster.nodes:
        config = properties(kafka.render_server_properties(cluster, node, Path("/data"), "adminpw", "ctrlpw"))

        assert "ANONYMOUS" not in config["super.users"]
        assert config["allow.everyone.if.no.acl.found"] == "false"
        assert config["authorizer.class.name"] == "org.apache.kafka.metadata.authorizer.StandardAuthorizer"
        protocols = {entry.split(":")[1] for entry in config["listener.security.protocol.map"].split(",")}
        assert protocols == {"SASL_PLAINTEXT"}
        assert config["sasl.mechanism.controller.protocol"] == "PLAIN"
        if "broker" in node.roles:
            assert config["sasl.enabled.mechanisms"] == "SCRAM-SHA-512"
            assert config["advertised.listeners"] == f"INTERNAL://{node.host}:9091,CLIENT://{node.host}:9092"
        else:
            assert "advertised.listeners" not in config
            assert 'user_controller="ctrlpw"' in config["listener.name.controller.plain.sasl.jaas.config"]


def test_zookeeper_mode_broker_config():
    cluster = kafka.plan("zookeeper", brokers=3, zookeepers=3)
    broker = cluster.broker_nodes[1]

    config = properties(kafka.render_server_properties(cluster, broker, Path("/data"), "adminpw"))

    assert config["broker.id"] == "12"
    assert config["zookeeper.connect"] == "127.0.1.1:2181,127.0.1.2:2181,127.0.1.3:2181"
    assert config["authorizer.class.name"] == "kafka.security.authorizer.AclAuthorizer"
    assert config["super.users"] == "User:admin"
    assert "process.roles" not in config


def test_zookeeper_ensemble_lists_every_peer_and_a_single_node_none():
    ensemble = kafka.plan("zookeeper", zookeepers=3)
    single = kafka.plan("zookeeper")

    three = properties(kafka.render_zoo_cfg(ensemble, ensemble.quorum_nodes[0], Path("/zk")))
    one = properties(kafka.render_zoo_cfg(single, single.quorum_nodes[0], Path("/zk")))

    assert [three[f"server.{i}"] for i in (1, 2, 3)] == [f"127.0.1.{i}:2888:3888" for i in (1, 2, 3)]
    assert three["4lw.commands.whitelist"] == "ruok,srvr,mntr"
    assert not any(key.startswith("server.") for key in one)


def test_cluster_id_is_a_kafka_uuid():
    ids = [kafka.new_cluster_id() for _ in range(2000)]  # about 31 of 2000 raw ids start with "-"

    assert all(len(i) == 22 and len(base64.urlsafe_b64decode(i + "==")) == 16 for i in ids)
    assert not any(i.startswith("-") for i in ids), "kafka-storage format would read the id as an option"


def test_default_nodes_taint_the_dedicated_pools_only():
    import yaml

    nodes = [doc for doc in yaml.safe_load_all(kube.render_nodes(kube.default_nodes())) if doc]
    by_pool = {}
    for node in nodes:
        by_pool.setdefault(node["metadata"]["labels"].get("kafka.usecase.dev/pool", "general"), []).append(node)

    assert {pool: len(members) for pool, members in by_pool.items()} == {"metadata": 3, "broker": 3, "general": 2}
    for pool in ("metadata", "broker"):
        for node in by_pool[pool]:
            assert node["spec"]["taints"] == [{"key": "kafka.usecase.dev/pool", "value": pool, "effect": "NoSchedule"}]
    assert all(node["spec"]["taints"] == [] for node in by_pool["general"])
    assert all(node["metadata"]["annotations"]["kwok.x-k8s.io/node"] == "fake" for node in nodes)


def test_real_nodes_one_broker_and_one_quorum_node_each_and_a_general_node():
    from devstack import nodes

    shape = nodes.plan(brokers=3, metadata=3)
    assert [n.pool for n in shape] == ["broker"] * 3 + ["metadata"] * 3 + [None]
    assert len({n.subnet for n in shape}) == len({n.bridge for n in shape}) == len(shape)
    assert all(len(str(n.socket)) + len(".ttrpc") < 104 for n in shape)  # unix socket path limit


def test_real_node_pods_have_no_route_off_the_machine_and_no_masquerade():
    from devstack import nodes

    node = nodes.plan()[0]
    plugin = nodes.cni_config(node, Path("/run/x"), "192.0.2.2")["plugins"][0]
    assert plugin["ipMasq"] is False and not plugin.get("isDefaultGateway")
    destinations = [r["dst"] for r in plugin["ipam"]["routes"]]
    assert "0.0.0.0/0" not in destinations and destinations == [nodes.POD_CIDR, nodes.SERVICE_CIDR, "192.0.2.2/32"]
    assert nodes.SERVICE_CIDR == kube.SERVICE_CIDR  # kube-proxy and the API server agree


def test_real_nodes_keep_kwok_workloads_off_and_pods_that_ask_land_on_their_pool():
    from devstack import nodes

    broker, general = nodes.plan()[0], nodes.plan()[-1]
    config = nodes.kubelet_config(broker, Path("/run/x"), "192.0.2.2", Path("/ca"))
    taints = {(t["key"], t["value"]) for t in config["registerWithTaints"]}
    assert taints == {(nodes.REAL_NODE_TAINT, "true"), (nodes.POOL_LABEL, "broker")}
    assert config["resolvConf"] == "" and config["clusterDNS"] == ["192.0.2.2"]  # cluster DNS only
    assert config["authentication"]["anonymous"]["enabled"] is False
    wanted = nodes.placement("broker")
    assert all(nodes.node_labels(broker).get(k) == v for k, v in wanted["nodeSelector"].items())
    assert not all(nodes.node_labels(general).get(k) == v for k, v in wanted["nodeSelector"].items())
    assert all(nodes.node_labels(general).get(k) == v for k, v in nodes.placement(None)["nodeSelector"].items())
