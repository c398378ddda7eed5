"""The batcher: fewer admin requests, and every caller gets its own item's outcome."""

import asyncio

import pytest

from kafka_usecase_operator.kafka.batching import Batcher
from kafka_usecase_operator.kafka.fake import FakeKafkaAdmin
from kafka_usecase_operator.kafka.model import Topic

pytestmark = pytest.mark.unit


def test_concurrent_submissions_share_requests_of_at_most_max_items():
    admin = FakeKafkaAdmin()
    batcher = Batcher(admin.create_topics, key=lambda topic: topic.name, max_items=100, max_delay=0.05)

    async def create_all():
        return await asyncio.gather(*(batcher.submit(Topic(f"t{i}", 1, None)) for i in range(250)))

    outcomes = asyncio.run(create_all())

    assert outcomes == [None] * 250
    assert len(admin.topics) == 250
    assert batcher.requests_sent == 3


def test_a_failing_item_fails_only_its_caller():
    admin = FakeKafkaAdmin()
    admin.create_topics([Topic("taken", 1, None)])
    batcher = Batcher(admin.create_topics, key=lambda topic: topic.name, max_delay=0.01)

    async def create_both():
        return await asyncio.gather(batcher.submit(Topic("fresh", 1, None)), batcher.submit(Topic("taken", 1, None)),
                                    return_exceptions=True)

    fresh, taken = asyncio.run(create_both())

    assert fresh is None and "already exists" in str(taken)
    assert batcher.requests_sent == 1


def test_a_lone_item_is_sent_without_waiting_for_a_full_batch():
    admin = FakeKafkaAdmin()
    batcher = Batcher(admin.create_topics, key=lambda topic: topic.name, max_items=100, max_delay=0.05)

    async def one():
        # A batcher that only flushed full batches would hang here; wait_for turns that into a failure.
        return await asyncio.wait_for(batcher.submit(Topic("alone", 1, None)), timeout=10)

    assert asyncio.run(one()) is None
    assert "alone" in admin.topics and batcher.requests_sent == 1


def test_a_failed_request_reaches_every_caller():
    def broken(items):
        raise ConnectionError("broker down")

    batcher = Batcher(broken, max_delay=0.01)

    async def submit_two():
        return await asyncio.gather(batcher.submit("a"), batcher.submit("b"), return_exceptions=True)

    assert [str(e) for e in asyncio.run(submit_two())] == ["broker down", "broker down"]
