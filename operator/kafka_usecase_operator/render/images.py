"""The one place that pins Kafka versions and maps them to the project's images.

The images are built from the repository's Dockerfiles (images/kafka, and the operator's own at
the top); ZooKeeper runs from the 3.9 line's Kafka image, which ships ZooKeeper 3.8.4's jars.
The registry, pull policy and pull secrets come from the operator's settings (the chart's
`images` values); `spec.kafka.image` / `spec.zookeeper.image` override the image per use case.
"""

from __future__ import annotations

from dataclasses import dataclass

KAFKA_KRAFT = "4.3.1"  # newest 4.x whose kafka-tools-api resolves from Maven Central
KAFKA_ZOOKEEPER = "3.9.2"  # the last line with ZooKeeper mode; brings ZooKeeper 3.8.4
DEFAULT_REGISTRY = "ghcr.io/kafka-usecase"


@dataclass(frozen=True)
class ImageSettings:
    registry: str = DEFAULT_REGISTRY
    pull_policy: str = "IfNotPresent"
    pull_secrets: tuple[str, ...] = ()

    def kafka(self, version: str, override: str | None = None) -> str:
        return override or f"{self.registry}/kafka:{version}"

    def zookeeper(self, override: str | None = None) -> str:
        return override or self.kafka(KAFKA_ZOOKEEPER)
