"""The shipped Argo CD health checks on edge cases (the e2e flow runs them on statuses the real
operator wrote): Progressing until the operator has reported on the current generation,
Healthy when Ready, Degraded on reasons that need a person, Progressing on reasons it retries."""

from pathlib import Path

import pytest

from argocd_health import health
from kafka_usecase_operator.api import KINDS
from kafka_usecase_operator.api.health import argocd_config_map, health_files

pytestmark = pytest.mark.unit
ARGOCD = Path(__file__).parents[2] / "charts" / "kafka-usecase-operator" / "docs" / "argocd"


def obj(kind="KafkaTopic", generation=2, observed=2, ready=None, reason="Created", condition_generation=None):
    status = None if observed is None else {"observedGeneration": observed, "conditions": []}
    if ready is not None:
        status["conditions"].append({"type": "Ready", "status": ready, "reason": reason, "message": "m",
                                     "lastTransitionTime": "2026-11-22T00:00:00Z",
                                     "observedGeneration": condition_generation or observed})
    return {"apiVersion": "kafka.usecase.dev/v1alpha1", "kind": kind,
            "metadata": {"name": "x", "namespace": "n", "generation": generation}, "status": status}


@pytest.mark.parametrize("kind", [k.kind for k in KINDS])
@pytest.mark.parametrize("case, expected", [
    (obj(observed=None), "Progressing"),  # the operator has not seen it yet
    (obj(ready=None), "Progressing"),  # no Ready condition yet
    (obj(ready="True"), "Healthy"),
    (obj(ready="True", generation=3, observed=2), "Progressing"),  # a new spec not reconciled yet
    (obj(ready="True", condition_generation=1), "Progressing"),  # the condition is about an older spec
    (obj(ready="False", reason="InvalidSpec"), "Degraded"),
    (obj(ready="False", reason="NotSupported"), "Degraded"),
    (obj(ready="False", reason="Conflict"), "Degraded"),
    (obj(ready="False", reason="NotAllowed"), "Degraded"),
    (obj(ready="False", reason="KafkaError"), "Degraded"),
    (obj(ready="False", reason="VersionDowngrade"), "Degraded"),
    (obj(ready="False", reason="SomeFutureReason"), "Degraded"),  # unknown: shown, not hidden
    (obj(ready="False", reason="Reconciling"), "Progressing"),
    (obj(ready="False", reason="ClusterNotReady"), "Progressing"),
    (obj(ready="False", reason="UseCaseNotFound"), "Progressing"),
    (obj(ready="Unknown", reason="Reconciling"), "Progressing"),
])
def test_health(kind, case, expected):
    status, message = health(case | {"kind": kind})

    assert status == expected
    assert message


def test_checked_in_health_checks_are_what_the_code_generates():
    checked_in = {str(p.relative_to(ARGOCD)): p.read_text() for p in ARGOCD.rglob("*") if p.is_file()}

    assert checked_in == health_files() | {"argocd-cm.yaml": argocd_config_map()}, "run `make crds`"
