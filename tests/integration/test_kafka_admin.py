"""The confluent-kafka adapter keeps the admin contract on real brokers, in both metadata modes."""

import pytest

from kafka_admin_contract import CONTRACT
from kafka_usecase_operator.kafka.confluent import ConfluentKafkaAdmin

pytestmark = pytest.mark.kafka


@pytest.mark.parametrize("contract", CONTRACT, ids=[c.__name__ for c in CONTRACT])
def test_adapter_keeps_the_admin_contract(kafka_cluster, contract):
    contract(ConfluentKafkaAdmin(kafka_cluster.client_config()))
