"""Lag-aware load balancing: a producer that places keyless messages by a consumer group's lag
(the lag-aware consumer is not built yet)."""

from kafka_usecase_clients.lagaware.lag import LagCache
from kafka_usecase_clients.lagaware.producer import ALGORITHMS, LagAwareProducer

__all__ = ["ALGORITHMS", "LagAwareProducer", "LagCache"]
