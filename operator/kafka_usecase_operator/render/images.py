"""The one place that maps versions to container images; `spec.kafka.image` /
`spec.zookeeper.image` override it per use case."""

KAFKA_IMAGE = "apache/kafka"  # brokers and KRaft controllers, 3.9.x and 4.x
ZOOKEEPER_IMAGE = "zookeeper:3.8.4"  # the official image; Kafka 3.9 ships the 3.8 client


def kafka_image(version: str, override: str | None = None) -> str:
    return override or f"{KAFKA_IMAGE}:{version}"


def zookeeper_image(override: str | None = None) -> str:
    return override or ZOOKEEPER_IMAGE
