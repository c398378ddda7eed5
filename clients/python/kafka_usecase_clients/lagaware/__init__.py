"""Lag-aware load balancing: a producer that places keyless messages by a consumer group's lag, and
a consumer group whose assignment follows each member's capacity and each partition's lag."""

from kafka_usecase_clients.lagaware.consumer import LagAwareConsumer, LagAwareCoordinator
from kafka_usecase_clients.lagaware.lag import LagCache
from kafka_usecase_clients.lagaware.producer import ALGORITHMS, LagAwareProducer

__all__ = ["ALGORITHMS", "LagAwareConsumer", "LagAwareCoordinator", "LagAwareProducer", "LagCache"]
