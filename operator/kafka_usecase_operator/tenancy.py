"""Which namespaces may reference a use case (`spec.access`, the Gateway API allowedRoutes
pattern): a pure decision, so topics, users and ACLs all judge it the same way."""

from __future__ import annotations

from kafka_usecase_operator.api.usecase import Access, LabelSelector


def admits(access: Access, use_case_namespace: str, namespace: str, namespace_labels: dict[str, str]) -> bool:
    rule = access.namespaces
    if rule.from_ == "All":
        return True
    if rule.from_ == "Same":
        return namespace == use_case_namespace
    return matches(rule.selector, namespace_labels)  # as in the Gateway API: its own namespace only if selected


def matches(selector: LabelSelector | None, labels: dict[str, str]) -> bool:
    """Kubernetes label-selector semantics; an empty selector matches everything."""
    if selector is None:
        return False
    if any(labels.get(key) != value for key, value in selector.match_labels.items()):
        return False
    for requirement in selector.match_expressions:
        present = requirement.key in labels
        value = labels.get(requirement.key)
        if requirement.operator == "In" and value not in requirement.values:
            return False
        if requirement.operator == "NotIn" and present and value in requirement.values:
            return False
        if requirement.operator == "Exists" and not present:
            return False
        if requirement.operator == "DoesNotExist" and present:
            return False
    return True
