import pytest

from kafka_admin_contract import CONTRACT
from kafka_usecase_operator.kafka.fake import FakeKafkaAdmin

pytestmark = pytest.mark.unit


@pytest.mark.parametrize("contract", CONTRACT, ids=[c.__name__ for c in CONTRACT])
def test_fake_keeps_the_admin_contract(contract):
    contract(FakeKafkaAdmin())
