"""Pure status computation, condition bookkeeping, operator-judged refusals, settings."""

import pytest

from kafka_usecase_operator import conditions
from kafka_usecase_operator.usecase import status as usecase_status
from kafka_usecase_operator.api import KafkaUseCase
from kafka_usecase_operator.usecase.judgement import refuse_change
from kafka_usecase_operator.render.model import cluster_model
from kafka_usecase_operator.settings import OperatorSettings
from kafka_usecase_operator.usecase.status import SetObservation

pytestmark = pytest.mark.unit


def model(spec: dict):
    return cluster_model("uc", "apps", KafkaUseCase.parse({"metadata": {"name": "uc"}, "spec": spec}))


def test_last_transition_time_moves_only_when_the_status_changes():
    first = conditions.merge([], [conditions.Observed("Ready", False, "Reconciling", "1/3")], 1, "T1")
    same = conditions.merge(first, [conditions.Observed("Ready", False, "Reconciling", "2/3")], 1, "T2")
    flipped = conditions.merge(same, [conditions.Observed("Ready", True, "Ready")], 2, "T3")

    assert same[0]["lastTransitionTime"] == "T1" and same[0]["message"] == "2/3"
    assert flipped[0]["lastTransitionTime"] == "T3" and flipped[0]["observedGeneration"] == 2


def sts(replicas, ready, updated, generation=1, observed=1):
    return {"metadata": {"name": "s", "generation": generation}, "spec": {"replicas": replicas},
            "status": {"readyReplicas": ready, "updatedReplicas": updated, "observedGeneration": observed}}


def pending(name, message):
    return {"metadata": {"name": name}, "status": {"conditions": [
        {"type": "PodScheduled", "status": "False", "reason": "Unschedulable", "message": message}]}}


def test_ready_needs_every_replica_ready_on_the_current_revision():
    c = model({})
    done = SetObservation.from_objects(sts(3, 3, 3), [])
    rolling = SetObservation.from_objects(sts(3, 3, 2), [])
    stale = SetObservation.from_objects(sts(3, 3, 3, generation=2, observed=1), [])

    assert usecase_status.in_cluster_conditions(c, done, done)[0].status is True
    for brokers in (rolling, stale, None):
        ready = usecase_status.in_cluster_conditions(c, brokers, done)[0]
        assert ready.status is False and ready.reason == "Reconciling"


def test_unschedulable_pods_are_named_in_the_status():
    c = model({})
    quorum = SetObservation.from_objects(sts(5, 3, 5), [pending("uc-controllers-4", "0/8 nodes are available")])

    ready, quorum_condition, _ = usecase_status.in_cluster_conditions(c, SetObservation(3, 3, 3, True), quorum)

    assert (ready.reason, quorum_condition.type) == ("Unschedulable", "ControllersReady")
    assert "uc-controllers-4: 0/8 nodes are available" in ready.message


@pytest.mark.parametrize("spec, running_quorum, running_version, topic_rf, reason", [
    ({"metadataQuorum": {"mode": "zookeeper"}, "kafka": {"version": "3.9.2"}, "zookeeper": {"replicas": 1}},
     5, None, 0, "QuorumShrink"),
    ({"metadataQuorum": {"mode": "zookeeper"}, "kafka": {"version": "3.8.1"}}, 3, "3.9.2", 0, "VersionDowngrade"),
    ({"kafka": {"replicas": 1}}, 3, "4.3.1", 3, "TooFewBrokers"),
    # KRaft voters live in the metadata log: no change of the controller count without AddRaftVoter
    ({"controllers": {"replicas": 3}}, 5, "4.3.1", 0, "ControllerChangeUnsupported"),
    ({"controllers": {"replicas": 5}}, 3, "4.3.1", 0, "ControllerChangeUnsupported"),
])
def test_changes_that_would_break_what_runs_are_refused(spec, running_quorum, running_version, topic_rf, reason):
    refusal = refuse_change(model(spec), running_quorum, running_version, topic_rf)

    assert refusal is not None and refusal.reason == reason and refusal.status is False


def test_safe_changes_pass():
    assert refuse_change(model({"controllers": {"replicas": 3}}), 3, "4.3.1", 3) is None
    assert refuse_change(model({"controllers": {"replicas": 3}}), None, None, 0) is None  # a new cluster
    assert refuse_change(model({}), None, None, 0) is None


def test_settings_from_environment():
    settings = OperatorSettings.from_env({"KUO_NAMESPACES": "a, b", "KUO_EXTERNAL_CHECK_SECONDS": "5"})

    assert settings.namespaces == ["a", "b"] and settings.external_check_seconds == 5.0
    with pytest.raises(ValueError):
        OperatorSettings.from_env({"KUO_LIVENESS_PORT": "0"})


def test_external_check_names_what_is_wrong_with_the_admin_secret():
    import base64

    from kafka_usecase_operator.api.usecase import ExternalCluster
    from kafka_usecase_operator.usecase.external import check_external

    external = ExternalCluster.model_validate({"bootstrapServers": "127.0.0.1:1", "adminSecretRef": {"name": "adm"}})
    only_user = {"data": {"username": base64.b64encode(b"admin").decode()}}

    assert check_external(external, None, 1) == "admin Secret adm not found"
    assert check_external(external, only_user, 1) == "admin Secret adm has no key password"


def test_a_crash_looping_broker_is_named_with_its_own_words():
    sts = {"metadata": {"generation": 2}, "spec": {"replicas": 3},
           "status": {"observedGeneration": 2, "readyReplicas": 2, "updatedReplicas": 3}}
    crashing = {"metadata": {"name": "uc-kafka-1"}, "status": {"containerStatuses": [{
        "ready": False, "restartCount": 4, "state": {"waiting": {"reason": "CrashLoopBackOff", "message": "back-off 40s"}},
        "lastState": {"terminated": {"exitCode": 1, "reason": "Error", "message": "java.lang.OutOfMemoryError\n"}}}]}}
    starting = {"metadata": {"name": "uc-kafka-2"}, "status": {"containerStatuses": [{
        "ready": False, "restartCount": 0, "state": {"waiting": {"reason": "ContainerCreating"}}}]}}
    brokers = SetObservation.from_objects(sts, [crashing, starting])
    c = model({})

    ready, _, brokers_condition = usecase_status.in_cluster_conditions(c, brokers, SetObservation(3, 3, 3, True))

    assert ready.status is False and ready.reason == "BrokerNotReady" == brokers_condition.reason
    assert ready.message == ("2/3 brokers ready; uc-kafka-1: CrashLoopBackOff: back-off 40s (last exit code 1, "
                             "Error: java.lang.OutOfMemoryError); restarted 4 time(s)")
    assert SetObservation.from_objects(sts, [starting]).stuck == ()
