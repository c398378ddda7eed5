"""Rolling a 3-broker use case on real pods: the operator's Kafka-aware roller vs a plain
StatefulSet RollingUpdate of the same brokers, one line out.

    make bench-roll        (or: .venv/bin/python bench/roll.py)

Needs the control plane (`devstack up kube`); starts 7 real nodes (3 broker, 3 metadata, 1
general) if they are not up, installs the operator with Helm, and creates one KRaft use case (3
brokers, 3 controllers, a 12-partition topic with replication 3 and min ISR 2). acks=all traffic
flows through both rolls, and a sampler pod reads every partition's ISR twice a second. Then:
- StatefulSet: the use case paused, the brokers' StatefulSet switched to RollingUpdate and its
  template touched: Kubernetes restarts one pod after the other as each turns Ready;
- roller: every broker pod annotated kafka.usecase.dev/manual-rolling-update.
Printed per run: seconds from the change to every broker replaced and serving, and the longest
time any partition had fewer in-sync replicas than min ISR (the roller's goal: zero); then the
records the producers had acknowledged and how many of them the consumer could not read.
"""

from __future__ import annotations

import json
import sys
import time
import uuid
from pathlib import Path

from devstack import images, kube, nodes, paths, realpods
from devstack.errors import DevstackError
from devstack.proc import Stack, run

REPO = Path(__file__).parents[1]
BROKERS = 3
PARTITIONS = 12
SAMPLER = r"""
import json, sys, time
from confluent_kafka.admin import AdminClient
secret = lambda key: open(f"/etc/kafka/{key}").read()
admin = AdminClient({"bootstrap.servers": sys.argv[1], "security.protocol": "SASL_PLAINTEXT",
                     "sasl.mechanism": "SCRAM-SHA-512", "sasl.username": secret("username"),
                     "sasl.password": secret("password")})
topic, min_isr, seconds = sys.argv[2], int(sys.argv[3]), float(sys.argv[4])
under_since, longest, ever, samples, failed = {}, 0.0, set(), 0, 0
end, reported = time.monotonic() + seconds, 0.0
while time.monotonic() < end:
    if time.monotonic() - reported > 2:  # cumulative figures, read from the log when the roll is over
        reported = time.monotonic()
        print(json.dumps({"longest_under_min_isr": round(longest, 1), "partitions_ever_under": len(ever),
                          "samples": samples, "failed_samples": failed}), flush=True)
    now = time.monotonic()
    try:
        partitions = admin.list_topics(topic, timeout=2).topics[topic].partitions
        samples += 1
    except Exception:
        failed += 1
        time.sleep(0.5)
        continue
    for p, meta in partitions.items():
        if len(meta.isrs) < min_isr:
            under_since.setdefault(p, now)
            ever.add(p)
            longest = max(longest, now - under_since[p])
        else:
            under_since.pop(p, None)
    time.sleep(max(0.0, 0.5 - (time.monotonic() - now)))
"""


class Bench:
    def __init__(self, kube_stack: Stack):
        self.kube_stack = kube_stack
        suffix = uuid.uuid4().hex[:5]
        self.operator_ns, self.ns = f"bench-op-{suffix}", f"bench-roll-{suffix}"

    def kubectl(self, *args: str, input: str | None = None, timeout: float = 120) -> str:
        return kube.kubectl(self.kube_stack, *args, input=input, timeout=timeout)

    def apply(self, *docs: dict) -> None:
        self.kubectl("apply", "-f", "-", input=json.dumps({"apiVersion": "v1", "kind": "List", "items": list(docs)}))

    def get(self, *what: str) -> dict:
        return json.loads(self.kubectl("get", *what, "-n", self.ns, "-o", "json"))

    def wait(self, check, timeout: float, what: str, interval: float = 1.0):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            result = check()
            if result:
                return result
            time.sleep(interval)
        raise DevstackError(f"not within {timeout:.0f}s: {what}")

    def ready(self, kind: str, name: str) -> bool:
        conditions = (self.get(kind, name).get("status") or {}).get("conditions", [])
        return any(c["type"] == "Ready" and c["status"] == "True" for c in conditions)

    def broker_uids(self) -> dict[str, str]:
        pods = self.get("pods", "-l", "app.kubernetes.io/component=broker")["items"]
        return {p["metadata"]["name"]: p["metadata"]["uid"] for p in pods if not p["metadata"].get("deletionTimestamp")}

    def pod_result(self, name: str, timeout: float) -> dict:
        def finished():
            phase = (self.get("pod", name).get("status") or {}).get("phase")
            return phase if phase in ("Succeeded", "Failed") else None

        self.wait(finished, timeout, f"pod {name} finished", 2)
        logs = self.kubectl("logs", name, "-n", self.ns)
        return json.loads(next(line for line in reversed(logs.splitlines()) if line.startswith("{")))

    def set_up(self) -> None:
        values = paths.run_dir() / "bench-roll-values.json"
        values.write_text(json.dumps(realpods.chart_values(operator={"clusterCheckSeconds": 5})))
        self.kubectl("create", "namespace", self.ns)
        helm = [kube.binary("helm"), "--kubeconfig", self.kube_stack.config["kubeconfig"]]
        run([*helm, "install", "kuo-bench", str(REPO / "charts" / "kafka-usecase-operator"), "-n",
                  self.operator_ns, "--create-namespace", "-f", str(values), "--wait", "--timeout", "180s"],
                 "helm install", timeout=200)
        use_case = realpods.use_case("kraft", self.ns, BROKERS, name="orders")
        topic = {"apiVersion": "kafka.usecase.dev/v1alpha1", "kind": "KafkaTopic",
                 "metadata": {"name": "orders", "namespace": self.ns},
                 "spec": {"useCase": {"name": "orders"}, "partitions": PARTITIONS, "replicas": 3,
                          "config": {"min.insync.replicas": "2"}}}
        user = {"apiVersion": "kafka.usecase.dev/v1alpha1", "kind": "KafkaUser",
                "metadata": {"name": "shop", "namespace": self.ns},
                "spec": {"useCase": {"name": "orders"}, "acls": [
                    {"resource": {"type": "topic", "name": "orders"}, "operations": ["Write", "Read", "Describe"]},
                    {"resource": {"type": "group", "name": "e2e-", "patternType": "prefixed"}, "operations": ["Read"]}]}}
        self.apply(use_case, topic, user)
        self.wait(lambda: all(self.ready(k, n) for k, n in (("kafkausecase", "orders"), ("kafkatopic", "orders"),
                                                            ("kafkauser", "shop"))), 900, "the use case Ready", 5)
        self.wait(lambda: self.rolling_idle(), 120, "the roller idle")

    def rolling_idle(self) -> bool:
        conditions = (self.get("kafkausecase", "orders").get("status") or {}).get("conditions", [])
        return any(c["type"] == "Rolling" and c["status"] == "False" for c in conditions)

    def run(self, label: str, first: int, change, done) -> dict:
        """Traffic (records numbered from `first`) and the ISR sampler around one roll: `change()`
        starts it, `done()` says it ended."""
        sampler, producer = f"isr-{label}", f"produce-{label}"
        bootstrap = self.get("kafkausecase", "orders")["status"]["bootstrapServers"]
        self.apply(realpods.python_pod(self.ns, sampler, SAMPLER, [bootstrap, "orders", "2", "900"],
                                       secret="orders-kafka-admin"),
                   realpods.client_pod(self.ns, producer, "shop", ["produce", "orders", "3000", "0.1", str(first), "120"]))
        self.wait(lambda: (self.get("pod", sampler).get("status") or {}).get("phase") == "Running", 120, "sampler up")
        time.sleep(10)  # traffic flowing before the roll starts
        before = self.broker_uids()
        started = time.monotonic()
        change(before)
        self.wait(lambda: done(before), 1200, f"{label} roll finished", 2)
        seconds = time.monotonic() - started
        time.sleep(3)  # the sampler's next report covers the end of the roll
        logs = self.kubectl("logs", sampler, "-n", self.ns)
        isr = json.loads(next(line for line in reversed(logs.splitlines()) if line.startswith("{")))
        self.kubectl("delete", "pod", sampler, "-n", self.ns, "--wait=false")
        produced = self.pod_result(producer, 600)
        return {"seconds": seconds, "acked": produced["acked"], "errors": produced["errors"], "isr": isr}

    def statefulset_roll(self) -> dict:
        def change(_before):
            self.kubectl("annotate", "kafkausecase", "orders", "-n", self.ns,
                         "kafka.usecase.dev/pause-reconciliation=true")
            self.wait(lambda: any(c["type"] == "ReconciliationPaused" and c["status"] == "True" for c in
                                  self.get("kafkausecase", "orders")["status"]["conditions"]), 60, "paused")
            self.kubectl("patch", "statefulset", "orders-kafka", "-n", self.ns, "--type=merge", "-p", json.dumps({
                "spec": {"updateStrategy": {"type": "RollingUpdate"},
                         "template": {"metadata": {"annotations": {"bench/roll": str(time.time())}}}}}))

        def done(before):
            sts = self.get("statefulset", "orders-kafka")["status"]
            now = self.broker_uids()
            return (len(now) == BROKERS and not set(now.values()) & set(before.values())
                    and sts.get("readyReplicas") == BROKERS and sts.get("currentRevision") == sts.get("updateRevision"))

        result = self.run("sts", 0, change, done)
        self.kubectl("annotate", "kafkausecase", "orders", "-n", self.ns, "kafka.usecase.dev/pause-reconciliation-")
        self.wait(lambda: self.get("statefulset", "orders-kafka")["spec"]["updateStrategy"]["type"] == "OnDelete",
                  120, "the operator took the StatefulSet back")
        # Its template goes back too, which the roller rolls: let that finish before the roller's own run.
        time.sleep(15)
        self.wait(lambda: self.rolling_idle() and self.ready("kafkausecase", "orders"), 900,
                  "the roll back to the operator's template finished", 5)
        return result

    def roller_roll(self) -> dict:
        def change(before):
            for pod in before:
                self.kubectl("annotate", "pod", pod, "-n", self.ns, "kafka.usecase.dev/manual-rolling-update=true")

        def done(before):
            now = self.broker_uids()
            return len(now) == BROKERS and not set(now.values()) & set(before.values()) and self.rolling_idle() \
                and self.ready("kafkausecase", "orders")

        return self.run("roller", 100_000, change, done)

    def lost(self, acked: set[int]) -> int:
        reader = "consume-all"
        self.apply(realpods.client_pod(self.ns, reader, "shop", ["consume", "orders", str(10**6), "0", "0", "60"]))
        return len(acked - set(self.pod_result(reader, 600)["read"]))

    def tear_down(self) -> None:
        self.kubectl("delete", "namespace", self.ns, "--wait=true", timeout=300)
        run([kube.binary("helm"), "--kubeconfig", self.kube_stack.config["kubeconfig"], "uninstall", "kuo-bench",
                  "-n", self.operator_ns, "--wait"], "helm uninstall", timeout=200)
        self.kubectl("delete", "namespace", self.operator_ns, "--wait=false")


def main() -> None:
    run_root = paths.run_dir()
    kube_stack = Stack.load("kube", run_root)
    if not kube_stack or not kube_stack.running():
        raise DevstackError("the bench needs the control plane: `devstack up kube` first")
    nodes.ensure(run_root, kube_stack, nodes.plan(brokers=BROKERS, metadata=BROKERS),
                 lambda node: images.archives(node.pool))
    bench = Bench(kube_stack)
    bench.set_up()
    try:
        plain = bench.statefulset_roll()
        roller = bench.roller_roll()
        runs = {"StatefulSet RollingUpdate": plain, "roller": roller}
        isr = {label: run["isr"] for label, run in runs.items()}
        acked = {i for run in runs.values() for i in run["acked"]}
        lost = bench.lost(acked)
    finally:
        bench.tear_down()
    parts = [f"{label} {run['seconds']:.0f}s, longest under min ISR {isr[label]['longest_under_min_isr']}s "
             f"({isr[label]['partitions_ever_under']}/{PARTITIONS} partitions ever under, "
             f"{isr[label]['samples']} samples), producer errors {run['errors'] or 'none'}"
             for label, run in runs.items()]
    print(f"roll of {BROKERS} brokers, acks=all traffic: " + " | ".join(parts)
          + f" | acknowledged {len(acked)}, lost {lost}")


if __name__ == "__main__":
    try:
        main()
    except DevstackError as error:
        sys.exit(f"bench: {error}")
