"""Thin kopf handlers; importing this package registers them."""

from kafka_usecase_operator.handlers import indexes, kafka_state, lifecycle, resync, usecase

__all__ = ["indexes", "kafka_state", "lifecycle", "resync", "usecase"]
