"""KafkaTopics and KafkaUsers at scale, measured the way ../shared/BENCHMARKS.md measured Strimzi.

    .venv/bin/python bench/kafka_state.py [--topics 1000] [--large-topics 10000] [--users 500] [--quota-users 500]

Against the devstack (real API server, 1-broker Kafka 4.x KRaft; reused if running, else started
and stopped): objects are created with 16 client threads; a run is done when every object is
Ready (seen through a watch, not repeated lists) AND verified on the broker (topics exist with
their partition count; users have a SCRAM credential, their 4 ACL bindings and their Secret).
Each scenario runs with batching on (100 items / 100 ms) and off (1 item per admin request),
side by side, a fresh operator process each; then users without and with quotas (verified on the
broker too), batching on, and the ratio of their rates. Prints one line: seconds, objects/s, admin
requests, API requests by the operator (counted in the API server's audit log, not by the
operator), peak operator RSS. Only the quota comparison:
--topics 0 --large-topics 0 --users 0 --quota-users 500.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.request
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from kubernetes import client, config, watch

from devstack import kafka, kube, paths, proc
from kafka_usecase_operator.kafka.confluent import ConfluentKafkaAdmin

ROOT = Path(__file__).parents[1]
GROUP, VERSION = "kafka.usecase.dev", "v1alpha1"
OPERATOR = str(Path(sys.executable).with_name("kafka-usecase-operator"))
THREADS = 16
BENCH_AGENT = "kuo-bench"
OPERATOR_AGENTS = ('"userAgent":"kafka-usecase-operator"', '"userAgent":"OpenAPI-Generator')


def topic(prefix: str, i: int) -> dict:
    return {"apiVersion": f"{GROUP}/{VERSION}", "kind": "KafkaTopic", "metadata": {"name": f"{prefix}-{i}"},
            "spec": {"useCase": {"name": "bench"}, "partitions": 1, "config": {"retention.ms": 86400000}}}


QUOTAS = {"producerByteRate": 1048576, "consumerByteRate": 2097152}
QUOTAS_IN_KAFKA = {"producer_byte_rate": 1048576.0, "consumer_byte_rate": 2097152.0}


def user(prefix: str, i: int, quotas: bool = False) -> dict:
    """3 ACL rules, 4 bindings, as in the Strimzi run; optionally two quotas."""
    return {"apiVersion": f"{GROUP}/{VERSION}", "kind": "KafkaUser", "metadata": {"name": f"{prefix}-{i}"},
            "spec": {"useCase": {"name": "bench"}, **({"quotas": QUOTAS} if quotas else {}), "acls": [
                {"resource": {"type": "topic", "name": f"{prefix}-{i}"}, "operations": ["Write"]},
                {"resource": {"type": "topic", "name": f"{prefix}-{i}"}, "operations": ["Read", "Describe"]},
                {"resource": {"type": "group", "name": f"{prefix}-{i}"}, "operations": ["Read"]}]}}


class Run:
    def __init__(self, stack_env: dict, kind: str, count: int, batching: bool, quotas: bool = False):
        self.env, self.kind, self.count, self.batching, self.quotas = stack_env, kind, count, batching, quotas
        self.plural = "kafkatopics" if kind == "topics" else "kafkausers"
        self.ns = f"bench-{uuid.uuid4().hex[:6]}"
        self.prefix = f"b{uuid.uuid4().hex[:5]}"
        self.api = client.CustomObjectsApi(_api_client())
        self.core = client.CoreV1Api(_api_client())

    def setup(self) -> None:
        self.core.create_namespace({"metadata": {"name": self.ns}})
        self.core.create_namespaced_secret(self.ns, {"metadata": {"name": "bench-admin"}, "stringData": {
            "username": "admin", "password": self.env["admin_password"]}})
        self.api.create_namespaced_custom_object(GROUP, VERSION, self.ns, "kafkausecases", {
            "apiVersion": f"{GROUP}/{VERSION}", "kind": "KafkaUseCase", "metadata": {"name": "bench"},
            "spec": {"external": {"bootstrapServers": self.env["bootstrap"], "securityProtocol": "SASL_PLAINTEXT",
                                  "adminSecretRef": {"name": "bench-admin"}}}})
        self.metrics_port = _free_port()
        env = {**os.environ, "KUBECONFIG": self.env["kubeconfig"], "KUO_METRICS_PORT": str(self.metrics_port),
               "KUO_RESYNC_SECONDS": "3600", "KUO_BATCH_MAX_ITEMS": "100" if self.batching else "1"}
        self.log = open(Path(self.env["run_dir"]) / f"operator-{self.ns}.log", "wb")
        self.operator = subprocess.Popen([OPERATOR, "run", "-n", self.ns, "--liveness-port", str(_free_port())],
                                         stdout=self.log, stderr=subprocess.STDOUT, env=env)
        _wait(lambda: self._metric("kuo_kafka_admin_requests") is not None, 60, "operator metrics endpoint")
        time.sleep(2)  # the use case's first connection check

    def measure(self) -> dict:
        audit = Path(self.env["audit_log"])
        audit_offset = audit.stat().st_size
        admin_before = self._metric("kuo_kafka_admin_requests")
        peak = [0.0]
        sampling = threading.Event()
        sampler = threading.Thread(target=self._sample_rss, args=(peak, sampling), daemon=True)
        sampler.start()
        ready = threading.Event()
        watcher = threading.Thread(target=self._watch_ready, args=(ready,), daemon=True)
        watcher.start()
        make = topic if self.kind == "topics" else (lambda prefix, i: user(prefix, i, self.quotas))
        cpu_before = self._cpu()
        started = time.monotonic()
        with ThreadPoolExecutor(THREADS) as pool:
            apis = threading.local()

            def create(i: int) -> None:
                if not hasattr(apis, "api"):
                    apis.api = client.CustomObjectsApi(_api_client())
                apis.api.create_namespaced_custom_object(GROUP, VERSION, self.ns, self.plural, make(self.prefix, i))

            list(pool.map(create, range(self.count)))
        created = time.monotonic() - started
        if not ready.wait(timeout=1800):
            raise SystemExit(f"{self.kind}: not all Ready after 30 min; see {self.log.name}")
        self._verify_on_broker()
        seconds = time.monotonic() - started
        cpu = {name: after - cpu_before.get(name, 0.0) for name, after in self._cpu().items()}
        rss_done = proc.rss_mb(self.operator.pid)
        sampling.set()
        sampler.join()
        time.sleep(1.5)  # the audit log is written in 1 s batches
        with open(audit, "rb") as log:
            log.seek(audit_offset)
            api_requests = sum(1 for line in log if any(a.encode() in line for a in OPERATOR_AGENTS))
        return {"seconds": seconds, "rate": self.count / seconds, "created_s": created,
                "admin": self._metric("kuo_kafka_admin_requests") - admin_before, "api": api_requests,
                "rss": peak[0], "rss_done": rss_done, "cpu": cpu}

    def _cpu(self) -> dict[str, float]:
        """CPU seconds used so far by the operator, this load generator and the devstack's processes:
        where a run's time goes on a 2-core machine."""
        pids = {"operator": self.operator.pid, "bench": os.getpid(), **self.env["pids"]}
        return {name: _cpu_seconds(pid) for name, pid in pids.items()}

    def _watch_ready(self, done: threading.Event) -> None:
        ready: set[str] = set()
        api = client.CustomObjectsApi(_api_client())
        while not done.is_set():
            stream = watch.Watch().stream(api.list_namespaced_custom_object, GROUP, VERSION, self.ns, self.plural,
                                          timeout_seconds=300)
            for event in stream:
                obj = event["object"]
                conditions = (obj.get("status") or {}).get("conditions", [])
                if any(c["type"] == "Ready" and c["status"] == "True" for c in conditions):
                    ready.add(obj["metadata"]["name"])
                if len(ready) >= self.count:
                    done.set()
                    return

    def _verify_on_broker(self) -> None:
        admin = ConfluentKafkaAdmin({"bootstrap.servers": self.env["bootstrap"], "security.protocol": "SASL_PLAINTEXT",
                                     "sasl.mechanism": "SCRAM-SHA-512", "sasl.username": "admin",
                                     "sasl.password": self.env["admin_password"]}, timeout=60)
        names = [f"{self.prefix}-{i}" for i in range(self.count)]
        if self.kind == "topics":
            for start in range(0, len(names), 1000):
                found = admin.describe_topics(names[start:start + 1000])
                missing = [n for n, t in found.items() if t is None or t.partitions != 1]
                assert not missing, f"Ready but not on the broker: {missing[:5]}"
            return
        usernames = [f"{self.ns}.{n}" for n in names]
        assert all(v is True for v in admin.scram_users(usernames).values()), "a Ready user has no SCRAM credential"
        assert all(len(admin.acls_of(f"User:{u}")) == 4 for u in usernames), "a Ready user lacks its 4 bindings"
        if self.quotas:
            assert all(q == QUOTAS_IN_KAFKA for q in admin.user_quotas(usernames).values()), \
                "a Ready user lacks its quotas"
        secrets = self.core.list_namespaced_secret(self.ns, label_selector="kafka.usecase.dev/kafka-user").items
        assert len(secrets) == self.count, f"{len(secrets)} Secrets for {self.count} users"

    def _sample_rss(self, peak: list[float], stop: threading.Event) -> None:
        while not stop.wait(0.2):
            peak[0] = max(peak[0], proc.rss_mb(self.operator.pid) or 0.0)

    def _metric(self, name: str) -> float | None:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.metrics_port}/metrics", timeout=2) as response:
                text = response.read().decode()
        except OSError:
            return None
        return next((float(line.split()[1]) for line in text.splitlines() if line.startswith(name + " ")), None)

    def teardown(self) -> None:
        """Objects deleted while the operator runs (topics: Retain; users: credentials and ACLs
        removed by the operator), then the bench's topics deleted on the broker directly."""
        try:
            subprocess.run([self.env["kubectl"], "--kubeconfig", self.env["kubeconfig"], "delete", self.plural,
                            "--all", "-n", self.ns, "--wait=false"], check=False, capture_output=True)
            _wait(lambda: not self.api.list_namespaced_custom_object(GROUP, VERSION, self.ns, self.plural,
                                                                     limit=1)["items"], 900, "objects deleted")
            self.core.delete_namespace(self.ns)  # the KafkaUseCase's finalizer needs the operator
            _wait(lambda: not _exists(self.core, self.ns), 300, f"namespace {self.ns} deleted")
        finally:
            self.operator.send_signal(signal.SIGTERM)
            self.operator.wait(timeout=60)
            self.log.close()
        if self.kind == "topics":
            admin = ConfluentKafkaAdmin({"bootstrap.servers": self.env["bootstrap"],
                                         "security.protocol": "SASL_PLAINTEXT", "sasl.mechanism": "SCRAM-SHA-512",
                                         "sasl.username": "admin", "sasl.password": self.env["admin_password"]}, 60)
            names = [f"{self.prefix}-{i}" for i in range(self.count)]
            for start in range(0, len(names), 1000):
                admin.delete_topics(names[start:start + 1000])


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime + stime


def _exists(core: client.CoreV1Api, namespace: str) -> bool:
    try:
        core.read_namespace(namespace)
        return True
    except client.ApiException as error:
        if error.status == 404:
            return False
        raise


def _api_client() -> client.ApiClient:
    api = client.ApiClient()
    api.user_agent = BENCH_AGENT  # the audit log tells the bench's requests from the operator's
    return api


def _free_port() -> int:
    import socket
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _wait(check, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise SystemExit(f"timed out waiting for {what}")
        time.sleep(0.2)


def _devstack() -> tuple[dict, list]:
    """The running devstack (kube + 1-broker KRaft), or one started here (and stopped at the end)."""
    run_root = paths.run_dir()
    plan = kafka.plan("kraft", brokers=1)
    started = [name for name in ("kube", plan.name)
               if not ((stack := proc.Stack.load(name, run_root)) and stack.running())]
    kube_stack, kafka_stack = kube.up(run_root), kafka.up(plan, run_root)  # both reuse what runs
    env = {"kubeconfig": kube_stack.config["kubeconfig"], "audit_log": kube_stack.config["audit_log"],
           "kubectl": str(kube.binary("kubectl")), "run_dir": str(kube_stack.root / "logs"),
           "bootstrap": kafka_stack.config["bootstrap_servers"],
           "admin_password": Path(kafka_stack.config["admin_password_file"]).read_text().strip(),
           "pids": {name: kube_stack.pids[name] for name in ("kube-apiserver", "etcd")} | {"kafka": next(iter(
               kafka_stack.pids.values()))}}
    return env, started


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--topics", type=int, default=1000)
    parser.add_argument("--large-topics", type=int, default=10000, help="0 to skip")
    parser.add_argument("--users", type=int, default=500)
    parser.add_argument("--quota-users", type=int, default=500,
                        help="users without, then with quotas, batching on, side by side; 0 to skip")
    args = parser.parse_args()
    env, started = _devstack()
    try:
        config.load_kube_config(env["kubeconfig"])
        subprocess.run([env["kubectl"], "--kubeconfig", env["kubeconfig"], "apply", "--server-side",
                        "--force-conflicts", "-f", str(ROOT / "crds")], check=True, capture_output=True)
        scenarios = [(kind, n, batching, False) for kind, n in (("topics", args.topics), ("users", args.users)) if n
                     for batching in (True, False)]
        if args.large_topics:
            scenarios += [("topics", args.large_topics, batching, False) for batching in (True, False)]
        if args.quota_users:
            scenarios += [("users", args.quota_users, True, quotas) for quotas in (False, True)]
        figures, rates = [], {}
        for kind, count, batching, quotas in scenarios:
            run = Run(env, kind, count, batching, quotas)
            run.setup()
            try:
                result = run.measure()
            finally:
                run.teardown()
            rates[(kind, count, batching, quotas)] = result["rate"]
            figures.append(f"{count} {kind}{' with quotas' if quotas else ''} batching {'on' if batching else 'off'}: "
                           f"{result['seconds']:.1f}s "
                           f"{result['rate']:.1f}/s (created in {result['created_s']:.1f}s) admin {result['admin']:.0f} "
                           f"api {result['api']} rss peak {result['rss']:.0f}MB, when done {result['rss_done']:.0f}MB; cpu-s "
                           + " ".join(f"{k} {v:.1f}" for k, v in result["cpu"].items()))
            print(figures[-1], file=sys.stderr, flush=True)
        if args.quota_users:
            with_quotas, without = (rates[("users", args.quota_users, True, q)] for q in (True, False))
            figures.append(f"users with quotas / without: {with_quotas / without:.2f}x")
        print("kafka-state bench (1-broker KRaft devstack, 16 client threads): " + " | ".join(figures))
    finally:
        if len(started) > int("kube" in started):
            kafka.down("kraft", paths.run_dir())
        if "kube" in started:
            kube.down(paths.run_dir())


if __name__ == "__main__":
    main()
