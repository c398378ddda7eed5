"""A developer's whole flow with the devstack command: status, env exports that real clients
use as they are, and one-line errors (no traceback) for what the user must fix."""

import os
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
from confluent_kafka.admin import AdminClient

from devstack import kube

pytestmark = [pytest.mark.e2e, pytest.mark.kube, pytest.mark.kafka]

DEVSTACK = str(Path(sys.executable).with_name("devstack"))


def devstack(*args, env=None) -> subprocess.CompletedProcess:
    return subprocess.run([DEVSTACK, *args], capture_output=True, text=True, timeout=300,
                          env={**os.environ, **(env or {})})


def exports(text: str) -> dict[str, str]:
    pairs = (shlex.split(line.removeprefix("export "))[0].split("=", 1) for line in text.splitlines())
    return dict(pairs)


@pytest.mark.parametrize("mode", ["kraft", "zookeeper"])
def test_env_exports_work_with_kubectl_and_a_kafka_client(kube_cluster, request, mode):
    request.getfixturevalue(f"kafka_{mode}")
    result = devstack("env", "--mode", mode)
    assert result.returncode == 0, result.stderr
    env = exports(result.stdout)
    assert set(env) == {"KUBECONFIG", "KAFKA_BOOTSTRAP_SERVERS", "KAFKA_ADMIN_USER", "KAFKA_ADMIN_PASSWORD_FILE"}

    nodes = subprocess.run([kube.binary("kubectl"), "get", "nodes", "-o", "name"], env={**os.environ, "KUBECONFIG": env["KUBECONFIG"]},
                           capture_output=True, text=True, timeout=60)
    assert nodes.returncode == 0, nodes.stderr
    assert len(nodes.stdout.split()) == 8

    admin = AdminClient({"bootstrap.servers": env["KAFKA_BOOTSTRAP_SERVERS"], "security.protocol": "SASL_PLAINTEXT",
                         "sasl.mechanism": "SCRAM-SHA-512", "sasl.username": env["KAFKA_ADMIN_USER"],
                         "sasl.password": Path(env["KAFKA_ADMIN_PASSWORD_FILE"]).read_text().strip()})
    assert admin.list_topics(timeout=20).brokers


def test_status_lists_every_running_component(kube_cluster, kafka_kraft, kafka_zookeeper):
    result = devstack("status")

    assert result.returncode == 0
    for component in ("etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "kwok",
                      "broker-11", "zookeeper-1"):
        assert component in result.stdout
    assert "DEAD" not in result.stdout


def assert_one_line_error(result: subprocess.CompletedProcess, *phrases: str) -> None:
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    errors = [line for line in result.stderr.splitlines() if "error" in line.lower()]
    assert len(errors) == 1 and errors[0].startswith("devstack: error: "), result.stderr
    assert result.stderr.rstrip().endswith(errors[0])
    for phrase in phrases:
        assert phrase in errors[0]


def test_zookeeper_mode_on_kafka_4_is_a_clear_error():
    assert_one_line_error(devstack("up", "kafka", "--mode", "zookeeper", "--kafka-version", "4.3.1"),
                          "has no ZooKeeper mode")


def test_a_port_already_taken_is_a_clear_error(kafka_kraft, tmp_path):
    # Another run directory knows nothing of the running cluster, whose addresses are taken.
    result = devstack("up", "kafka", "--mode", "kraft", env={"DEVSTACK_RUN_DIR": str(tmp_path)})

    assert_one_line_error(result, "address already in use", "127.0.2.11:9092")


def test_missing_java_is_a_clear_error(tmp_path):
    result = devstack("up", "kafka", "--mode", "kraft",
                      env={"DEVSTACK_RUN_DIR": str(tmp_path), "PATH": str(Path(DEVSTACK).parent)})

    assert_one_line_error(result, "java not found", "install Java 17")


def test_missing_go_is_a_clear_error(tmp_path):
    result = devstack("build", "kube", env={"KUO_CACHE_DIR": str(tmp_path), "PATH": str(Path(DEVSTACK).parent)})

    assert_one_line_error(result, "go not found", "install Go")
