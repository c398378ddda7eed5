"""LagCache when a broker is slow: a ListOffsets that is not answered in time is a failed refresh
(the lag goes stale, the producer spreads evenly), never an error that ends the refresh thread."""

from __future__ import annotations

import time
from concurrent.futures import Future

import pytest
from confluent_kafka import KafkaError, KafkaException, TopicPartition

from kafka_usecase_clients.lagaware import LagCache

pytestmark = pytest.mark.unit


class Unanswered:
    """An admin client whose ListOffsets never completes; the committed offsets answer at once."""

    def list_offsets(self, requests, request_timeout):
        return {tp: Future() for tp in requests}

    def committed(self, partitions, timeout):
        return [TopicPartition(tp.topic, tp.partition, 5) for tp in partitions]

    def close(self):
        pass


def slow_broker_cache() -> LagCache:
    cache = LagCache({"bootstrap.servers": "127.0.0.1:9"}, "orders", "workers", refresh_seconds=0.05,
                     request_timeout=0.2)
    cache._offsets.close()
    cache._admin = cache._offsets = Unanswered()
    cache._partitions, cache._partitions_at = [TopicPartition("orders", 0)], time.monotonic() + 3600
    return cache


def test_an_unanswered_list_offsets_is_a_timed_out_refresh():
    cache = slow_broker_cache()
    with pytest.raises(KafkaException) as raised:
        cache.refresh()
    assert raised.value.args[0].code() == KafkaError._TIMED_OUT
    cache.close()


def test_the_refresh_thread_outlives_a_slow_broker_and_the_lag_goes_stale():
    cache = slow_broker_cache().start()
    time.sleep(1.0)
    assert cache._thread.is_alive() and cache.errors >= 2
    assert cache.lags() is None
    cache.close()
