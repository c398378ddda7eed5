"""Use cases on the devstack's real nodes, shared by the e2e tests and `devstack demo`: the
KafkaUseCase that places its pods there, the chart values that run the operator there, and the
client pod that produces or consumes through a KafkaUser's generated Secret."""

from __future__ import annotations

from devstack import images, nodes

CLIENT = r"""
import json, sys, time
from confluent_kafka import Consumer, KafkaError, Producer, TopicPartition
secret = lambda key: open(f"/etc/kafka/{key}").read()
conf = {"bootstrap.servers": secret("bootstrap.servers"), "security.protocol": secret("security.protocol"),
        "sasl.mechanism": secret("sasl.mechanism"), "sasl.username": secret("username"),
        "sasl.password": secret("password")}
action, topic, count = sys.argv[1], sys.argv[2], int(sys.argv[3])
pause = float(sys.argv[4]) if len(sys.argv) > 4 else 0.0  # seconds between records (traffic during a fault)
first = int(sys.argv[5]) if len(sys.argv) > 5 else 0  # the first record's number
timeout = float(sys.argv[6]) if len(sys.argv) > 6 else 60.0  # seconds a record may wait to be acknowledged, or read
if action == "produce":
    acked, errors = [], []
    producer = Producer({**conf, "acks": "all", "message.timeout.ms": int(timeout * 1000)})
    def delivered(error, message):
        (errors.append(error.name()) if error else acked.append(int(message.value())))
    for i in range(count):
        producer.produce(topic, str(first + i).encode(), on_delivery=delivered)
        producer.poll(pause)
    producer.flush(90)
    print(json.dumps({"acked": sorted(acked), "errors": sorted(set(errors))}))
else:
    consumer = Consumer({**conf, "group.id": "e2e-reader", "enable.auto.commit": False})
    partitions = consumer.list_topics(topic, timeout=30).topics[topic].partitions
    consumer.assign([TopicPartition(topic, p, -2) for p in partitions])  # -2: from the beginning
    # Up to `timeout` s for the first record (a cluster may still be settling after a fault), then
    # until 20 s pass without a new one.
    seen, started, last = set(), time.monotonic(), None
    while len(seen) < count and time.monotonic() - (last or started) < (20 if last else timeout):
        message = consumer.poll(1.0)
        if message is not None and not message.error():
            seen.add(int(message.value()))
            last = time.monotonic()
    print(json.dumps({"read": sorted(seen)}))
"""


def use_case(mode: str, namespace: str, brokers: int = 1, name: str = "orders", access: dict | None = None,
             version: str | None = None) -> dict:
    """One broker per real broker node, a quorum of 1 (3 with 3 brokers) on the metadata nodes;
    `access`: spec.access.namespaces (default: every namespace); `version`: the mode's default."""
    placement = nodes.placement
    replication = min(brokers, 3)
    quorum = {"replicas": 1 if brokers == 1 else 3, "storage": {"size": "1Gi", "storageClass": nodes.STORAGE_CLASS},
              "resources": {"requests": {"memory": "384Mi", "cpu": "50m"}, "limits": {"memory": "384Mi"}},
              "placement": placement("metadata")}
    kafka_version = {"version": version} if version else {}
    return {"apiVersion": "kafka.usecase.dev/v1alpha1", "kind": "KafkaUseCase",
            "metadata": {"name": name, "namespace": namespace},
            "spec": {"profile": "realtime", "metadataQuorum": {"mode": mode},
                     "access": {"namespaces": access or {"from": "All"}},
                     "kafka": {"replicas": brokers, **kafka_version,
                               "storage": {"size": "1Gi", "storageClass": nodes.STORAGE_CLASS},
                               "resources": {"requests": {"memory": "768Mi", "cpu": "100m"},
                                             "limits": {"memory": "768Mi"}},
                               "config": {"offsets.topic.replication.factor": str(replication),
                                          "transaction.state.log.replication.factor": str(replication),
                                          "transaction.state.log.min.isr": str(min(replication, 2)),
                                          "default.replication.factor": str(replication),
                                          "min.insync.replicas": str(min(replication, 2))},
                               "placement": placement("broker")},
                     ("controllers" if mode == "kraft" else "zookeeper"): quorum}}


def chart_values(**extra) -> dict:
    """The chart's values that run the operator from the devstack's image on a general real node."""
    general = nodes.placement(None)
    return {"image": {"repository": images.OPERATOR.ref.rsplit(":", 1)[0], "tag": images.OPERATOR.tag,
                      "pullPolicy": "Never"},
            "kafkaImages": {"registry": images.REGISTRY, "pullPolicy": "Never"},
            "nodeSelector": general["nodeSelector"], "tolerations": general["tolerations"], **extra}


def client_pod(namespace: str, name: str, user: str, args: list[str]) -> dict:
    """A pod running CLIENT (`produce|consume TOPIC COUNT [PAUSE] [FIRST] [TIMEOUT]`) with the user's Secret mounted."""
    return python_pod(namespace, name, CLIENT, args, secret=user)


def python_pod(namespace: str, name: str, script: str, args: list[str], secret: str | None = None) -> dict:
    """A pod on a general real node running `python3 -c script args` from the operator's image
    (confluent-kafka included), with `secret` mounted at /etc/kafka."""
    container = {"name": "client", "image": images.OPERATOR.ref, "imagePullPolicy": "Never",
                 "command": ["python3", "-c", script, *args]}
    spec = {"restartPolicy": "Never", **nodes.placement(None),
            "securityContext": {"runAsNonRoot": True, "runAsUser": 10001}, "containers": [container]}
    if secret:
        container["volumeMounts"] = [{"name": "kafka", "mountPath": "/etc/kafka"}]
        spec["volumes"] = [{"name": "kafka", "secret": {"secretName": secret}}]
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": namespace}, "spec": spec}
