"""Quotas set through the admin adapter (kafka-python's AlterClientQuotas) are what real brokers
enforce, in both metadata modes: a producer and a consumer held to their byte rates while an
unrestrained user beside them on the same broker is not, a request-time quota that the client sees
as throttle time, and a topic-creation burst refused with THROTTLING_QUOTA_EXCEEDED.

Rates are measured over 20 s after a 5 s warm-up, on a one-partition topic: byte-rate quotas are
per broker, and one partition has one leader."""

from __future__ import annotations

import threading
import time
import uuid

import pytest
from confluent_kafka import Consumer, Producer, TopicPartition
from kafka import KafkaAdminClient
from kafka.errors import ThrottlingQuotaExceededError

from kafka_usecase_operator.kafka.confluent import ConfluentKafkaAdmin
from kafka_usecase_operator.kafka.model import AclBinding, Topic
from kafka_usecase_operator.kafka.quotas import KafkaPythonQuotas
from waiting import eventually

pytestmark = pytest.mark.kafka
MIB = 2**20
QUOTA = 1 * MIB  # bytes per second
WARM_UP, WINDOW = 5.0, 20.0
RECORD = b"x" * 10_000


@pytest.fixture
def admin(kafka_cluster):
    admin = ConfluentKafkaAdmin(kafka_cluster.client_config())
    yield admin
    admin.close()


def new_user(admin, kafka_cluster, quotas: dict | None, *grants: tuple[str, str, str]) -> dict:
    """A SCRAM user with ALLOW grants (resource type, name, operation) and quotas; its client config."""
    name, password = f"quota-{uuid.uuid4().hex[:8]}", uuid.uuid4().hex
    assert admin.upsert_scram({name: password}) == {name: None}
    bindings = [AclBinding(f"User:{name}", kind, resource, "PREFIXED" if resource.endswith("-") else "LITERAL",
                           operation, "ALLOW") for kind, resource, operation in grants]
    assert set(admin.create_acls(bindings).values()) <= {None}
    if quotas:
        assert admin.alter_user_quotas({name: quotas}) == {name: None}
        eventually(lambda: admin.user_quotas([name])[name] == quotas, timeout=30)
    eventually(lambda: admin.scram_users([name])[name], timeout=30)
    return kafka_cluster.client_config(name, password)


def one_partition_topic(admin) -> str:
    name = f"quota-{uuid.uuid4().hex[:8]}"
    assert admin.create_topics([Topic(name, 1, None)]) == {name: None}
    eventually(lambda: admin.describe_topics([name])[name] is not None, timeout=30)
    return name


def produce_flat_out(config: dict, topic: str, seconds: float, rates: dict, key: str, throttled: list | None = None):
    """Produce as fast as the client is let, for `seconds`; rates[key] = acknowledged bytes per
    second between WARM_UP and the end."""
    acked = [0]
    started = time.monotonic()

    def delivered(error, message):
        if error is None and time.monotonic() - started >= WARM_UP:
            acked[0] += len(message.value())

    extra = {"throttle_cb": lambda event: throttled.append(event.throttle_time)} if throttled is not None else {}
    # 64 KB batches (a Java producer's default is 16 KB): with librdkafka's 1 MB default each request
    # is a whole second of this quota, and the rate measured over 20 s swung from 0.73 to 1.27 of it.
    producer = Producer({**config, "acks": "1", "linger.ms": 5, "batch.size": 65536,
                         "queue.buffering.max.kbytes": 8192, **extra})
    while time.monotonic() - started < seconds:
        try:
            producer.produce(topic, RECORD, on_delivery=delivered)
        except BufferError:
            producer.poll(0.05)
        producer.poll(0)
    measured_until = time.monotonic()
    producer.purge()  # what is still queued was not sent within the window
    producer.flush(10)
    rates[key] = acked[0] / (measured_until - started - WARM_UP)


def fetch_flat_out(config: dict, topic: str, seconds: float, rates: dict, key: str, warm_up: float = WARM_UP) -> None:
    """Fetch from the start as fast as the client is let, for up to `seconds`; rates[key] = bytes per
    second from `warm_up` until the last record received (an unrestrained consumer may read all
    there is long before the end)."""
    consumer = Consumer({**config, "group.id": f"quota-{uuid.uuid4().hex[:6]}", "enable.auto.commit": False,
                         # small fetches: a throttled consumer's bursts stay well inside the window
                         "fetch.max.bytes": MIB // 4, "max.partition.fetch.bytes": MIB // 4,
                         "message.max.bytes": MIB // 4})  # librdkafka: fetch.max.bytes >= message.max.bytes
    consumer.assign([TopicPartition(topic, 0, 0)])
    received, started, last = 0, time.monotonic(), None
    while time.monotonic() - started < seconds:
        for message in consumer.consume(500, timeout=0.5):
            now = time.monotonic()
            if message.error() is None and now - started >= warm_up:
                received, last = received + len(message.value()), now
    consumer.close()
    rates[key] = received / (last - started - warm_up) if last else 0.0


def side_by_side(*runs) -> dict:
    """Run each (function, key, args) at once; the rates they measured, by key. A run that raised
    fails the test with its own error."""
    rates: dict = {}
    failures: list[BaseException] = []

    def measure(run, key, args):
        try:
            run(*args[:3], rates, key, *args[3:])
        except BaseException as error:
            failures.append(error)

    threads = [threading.Thread(target=measure, args=run) for run in runs]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if failures:
        raise failures[0]
    print("rates (MiB/s):", {key: round(rate / MIB, 2) for key, rate in rates.items()})  # shown with -s or -rP
    return rates


def test_a_producer_is_held_to_its_byte_rate_while_an_unrestrained_one_is_not(admin, kafka_cluster):
    topic = one_partition_topic(admin)
    write = [("TOPIC", topic, "WRITE")]
    limited = new_user(admin, kafka_cluster, {"producer_byte_rate": float(QUOTA)}, *write)
    free = new_user(admin, kafka_cluster, None, *write)

    rates = side_by_side((produce_flat_out, "limited", (limited, topic, WARM_UP + WINDOW)),
                         (produce_flat_out, "free", (free, topic, WARM_UP + WINDOW)))

    assert 0.75 * QUOTA <= rates["limited"] <= 1.25 * QUOTA, rates
    assert rates["free"] >= 3 * rates["limited"], rates


def test_a_consumer_is_held_to_its_byte_rate_while_an_unrestrained_one_is_not(admin, kafka_cluster):
    topic = one_partition_topic(admin)
    fill = new_user(admin, kafka_cluster, None, ("TOPIC", topic, "WRITE"))
    producer = Producer({**fill, "acks": "1", "linger.ms": 20})
    for _ in range(8_000):  # 80 MB: more than either consumer can read in the window
        while True:
            try:
                producer.produce(topic, RECORD)
                break
            except BufferError:
                producer.poll(0.1)
    assert producer.flush(120) == 0
    read = [("TOPIC", topic, "READ"), ("GROUP", "quota-", "READ")]
    limited = new_user(admin, kafka_cluster, {"consumer_byte_rate": float(QUOTA)}, *read)
    free = new_user(admin, kafka_cluster, None, *read)

    rates = side_by_side((fetch_flat_out, "limited", (limited, topic, WARM_UP + WINDOW)),
                         (fetch_flat_out, "free", (free, topic, WARM_UP + WINDOW, 0.0)))

    assert 0.75 * QUOTA <= rates["limited"] <= 1.25 * QUOTA, rates
    assert rates["free"] >= 3 * rates["limited"], rates


def test_a_request_time_quota_reaches_the_client_as_throttle_time(admin, kafka_cluster):
    topic = one_partition_topic(admin)
    limited = new_user(admin, kafka_cluster, {"request_percentage": 1.0}, ("TOPIC", topic, "WRITE"))
    throttled: list[int] = []

    produce_flat_out(limited, topic, WARM_UP + 5, {}, "limited", throttled)

    assert throttled and max(throttled) > 0, "the broker never told the client to back off"


def test_a_topic_creation_burst_beyond_the_mutation_rate_is_refused(admin, kafka_cluster):
    """Through kafka-python, which speaks CreateTopics v6+: only those versions get the error
    (KIP-599; confluent-kafka 2.16's creates are answered late instead). A client told to back off
    holds its next request until the throttle time is over, so each create comes from a new one, as
    separate processes of one principal would send them."""
    creator = new_user(admin, kafka_cluster, {"controller_mutation_rate": 1.0}, ("TOPIC", "burst-", "CREATE"))
    settings = KafkaPythonQuotas(creator).settings
    prefix = f"burst-{uuid.uuid4().hex[:6]}"
    outcomes = []
    for i in range(4):  # 10 partitions each, at one partition per second allowed
        client = KafkaAdminClient(**settings)
        try:
            result = client.create_topics({f"{prefix}-{i}": {"num_partitions": 10, "replication_factor": 1}},
                                          raise_errors=False)
            outcomes.append(result["topics"][0]["error_code"])
        finally:
            client.close()

    # Kafka lets requests through while the quota is not yet exceeded (a burst allowance included),
    # then refuses what follows until the rate has recovered.
    assert outcomes[0] == 0 and ThrottlingQuotaExceededError.errno in outcomes, outcomes
