import pytest

from kafka_usecase_operator.api.usecase import Access
from kafka_usecase_operator.tenancy import admits

pytestmark = pytest.mark.unit


def access(**namespaces):
    return Access.model_validate({"namespaces": namespaces})


@pytest.mark.parametrize("rule, namespace, labels, allowed", [
    ({}, "kafka", {}, True),  # default Same: its own namespace
    ({}, "team-a", {}, False),
    ({"from": "All"}, "team-a", {}, True),
    ({"from": "Selector", "selector": {"matchLabels": {"access": "yes"}}}, "team-a", {"access": "yes"}, True),
    ({"from": "Selector", "selector": {"matchLabels": {"access": "yes"}}}, "team-b", {"access": "no"}, False),
    ({"from": "Selector", "selector": {"matchLabels": {"access": "yes"}}}, "kafka", {}, False),  # even its own
    ({"from": "Selector", "selector": {"matchExpressions": [{"key": "tier", "operator": "In", "values": ["gold"]}]}},
     "team-c", {"tier": "gold"}, True),
    ({"from": "Selector", "selector": {"matchExpressions": [{"key": "tier", "operator": "NotIn", "values": ["gold"]}]}},
     "team-c", {"tier": "gold"}, False),
    ({"from": "Selector", "selector": {"matchExpressions": [{"key": "tier", "operator": "Exists"}]}},
     "team-d", {}, False),
    ({"from": "Selector", "selector": {"matchExpressions": [{"key": "tier", "operator": "DoesNotExist"}]}},
     "team-d", {}, True),
])
def test_access_decides_which_namespaces_may_reference_the_use_case(rule, namespace, labels, allowed):
    assert admits(access(**rule), "kafka", namespace, labels) is allowed
