"""pytest fixtures on the devstack: real Kafka in both metadata modes and the real control plane.

Session-scoped and lazy: a cluster starts when the first test asks for it, is reused when a
matching one already runs (e.g. from `devstack up`), and is stopped at the end only when this
session started it. A component that cannot be had fails the test with the reason; nothing skips.
Sizes come from DEVSTACK_BROKERS and DEVSTACK_ZOOKEEPERS (default 1; `make test-slow` uses 3).
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from devstack import build, images, kafka, kube, nodes, paths, proc
from devstack.errors import DevstackError

_started: list[tuple[str, object]] = []  # (what, stop) for what this session started
_startup: dict[str, dict[str, float]] = {}


@dataclass(frozen=True)
class KafkaEndpoint:
    mode: str
    version: str
    bootstrap_servers: str
    admin_user: str
    admin_password: str
    stack: proc.Stack = field(compare=False, repr=False)  # to stop and restart nodes in fault tests

    def stop_nodes(self, nodes: list[str], grace: float = 10.0) -> None:
        """Stop brokers, controllers or ZooKeeper nodes (fault tests); `stack.restart` each after."""
        kafka.stop_nodes(self.stack, nodes, grace)

    def client_config(self, user: str | None = None, password: str | None = None) -> dict:
        return {"bootstrap.servers": self.bootstrap_servers, "security.protocol": "SASL_PLAINTEXT",
                "sasl.mechanism": "SCRAM-SHA-512", "sasl.username": user or self.admin_user,
                "sasl.password": password if password is not None else self.admin_password}


@dataclass(frozen=True)
class KubeEndpoint:
    kubeconfig: Path
    server: str
    audit_log: Path
    stack: proc.Stack

    def kubectl(self, *args: str, input: str | None = None, timeout: float = 60) -> str:
        return kube.kubectl(self.stack, *args, input=input, timeout=timeout)


def _size(name: str) -> int | None:
    value = os.environ.get(name)
    return int(value) if value else None


def _start_kafka(mode: str) -> KafkaEndpoint:
    brokers = _size("DEVSTACK_BROKERS") or 1
    zookeepers = _size("DEVSTACK_ZOOKEEPERS") if mode == "zookeeper" else None
    cluster = kafka.plan(mode, brokers=brokers, zookeepers=zookeepers)
    if not build.kafka_ready(cluster.version):
        pytest.fail(f"Kafka {cluster.version} jars are missing from {paths.kafka_libs(cluster.version)}: "
                    "run `make setup` (or `devstack build kafka`)", pytrace=False)
    run_root = paths.run_dir()
    already = proc.Stack.load(cluster.name, run_root)
    was_running = bool(already and already.running())
    try:
        stack = kafka.up(cluster, run_root)
    except DevstackError as error:
        pytest.fail(f"devstack could not start {cluster.name}: {error}", pytrace=False)
    if not was_running:
        _started.append((cluster.name, lambda: kafka.down(mode, run_root)))
    _startup[cluster.name] = dict(stack.startup_seconds)
    config = kafka.admin_config(stack)
    return KafkaEndpoint(mode, cluster.version, config["bootstrap.servers"], config["sasl.username"],
                         config["sasl.password"], stack)


@pytest.fixture(scope="session")
def kafka_kraft() -> KafkaEndpoint:
    return _start_kafka_if_wanted("kraft")


@pytest.fixture(scope="session")
def kafka_zookeeper() -> KafkaEndpoint:
    return _start_kafka_if_wanted("zookeeper")


def _start_kafka_if_wanted(mode: str) -> KafkaEndpoint:
    """A test of one mode is skipped when DEVSTACK_KAFKA_MODES leaves that mode out on purpose
    (make test-slow runs it in the part for its mode, not a second cluster beside the other)."""
    if mode not in _modes():
        pytest.skip(f"DEVSTACK_KAFKA_MODES={os.environ['DEVSTACK_KAFKA_MODES']} leaves out {mode}")
    return _start_kafka(mode)


def _modes() -> list[str]:
    """DEVSTACK_KAFKA_MODES narrows the modes (make test-slow runs one 3-broker cluster at a time)."""
    wanted = [m.strip() for m in os.environ.get("DEVSTACK_KAFKA_MODES", ",".join(kafka.MODES)).split(",") if m.strip()]
    unknown = set(wanted) - set(kafka.MODES)
    if unknown:
        raise pytest.UsageError(f"DEVSTACK_KAFKA_MODES: unknown mode(s) {', '.join(sorted(unknown))}")
    return wanted


@pytest.fixture(scope="session", params=_modes())
def kafka_cluster(request) -> KafkaEndpoint:
    """Runs the test once per metadata mode: 4.3.1 in KRaft mode, 3.9.2 with ZooKeeper."""
    return request.getfixturevalue(f"kafka_{request.param}")


@pytest.fixture(scope="session")
def kube_cluster() -> KubeEndpoint:
    if not build.kube_ready():
        pytest.fail("the Kubernetes components are not built: run `make setup` (or `devstack build kube`)",
                    pytrace=False)
    run_root = paths.run_dir()
    already = proc.Stack.load("kube", run_root)
    was_running = bool(already and already.running())
    try:
        stack = kube.up(run_root)
    except DevstackError as error:
        pytest.fail(f"devstack could not start the control plane: {error}", pytrace=False)
    if not was_running:
        _started.append(("kube", lambda: kube.down(run_root)))
    _startup["kube"] = dict(stack.startup_seconds)
    return KubeEndpoint(Path(stack.config["kubeconfig"]), stack.config["server"], Path(stack.config["audit_log"]),
                        stack)


@pytest.fixture(scope="session")
def real_nodes(kube_cluster) -> list[nodes.RealNode]:
    """Real kubelets beside the kwok nodes (one broker node and one quorum node per
    DEVSTACK_BROKERS, and a general node), with the project's images built and loaded."""
    run_root = paths.run_dir()
    brokers = _size("DEVSTACK_BROKERS") or 1
    shape = nodes.plan(brokers=brokers, metadata=brokers)
    try:
        build.build_all()  # the images: rebuilt when their inputs changed, otherwise cached
        stack, started = nodes.ensure(run_root, kube_cluster.stack, shape, lambda node: images.archives(node.pool))
    except DevstackError as error:
        pytest.fail(f"devstack could not start real nodes: {error}", pytrace=False)
    if not started:  # someone else's: left running
        return shape
    _started.append((nodes.NAME, lambda: nodes.down(run_root)))
    _startup[nodes.NAME] = dict(stack.startup_seconds)
    return shape


class _PeakMemory:
    """Samples, every second, the RSS of this pytest process, every process it started (the
    devstack, clusters booted by tests, the operator), and any devstack it reuses."""

    def __init__(self) -> None:
        self.peak_total = 0.0
        self.peak_by_component: dict[str, float] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()

    def _run(self) -> None:
        while not self._stop.wait(1.0):
            names = {os.getpid(): "pytest"} | {pid: f"{proc.comm(pid)} (started by a test)"
                                                for pid in proc.descendants(os.getpid())}
            for stack_name in ("kube", nodes.NAME, *(f"kafka-{m}" for m in kafka.MODES), "operator"):
                stack = proc.Stack.load(stack_name, paths.run_dir())
                names |= {pid: f"{stack_name}/{c}" for c, pid in (stack.running() if stack else {}).items()}
            sample: dict[str, float] = {}
            for pid, name in names.items():
                sample[name] = sample.get(name, 0.0) + proc.rss_mb(pid)
            for name, rss in sample.items():
                self.peak_by_component[name] = max(self.peak_by_component.get(name, 0.0), rss)
            self.peak_total = max(self.peak_total, sum(sample.values()))


_memory = _PeakMemory()


def pytest_sessionstart(session) -> None:
    _memory.start()


def pytest_sessionfinish(session, exitstatus) -> None:
    _memory.stop()
    for what, stop in reversed(_started):
        try:
            stop()
        except Exception as error:  # report, and still stop the rest
            print(f"\ndevstack: stopping {what} failed: {error}")


def pytest_terminal_summary(terminalreporter) -> None:
    if not _startup and set(_memory.peak_by_component) <= {"pytest"}:  # nothing but unit tests ran
        return
    write = terminalreporter.write_line
    terminalreporter.section("devstack")
    for name, timings in _startup.items():
        write(f"start-up {name}: " + ", ".join(f"{c} {s}s" for c, s in timings.items()))
    top = sorted(_memory.peak_by_component.items(), key=lambda item: -item[1])
    write(f"peak RSS of the suite (pytest, everything it started, the devstack; summed per sample): "
          f"{_memory.peak_total:.0f} MB; peaks: " + ", ".join(f"{k} {v:.0f}" for k, v in top[:12]))
