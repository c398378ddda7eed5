"""Kafka clusters from Maven Central jars, run as local processes on 127.0.x.y loopback addresses.

ZooKeeper mode (3.9.x): a ZooKeeper ensemble on 127.0.1.1-3 and brokers on 127.0.1.11-13.
KRaft mode (4.x): one broker runs combined broker+controller on 127.0.2.11; three brokers get
three dedicated controllers on 127.0.2.1-3 and brokers on 127.0.2.11-13. Both modes can run at
once. Every client listener is SASL_PLAINTEXT with SCRAM-SHA-512, the ACL authorizer is on, and
nothing is allowed without an ACL; `admin` is the only client super user.
"""

from __future__ import annotations

import secrets
import shutil
import socket
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import jinja2

from devstack import build, paths, versions
from devstack.errors import DevstackError
from devstack.proc import Stack, eventually, require_free_ports, require_tool, run
from kafka_usecase_operator.render.config import log4j_properties
from kafka_usecase_operator.render.model import new_cluster_id

MODES = ("kraft", "zookeeper")
NETWORK = {"zookeeper": "127.0.1", "kraft": "127.0.2"}
INTERNAL_PORT, CLIENT_PORT, CONTROLLER_PORT, ZOOKEEPER_PORT = 9091, 9092, 9093, 2181
BROKER_HEAP, QUORUM_HEAP = "512m", "256m"
ADMIN_USER = "admin"

_templates = jinja2.Environment(
    loader=jinja2.FileSystemLoader(Path(__file__).parent / "templates"),
    undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True, keep_trailing_newline=True,
)


@dataclass(frozen=True)
class Node:
    name: str  # also the component name in the stack: broker-11, controller-1, zookeeper-2
    id: int
    host: str
    roles: tuple[str, ...]  # broker, controller, zookeeper

    @property
    def listeners(self) -> str:
        listeners = []
        if "broker" in self.roles:
            listeners += [f"INTERNAL://{self.host}:{INTERNAL_PORT}", f"CLIENT://{self.host}:{CLIENT_PORT}"]
        if "controller" in self.roles:
            listeners.append(f"CONTROLLER://{self.host}:{CONTROLLER_PORT}")
        return ",".join(listeners)

    @property
    def advertised_listeners(self) -> str:
        return f"INTERNAL://{self.host}:{INTERNAL_PORT},CLIENT://{self.host}:{CLIENT_PORT}"

    @property
    def ports(self) -> list[int]:
        if "zookeeper" in self.roles:
            return [ZOOKEEPER_PORT, 2888, 3888]
        return [int(listener.rsplit(":", 1)[1]) for listener in self.listeners.split(",")]


@dataclass(frozen=True)
class ClusterPlan:
    mode: str
    version: str
    brokers: int
    quorum: int  # ZooKeeper nodes, or dedicated KRaft controllers (0: combined single node)

    @property
    def name(self) -> str:
        return f"kafka-{self.mode}"

    @property
    def network(self) -> str:
        return NETWORK[self.mode]

    @property
    def broker_nodes(self) -> list[Node]:
        combined = self.mode == "kraft" and self.quorum == 0
        roles = ("broker", "controller") if combined else ("broker",)
        return [Node(f"broker-{11 + i}", 11 + i, f"{self.network}.{11 + i}", roles) for i in range(self.brokers)]

    @property
    def quorum_nodes(self) -> list[Node]:
        role = "zookeeper" if self.mode == "zookeeper" else "controller"
        return [Node(f"{role}-{1 + i}", 1 + i, f"{self.network}.{1 + i}", (role,)) for i in range(self.quorum)]

    @property
    def nodes(self) -> list[Node]:
        return self.quorum_nodes + self.broker_nodes

    @property
    def controllers(self) -> list[Node]:
        return [n for n in self.nodes if "controller" in n.roles]

    @property
    def voters(self) -> str:
        return ",".join(f"{n.id}@{n.host}:{CONTROLLER_PORT}" for n in self.controllers)

    @property
    def zookeeper_connect(self) -> str:
        return ",".join(f"{n.host}:{ZOOKEEPER_PORT}" for n in self.quorum_nodes)

    @property
    def bootstrap_servers(self) -> str:
        return ",".join(f"{n.host}:{CLIENT_PORT}" for n in self.broker_nodes)

    @property
    def replication_factor(self) -> int:
        return min(3, self.brokers)

    @property
    def min_insync_replicas(self) -> int:
        return 2 if self.brokers >= 3 else 1


def plan(mode: str, version: str | None = None, brokers: int = 1, zookeepers: int | None = None) -> ClusterPlan:
    """Validate the requested shape; `zookeepers` is the ZooKeeper ensemble size in ZooKeeper mode."""
    if mode not in MODES:
        raise DevstackError(f"unknown mode {mode!r}: use kraft or zookeeper")
    version = version or versions.default_kafka_version(mode)
    if version not in versions.KAFKA_VERSIONS:
        raise DevstackError(f"Kafka {version} is not pinned here: use one of {', '.join(versions.KAFKA_VERSIONS)}")
    if mode == "zookeeper" and not versions.has_zookeeper_mode(version):
        raise DevstackError(f"Kafka {version} has no ZooKeeper mode: use --mode kraft or --kafka-version "
                            f"{versions.KAFKA_ZOOKEEPER}")
    if brokers not in (1, 3):
        raise DevstackError(f"--brokers must be 1 or 3, not {brokers}")
    if mode == "zookeeper":
        quorum = zookeepers or 1
        if quorum not in (1, 3):
            raise DevstackError(f"--zookeepers must be 1 or 3, not {quorum}")
    else:
        if zookeepers:
            raise DevstackError("--zookeepers applies to --mode zookeeper only")
        quorum = 0 if brokers == 1 else 3
    return ClusterPlan(mode, version, brokers, quorum)


def render_server_properties(cluster: ClusterPlan, node: Node, data_dir: Path, admin_password: str,
                             controller_password: str = "") -> str:
    context = {
        "mode": cluster.mode, "version": cluster.version, "voters": cluster.voters,
        "zookeeper_connect": cluster.zookeeper_connect, "replication_factor": cluster.replication_factor,
        "min_insync_replicas": cluster.min_insync_replicas, "admin_password": admin_password,
        "controller_password": controller_password,
    }
    node_context = {"name": node.name, "id": node.id, "roles": node.roles, "listeners": node.listeners,
                    "advertised_listeners": node.advertised_listeners, "data_dir": str(data_dir)}
    return _templates.get_template("server.properties.j2").render(cluster=context, node=node_context)


def render_zoo_cfg(cluster: ClusterPlan, node: Node, data_dir: Path) -> str:
    peers = cluster.quorum_nodes if cluster.quorum > 1 else []
    return _templates.get_template("zoo.cfg.j2").render(
        node={"name": node.name, "host": node.host, "data_dir": str(data_dir)},
        peers=[{"id": p.id, "host": p.host} for p in peers])


def admin_config(stack: Stack) -> dict:
    return {
        "bootstrap.servers": stack.config["bootstrap_servers"],
        "security.protocol": "SASL_PLAINTEXT",
        "sasl.mechanism": "SCRAM-SHA-512",
        "sasl.username": ADMIN_USER,
        "sasl.password": Path(stack.config["admin_password_file"]).read_text().strip(),
    }


def up(cluster: ClusterPlan, run_root: Path) -> Stack:
    """Start the cluster, or return it when it already runs with the same shape."""
    existing = Stack.load(cluster.name, run_root)
    if existing and existing.running():
        if existing.config.get("shape") == _shape(cluster) and set(existing.running()) == {n.name for n in cluster.nodes}:
            return existing
        raise DevstackError(f"{cluster.name} already runs as {existing.config.get('shape')}: "
                            f"stop it first with `devstack down kafka --mode {cluster.mode}`")
    stack = Stack(cluster.name, run_root / cluster.name)
    launcher = JvmLauncher(stack, cluster.version)  # java and the jars, checked before anything is written
    require_free_ports([(n.host, p) for n in cluster.nodes for p in n.ports], cluster.name)
    if stack.root.exists():
        shutil.rmtree(stack.root)
    stack.root.mkdir(parents=True)
    admin_password = secrets.token_urlsafe(24)
    password_file = stack.root / "admin-password"
    _write_private(password_file, admin_password + "\n")
    stack.config = {"shape": _shape(cluster), "mode": cluster.mode, "version": cluster.version,
                    "bootstrap_servers": cluster.bootstrap_servers, "admin_password_file": str(password_file)}
    stack.save()
    try:
        if cluster.mode == "zookeeper":
            _up_zookeeper_mode(launcher, cluster, admin_password)
        else:
            _up_kraft_mode(launcher, cluster, admin_password)
        _wait_for_brokers(stack, cluster.brokers)
        stack.startup_seconds["cluster"] = round(launcher.elapsed(), 1)
        stack.save()
    except BaseException:
        stack.stop(grace=3)
        raise
    return stack


def stop_nodes(stack: Stack, nodes: list[str], grace: float = 10.0, snapshot_timeout: float = 60) -> None:
    """Stop Kafka nodes for a fault test; `restart` brings each back. In KRaft mode each first writes
    a metadata snapshot that covers everything so far. A node that restarts without one replays the
    metadata log from an empty image, and Kafka's ScramDelta.apply then drops every SCRAM-SHA-512
    credential once any such user was deleted: the node turns every client and broker away for good
    (seen: a broker stopped 2 s after a test deleted a user, before its first snapshot). Snapshots
    come every 10 s (server.properties.j2); the controllers' periodic no-op records make sure there
    is always something new to snapshot."""
    since = time.time()
    for node in nodes:
        metadata = stack.root / node / "data" / "__cluster_metadata-0"
        if metadata.is_dir():  # KRaft
            eventually(lambda: any(c.stat().st_mtime > since for c in metadata.glob("*.checkpoint")),
                       snapshot_timeout, f"{node}'s metadata snapshot before it stops")
    stack.stop(nodes, grace=grace)


def down(mode: str, run_root: Path) -> bool:
    stack = Stack.load(f"kafka-{mode}", run_root)
    if not stack or not stack.running():
        return False
    # Brokers first: a broker whose quorum is gone waits out its controlled shutdown.
    stack.stop([c for c in stack.running() if c.startswith("broker")])
    stack.stop()
    return True


def _shape(cluster: ClusterPlan) -> str:
    if cluster.mode == "zookeeper":
        layout = f"{cluster.brokers} broker(s), {cluster.quorum}-node ZooKeeper ensemble"
    elif cluster.quorum == 0:
        layout = "1 combined broker+controller node"
    else:
        layout = f"{cluster.brokers} broker(s), {cluster.quorum} dedicated controllers"
    return f"Kafka {cluster.version} {cluster.mode}: {layout}"


class JvmLauncher:
    """Starts Kafka and ZooKeeper JVMs from a version's cached jars into a stack, with the right
    classpath, heap and logging. Also used by tests that boot configurations rendered elsewhere."""

    def __init__(self, stack: Stack, version: str):
        self.java = require_tool("java", "install Java 17 (apt-get install openjdk-17-jdk-headless)")
        if not build.kafka_ready(version):
            raise DevstackError(f"Kafka {version} jars are not in {paths.kafka_libs(version)}: "
                                "run `devstack build` (or `make setup`)")
        self.stack = stack
        self.libs = paths.kafka_libs(version)
        self.started = time.monotonic()
        self.launched: dict[str, float] = {}
        self.log4j2 = not versions.has_zookeeper_mode(version)

    @property
    def logging_flag(self) -> str:
        """Written on first use, into the stack's directory (which exists by then)."""
        logging_file = self.stack.root / ("log4j2.properties" if self.log4j2 else "log4j.properties")
        if not logging_file.exists():
            # log4j 1 (Kafka 3.9, ZooKeeper) logs exactly as the operator's pods do.
            logging_file.write_text(_templates.get_template("log4j2.properties.j2").render() if self.log4j2
                                    else log4j_properties())
        return (f"-Dlog4j2.configurationFile={logging_file}" if self.log4j2
                else f"-Dlog4j.configuration=file:{logging_file}")

    def elapsed(self) -> float:
        return time.monotonic() - self.started

    def argv(self, main_class: str, *args: str, heap: str = "256m") -> list[str]:
        return [self.java, f"-Xmx{heap}", "-Xms64m", "-XX:+UseG1GC", "-XX:+ExitOnOutOfMemoryError",
                "-Djava.awt.headless=true", self.logging_flag, "-cp", f"{self.libs}/*", main_class, *args]

    def node_dir(self, name: str) -> Path:
        path = self.stack.root / name
        path.mkdir(parents=True, exist_ok=True)
        return path

    def start(self, name: str, main_class: str, config: Path, heap: str) -> None:
        self.stack.start(name, self.argv(main_class, str(config), heap=heap))
        self.launched[name] = time.monotonic()

    def wait_until(self, name: str, check, what: str, timeout: float) -> None:
        """Wait for one node; its start-up time counts from its own launch."""
        eventually(check, timeout, f"{name} {what}", log=self.stack.log(name),
                   alive=lambda: self.stack.alive(name), how_it_ended=lambda: self.stack.exit_status(name))
        self.stack.startup_seconds[name] = round(time.monotonic() - self.launched[name], 1)

    def wait_listening(self, name: str, host: str, port: int, timeout: float) -> None:
        self.wait_until(name, lambda: accepts(host, port), f"listening on {host}:{port}", timeout)

    def wait_zookeeper(self, name: str, host: str, port: int = ZOOKEEPER_PORT, timeout: float = 90) -> None:
        self.wait_until(name, lambda: zookeeper_serving(host, port), f"serving a quorum on {host}:{port}", timeout)


def _up_zookeeper_mode(launcher: JvmLauncher, cluster: ClusterPlan, admin_password: str) -> None:
    stack = launcher.stack
    for node in cluster.quorum_nodes:
        data_dir = launcher.node_dir(node.name) / "data"
        data_dir.mkdir()
        (data_dir / "myid").write_text(f"{node.id}\n")
        config = launcher.node_dir(node.name) / "zoo.cfg"
        config.write_text(render_zoo_cfg(cluster, node, data_dir))
        launcher.start(node.name, "org.apache.zookeeper.server.quorum.QuorumPeerMain", config, QUORUM_HEAP)
    for node in cluster.quorum_nodes:
        launcher.wait_zookeeper(node.name, node.host)
    # The admin's SCRAM credential must exist before brokers authenticate to each other.
    run(launcher.argv("kafka.admin.ConfigCommand", "--zookeeper", cluster.zookeeper_connect, "--alter",
                      "--add-config", f"SCRAM-SHA-512=[password={admin_password}]",
                      "--entity-type", "users", "--entity-name", ADMIN_USER),
        "creating the admin SCRAM credential in ZooKeeper", log=stack.log("bootstrap"), timeout=120)
    for node in cluster.broker_nodes:
        config = launcher.node_dir(node.name) / "server.properties"
        _write_private(config, render_server_properties(cluster, node, launcher.node_dir(node.name) / "data", admin_password))
        launcher.start(node.name, "kafka.Kafka", config, BROKER_HEAP)
    for node in cluster.broker_nodes:
        launcher.wait_listening(node.name, node.host, CLIENT_PORT, 120)


def _up_kraft_mode(launcher: JvmLauncher, cluster: ClusterPlan, admin_password: str) -> None:
    stack = launcher.stack
    cluster_id = new_cluster_id()
    controller_password = secrets.token_urlsafe(24)
    stack.config["cluster_id"] = cluster_id
    configs = {}
    for node in cluster.nodes:
        config = launcher.node_dir(node.name) / "server.properties"
        _write_private(config, render_server_properties(cluster, node, launcher.node_dir(node.name) / "data",
                                                        admin_password, controller_password))
        configs[node.name] = config

    def format_storage(node: Node) -> None:
        run(launcher.argv("kafka.tools.StorageTool", "format", "-t", cluster_id, "-c", str(configs[node.name]),
                          "--add-scram", f"SCRAM-SHA-512=[name={ADMIN_USER},password={admin_password}]"),
            f"formatting {node.name}'s storage", log=stack.log(f"format-{node.name}"), timeout=120)

    with ThreadPoolExecutor(max_workers=3) as pool:
        list(pool.map(format_storage, cluster.nodes))
    for node in cluster.nodes:
        heap = BROKER_HEAP if "broker" in node.roles else QUORUM_HEAP
        launcher.start(node.name, "kafka.Kafka", configs[node.name], heap)
    for node in cluster.nodes:
        port = CLIENT_PORT if "broker" in node.roles else CONTROLLER_PORT
        launcher.wait_listening(node.name, node.host, port, 180)


def _wait_for_brokers(stack: Stack, brokers: int) -> None:
    from confluent_kafka.admin import AdminClient

    admin = AdminClient({**admin_config(stack), "log_level": 3})

    def all_registered() -> bool:
        return len(admin.describe_cluster(request_timeout=5).result(timeout=10).nodes) == brokers

    eventually(all_registered, 120, f"{stack.name}: {brokers} broker(s) answering the admin user",
               log=stack.log("broker-11"))


def accepts(host: str, port: int) -> bool:
    with socket.create_connection((host, port), timeout=1):
        return True


def zookeeper_serving(host: str, port: int = ZOOKEEPER_PORT) -> bool:
    """`srvr` reports a Mode only once the node has joined a quorum (or runs standalone)."""
    with socket.create_connection((host, port), timeout=2) as sock:
        sock.sendall(b"srvr")
        reply = sock.makefile("rb").read().decode(errors="replace")
    return any(f"Mode: {m}" in reply for m in ("leader", "follower", "standalone"))


def _write_private(path: Path, text: str) -> None:
    path.touch(mode=0o600)
    path.chmod(0o600)
    path.write_text(text)


