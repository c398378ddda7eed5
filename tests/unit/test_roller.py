"""The roller's decision, on observed states: which pod restarts next, or why none may."""

import pytest

from kafka_usecase_operator.usecase import configs
from kafka_usecase_operator.usecase.roller import (KafkaView, PartitionView, PodView, QuorumView, Restart, Wait,
                                                   broker_blocker, drain_budget, next_step, roll_unsettled)

pytestmark = pytest.mark.unit
DUE = ("configuration changed",)


def brokers(*due: int, ready=(0, 1, 2), count=3):
    return [PodView(f"uc-kafka-{i}", "broker", i, ready=i in ready, reasons=DUE if i in due else ())
            for i in range(count)]


def controllers(*due: int, count=3):
    return [PodView(f"uc-controllers-{i}", "controller", 1000 + i, ready=True, reasons=DUE if i in due else ())
            for i in range(count)]


def partition(replicas, isr, min_isr=2, name="orders", index=0):
    return PartitionView(name, index, tuple(replicas), tuple(isr), min_isr)


def kafka(*partitions, registered=(0, 1, 2), controller=None):
    return KafkaView(tuple(partitions), frozenset(registered), controller)


HEALTHY_QUORUM = QuorumView(3, 1000, frozenset({1000, 1001, 1002}))


@pytest.mark.parametrize("p, blocks", [
    (partition([0, 1, 2], [0, 1, 2]), False),  # ISR > minISR: fine
    (partition([0, 1, 2], [0, 1]), True),  # ISR = minISR with this broker in it, minISR < replicas: blocks
    (partition([0, 1, 2], [1, 2]), False),  # ISR = minISR without this broker: it can go
    (partition([0, 1, 2], [1]), True),  # ISR < minISR, this broker a replica: blocks
    (partition([0, 1, 2], [0]), True),  # ISR < minISR, this broker the only one in sync: blocks
    (partition([0, 1], [0, 1]), False),  # replicas = minISR: never blocks (writes stop anyway)
    (partition([0], [0], min_isr=1), False),  # replicas < minISR... or equal: never blocks
    (partition([1, 2, 3], [1, 2]), False),  # not a replica here
])
def test_a_broker_restarts_only_if_no_partition_falls_below_min_isr(p, blocks):
    assert (broker_blocker(0, (p,)) == p) is blocks


def test_nothing_due_is_no_step():
    assert next_step(brokers(), kafka(), None) is None


def test_a_blocked_broker_waits_and_the_message_names_the_partition():
    step = next_step(brokers(0, 1, 2), kafka(partition([0, 1, 2], [0, 1]), partition([0, 1, 2], [0, 1], index=1)), None)
    assert step == Restart("uc-kafka-2", DUE)  # 2 is out of the ISR already: it may go, the others may not

    step = next_step(brokers(0, 1), kafka(partition([0, 1, 2], [0, 1], index=7)), None)
    # 2 is out of the ISR: nothing restarts until it is back
    assert isinstance(step, Wait) and step.reason == "BrokerCatchingUp" and "orders-7" in step.message

    step = next_step(brokers(0), kafka(partition([0, 1, 2], [0, 1], min_isr=2, name="pay", index=3),
                                       registered=(0, 1, 2)), None)
    assert isinstance(step, Wait)


def test_a_roll_blocked_by_an_under_min_isr_partition_names_it_and_goes_on_once_the_isr_recovers():
    pods = brokers(0, 1)
    # replica 5 is gone (a broker outside this set): 0 and 1 are the last two in sync, min ISR 2
    at_risk = partition([0, 1, 5], [0, 1], index=4)
    assert next_step(pods, kafka(at_risk), None) == Wait(
        "UnderMinIsr", "restarting uc-kafka-0 (broker 0) would take partition orders-4 below "
                       "min.insync.replicas=2: in sync [0, 1] of replicas [0, 1, 5]")
    recovered = partition([0, 1, 5], [0, 1, 5], index=4)
    assert next_step(pods, kafka(recovered), None) == Restart("uc-kafka-0", DUE)


def test_the_controller_broker_goes_last():
    step = next_step(brokers(0, 1, 2), kafka(partition([0, 1, 2], [0, 1, 2]), controller=0), None)
    assert step == Restart("uc-kafka-1", DUE)
    step = next_step(brokers(0), kafka(partition([0, 1, 2], [0, 1, 2]), controller=0), None)
    assert step == Restart("uc-kafka-0", DUE)


def test_one_pod_at_a_time_and_the_next_only_once_the_last_is_back():
    # a broker restarted and not ready yet: nothing else restarts
    step = next_step(brokers(1, ready=(1, 2)), kafka(partition([0, 1, 2], [1, 2])), None)
    assert step == Wait("PodNotReady", "waiting for uc-kafka-0 to be ready")
    # ready but not registered yet
    step = next_step(brokers(1), kafka(partition([0, 1, 2], [1, 2]), registered=(1, 2)), None)
    assert isinstance(step, Wait) and step.reason == "BrokerCatchingUp" and "registered" in step.message
    # registered, not in the ISR yet
    step = next_step(brokers(1), kafka(partition([0, 1, 2], [1, 2])), None)
    assert isinstance(step, Wait) and step.reason == "BrokerCatchingUp" and "uc-kafka-0" in step.message
    # a pod deleted by someone else and not re-created yet
    pods = [PodView("uc-kafka-0", "broker", 0, exists=False), *brokers(1)[1:]]
    assert next_step(pods, kafka(), None).reason == "PodNotReady"


def test_a_roll_is_over_only_once_its_last_restarted_pod_is_back():
    """Leaders are elected back and an upgrade's level raised only then: not while the last broker starts."""
    healthy = kafka(partition([0, 1, 2], [0, 1, 2]))
    assert roll_unsettled(brokers(ready=(1, 2)), healthy, None).reason == "PodNotReady"
    assert roll_unsettled(brokers(), None, None).reason == "KafkaUnknown"
    assert roll_unsettled(brokers(), kafka(partition([0, 1, 2], [1, 2])), None).reason == "BrokerCatchingUp"
    lagging = QuorumView(3, 1000, frozenset({1000, 1001}))
    assert roll_unsettled(controllers() + brokers(), healthy, lagging).reason == "QuorumCatchingUp"
    assert roll_unsettled(controllers() + brokers(), healthy, HEALTHY_QUORUM) is None


def test_an_unready_pod_that_is_due_restarts_first_and_at_once():
    pods = brokers(0, 2, ready=(0, 1))  # 2 crash-loops on the old revision
    step = next_step(pods, kafka(partition([0, 1, 2], [0, 1])), None)
    assert step == Restart("uc-kafka-2", DUE)


def test_the_quorum_goes_before_the_brokers_and_its_leader_last():
    pods = controllers(0, 1, 2) + brokers(0, 1, 2)
    step = next_step(pods, kafka(partition([0, 1, 2], [0, 1, 2])), QuorumView(3, 1000, HEALTHY_QUORUM.caught_up))
    assert step == Restart("uc-controllers-1", DUE)
    step = next_step(controllers(0) + brokers(0, 1, 2), kafka(partition([0, 1, 2], [0, 1, 2])), HEALTHY_QUORUM)
    assert step == Restart("uc-controllers-0", DUE)  # only the leader left


def test_a_quorum_member_restarts_only_while_a_majority_of_the_others_is_caught_up():
    lagging = QuorumView(3, 1000, frozenset({1000, 1001}))
    step = next_step(controllers(0, 1), None, lagging)
    assert isinstance(step, Wait) and step.reason == "QuorumCatchingUp" and "uc-controllers-2" in step.message
    five = [PodView(f"zk-{i}", "zookeeper", i + 1, ready=True, reasons=DUE if i < 2 else ()) for i in range(5)]
    # 5 members, 3 caught up (the leader 1 among them): taking one leaves 2 < 3: blocked
    step = next_step(five, None, QuorumView(5, 1, frozenset({1, 2, 3, 4, 5}) - {4, 5}))
    assert isinstance(step, Wait)
    step = next_step(five, None, QuorumView(5, 1, frozenset({1, 2, 3, 4, 5})))
    assert step == Restart("zk-1", DUE)  # myid 2: not the leader


def test_a_quorum_of_one_restarts_when_it_is_due():
    step = next_step(controllers(0, count=1), None, QuorumView(1, 1000, frozenset({1000})))
    assert step == Restart("uc-controllers-0", DUE)


def test_without_kafkas_word_nothing_restarts():
    assert next_step(brokers(0), None, None).reason == "KafkaUnknown"
    assert next_step(controllers(0), None, None).reason == "KafkaUnknown"
    # the quorum's state unknown: a broker does not restart either (is the last restarted controller back?)
    assert next_step(controllers() + brokers(0), kafka(partition([0, 1, 2], [0, 1, 2])), None).reason == "KafkaUnknown"
    assert next_step(controllers(0), None, QuorumView(3, None, frozenset())).reason in ("QuorumCatchingUp", "QuorumAtRisk")


def test_a_runtime_setting_restarts_nothing_and_a_static_one_does():
    running = {"server.properties": "num.io.threads=8\nnum.network.threads=3\nauto.create.topics.enable=false\n",
               "start.sh": "x"}
    dynamic = frozenset({"num.io.threads", "num.network.threads", "listeners"})
    runtime = {**running, "server.properties": running["server.properties"].replace("io.threads=8", "io.threads=16")}
    static = {**running, "server.properties": running["server.properties"] + "num.partitions=6\n"}
    script = {**running, "start.sh": "y"}

    assert configs.change_between(running, runtime, "server.properties", dynamic).restart == ()
    assert configs.change_between(running, static, "server.properties", dynamic).restart == (
        "static settings changed: num.partitions",)
    assert configs.change_between(running, script, "server.properties", dynamic).restart == ("start.sh changed",)
    assert configs.change_between(None, running, "server.properties", dynamic).restart
    # the quorum's files have no runtime settings
    assert configs.change_between(running, runtime, None, dynamic).restart == ("server.properties changed",)


def test_the_cluster_wide_dynamic_defaults_follow_the_spec():
    dynamic = frozenset({"num.io.threads", "log.retention.ms", "listeners"})
    plan = configs.dynamic_plan({"num.io.threads": "16", "listeners": "X", "num.partitions": "3"},
                                {"log.retention.ms": "5", "num.io.threads": "8"}, dynamic)
    assert plan.set == {"num.io.threads": "16"} and plan.delete == ("log.retention.ms",)
    assert not configs.dynamic_plan({"num.io.threads": "16"}, {"num.io.threads": "16"}, dynamic)


def test_a_drain_may_take_a_broker_only_while_every_partition_can_spare_any_one():
    healthy = kafka(partition([0, 1, 2], [0, 1, 2]))
    assert drain_budget(brokers(), healthy) == 1
    assert drain_budget(brokers(), kafka(partition([0, 1, 2], [0, 1]))) == 0  # 2 out of sync: 0 or 1 may not go
    assert drain_budget(brokers(ready=(0, 1)), healthy) == 0  # a broker away
    assert drain_budget(brokers(), kafka(partition([0, 1, 2], [0, 1, 2]), registered=(0, 1))) == 0
    assert drain_budget(brokers(), None) == 0  # the brokers could not be asked
