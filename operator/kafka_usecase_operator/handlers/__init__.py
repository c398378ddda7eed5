"""Thin kopf handlers, one module per kind; importing this package registers them."""

from kafka_usecase_operator.handlers import lifecycle, usecase

__all__ = ["lifecycle", "usecase"]
