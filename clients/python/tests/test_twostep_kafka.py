"""2-step logging against a real broker (KRaft 4.3.1; the main flow also on 3.9.2 + ZooKeeper):
writers append to disk, the forwarder process ships the events, a consumer reads them back, and the
completeness report, run as a user runs it, must agree with what the consumer actually read."""

from __future__ import annotations

import random
import shutil
import signal
import threading
import time

import pytest

from kafka_usecase_clients.twostep import DiskBudgetExceeded, EventLog
from twostep_pipeline import Pipeline
from waiting import eventually

pytestmark = [pytest.mark.kafka]


@pytest.fixture
def pipeline(kafka_kraft, tmp_path):
    pipeline = Pipeline(kafka_kraft, tmp_path)
    yield pipeline
    pipeline.close()


def write(log: EventLog, topic: str, count: int, threads: int = 1, per_second: float | None = None) -> None:
    """`count` 100-byte events from `threads` threads, optionally paced."""
    def run(share: int, start: int):
        began = time.monotonic()
        for i in range(share):
            log.send(topic, f"{start + i:099d}".encode())
            if per_second and i % 100 == 99:
                ahead = began + (i + 1) / (per_second / threads) - time.monotonic()
                if ahead > 0:
                    time.sleep(ahead)

    workers = [threading.Thread(target=run, args=(count // threads, n * (count // threads))) for n in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()


def complete_report(pipeline: Pipeline, written: int) -> dict:
    """The report once every stage's counts arrived (they are published asynchronously)."""
    last = {}

    def settled():
        code, rows, _ = pipeline.report()
        last.update(pipeline.totals(rows))
        return (code, dict(last)) if last["written"] == written and last["consumed"] >= written else None

    try:
        code, totals = eventually(settled, timeout=60, interval=2)
    except AssertionError as error:
        raise AssertionError(f"{error}; the report's last totals: {last}") from None
    assert code == 0, pipeline.report()[2]
    return totals


@pytest.mark.parametrize("mode", ["kraft", "zookeeper"])
def test_a_million_events_from_four_threads_arrive_each_at_least_once(request, mode, tmp_path):
    kafka = request.getfixturevalue(f"kafka_{mode}")
    events = 1_000_000 if mode == "kraft" else 200_000
    pipeline = Pipeline(kafka, tmp_path)
    try:
        pipeline.start_forwarder()
        with EventLog(pipeline.directory, segment_bytes=8 * 1024 * 1024) as log:
            write(log, pipeline.topic, events, threads=4)
        distinct, arrivals = pipeline.consume_until(events, timeout=600)
        assert distinct == events
        totals = complete_report(pipeline, events)
        assert (totals["missing"], totals["duplicated"]) == (0, arrivals - distinct)
        eventually(lambda: not list(pipeline.directory.glob("*.seg")), timeout=30)  # delivered segments deleted
    finally:
        pipeline.close()


def test_a_forwarder_killed_three_times_loses_nothing_and_the_report_counts_the_duplicates(pipeline):
    killed_repeatedly(pipeline, events=150_000, kills=3)


@pytest.mark.slow
def test_a_forwarder_killed_twenty_times_over_half_a_million_events_loses_nothing(pipeline):
    killed_repeatedly(pipeline, events=500_000, kills=20)


def killed_repeatedly(pipeline: Pipeline, events: int, kills: int) -> None:
    """SIGKILL the forwarder at random points while a writer sends, restart it each time."""
    pipeline.start_forwarder()
    rate = events / (kills * 2.0 + 2)  # the writer outlasts the kills
    with EventLog(pipeline.directory, segment_bytes=1024 * 1024) as log:
        writer = threading.Thread(target=write, args=(log, pipeline.topic, events), kwargs={"per_second": rate})
        writer.start()
        for _ in range(kills):
            time.sleep(random.uniform(0.5, 3.0))
            assert pipeline.kill_forwarder(signal.SIGKILL) == -signal.SIGKILL
            pipeline.start_forwarder()
        writer.join()
    distinct, arrivals = pipeline.consume_until(events, timeout=300)
    assert distinct == events
    totals = complete_report(pipeline, events)
    assert (totals["missing"], totals["duplicated"]) == (0, arrivals - distinct)


def test_the_report_sees_a_segment_deleted_unsent_and_a_segment_sent_twice(pipeline):
    def closed_segment(count: int):
        with EventLog(pipeline.directory) as log:
            write(log, pipeline.topic, count)
        return next(pipeline.directory.glob(f"{log.writer_id}-*.seg"))

    closed_segment(1000).unlink()  # lost before the forwarder saw it
    replayed = closed_segment(700)
    shutil.copy(replayed, replayed.with_name(replayed.name.replace("-00000000.seg", "-00000001.seg")))
    closed_segment(300)
    pipeline.start_forwarder()
    distinct, arrivals = pipeline.consume_until(1000, timeout=120)
    assert (distinct, arrivals) == (1000, 1700)

    def settled():
        code, rows, table = pipeline.report()
        totals = pipeline.totals(rows)
        return (code, totals, table) if totals["written"] == 2000 and totals["consumed"] == 1700 else None

    code, totals, table = eventually(settled, timeout=60, interval=2)
    assert (code, totals["missing"], totals["duplicated"]) == (1, 1000, 700)
    assert "INCOMPLETE: 1000 events missing" in table


def test_a_broker_down_for_30_seconds_never_blocks_writers_and_the_backlog_drains(pipeline, kafka_kraft):
    pipeline.start_forwarder()
    brokers = [n for n in kafka_kraft.stack.pids if n.startswith("broker")]  # all of them: no Kafka at all
    slowest_send, events = 0.0, 0
    with EventLog(pipeline.directory, segment_bytes=1024 * 1024) as log:
        def send_for(seconds: float):
            nonlocal slowest_send, events
            end = time.monotonic() + seconds
            while time.monotonic() < end:
                started = time.monotonic()
                log.send(pipeline.topic, f"{events:099d}".encode())
                slowest_send = max(slowest_send, time.monotonic() - started)
                events += 1
                if events % 100 == 0:
                    time.sleep(0.05)  # ~2,000 events/s

        send_for(3)
        kafka_kraft.stop_nodes(brokers)
        try:
            send_for(30)
            metrics = pipeline.metrics()
            assert metrics["twostep_backlog_bytes"] > 30 * 2000 * 100 * 0.5
            assert metrics["twostep_oldest_unforwarded_event_age_seconds"] > 20
        finally:
            for broker in brokers:
                kafka_kraft.stack.restart(broker)
        send_for(3)
    assert slowest_send < 0.5, f"a send took {slowest_send:.2f} s while the broker was down"
    distinct, arrivals = pipeline.consume_until(events, timeout=240)
    assert distinct == events
    eventually(lambda: pipeline.metrics()["twostep_backlog_bytes"] == 0, timeout=60)
    complete_report(pipeline, events)


def test_a_full_disk_budget_refuses_clearly_and_loses_nothing_already_written(pipeline):
    log = EventLog(pipeline.directory, disk_budget_bytes=2_000_000, segment_bytes=256 * 1024)
    sent = 0
    with pytest.raises(DiskBudgetExceeded, match="disk budget of 2000000 bytes is used up"):
        while True:
            log.send(pipeline.topic, f"{sent:099d}".encode())
            sent += 1
    log.close()
    pipeline.start_forwarder()
    assert pipeline.consume_until(sent, timeout=120)[0] == sent
    complete_report(pipeline, sent)


def test_a_corrupt_record_is_quarantined_and_the_rest_delivered(pipeline):
    with EventLog(pipeline.directory, segment_bytes=64 * 1024) as log:
        write(log, pipeline.topic, 3000)
    damaged = sorted(pipeline.directory.glob("*.seg"))[1]
    data = bytearray(damaged.read_bytes())
    data[len(data) // 2] ^= 0xFF
    damaged.write_bytes(bytes(data))
    pipeline.start_forwarder()
    assert pipeline.consume_until(2999, timeout=120) == (2999, 2999)
    assert len(list((pipeline.directory / "quarantine").glob("*.bad"))) == 1
    assert eventually(lambda: pipeline.metrics()["twostep_corrupt_records_total"], timeout=10) == 1

    def settled():
        code, rows, _ = pipeline.report()
        totals = pipeline.totals(rows)
        return (code, totals) if totals["consumed"] == 2999 and totals["written"] == 3000 else None

    code, totals = eventually(settled, timeout=60, interval=2)
    assert (code, totals["missing"]) == (1, 1), "the report owns up to the quarantined event"


def test_an_event_larger_than_kafka_takes_is_quarantined_and_not_counted_as_delivered(pipeline):
    """librdkafka refuses a 2 MB message outright (message.max.bytes): the forwarder sets it aside,
    delivers the rest, and the report owns up to it as missing rather than delivered."""
    huge = b"h" * 2_000_000
    with EventLog(pipeline.directory) as log:
        write(log, pipeline.topic, 1000)
        log.send(pipeline.topic, huge)
        write(log, pipeline.topic, 1000)
    pipeline.start_forwarder()
    assert pipeline.consume_until(2000, timeout=120) == (2000, 2000)
    quarantined = list((pipeline.directory / "quarantine").glob("*.bad"))
    assert len(quarantined) == 1 and huge in quarantined[0].read_bytes()
    metrics = eventually(lambda: pipeline.metrics(), timeout=10)
    assert metrics['twostep_errors_total{kind="MSG_SIZE_TOO_LARGE"}'] == 1
    assert metrics[f'twostep_events_forwarded_total{{topic="{pipeline.topic}"}}'] == 2000

    def settled():
        code, rows, _ = pipeline.report()
        totals = pipeline.totals(rows)
        return (code, totals) if totals["consumed"] == 2000 and totals["written"] == 2001 else None

    code, totals = eventually(settled, timeout=60, interval=2)
    assert (code, totals["missing"], totals["delivered"]) == (1, 1, 2000)


def test_sigterm_confirms_the_batch_in_flight_so_a_restart_sends_no_duplicate(pipeline):
    pipeline.start_forwarder()
    with EventLog(pipeline.directory, segment_bytes=1024 * 1024) as log:
        writer = threading.Thread(target=write, args=(log, pipeline.topic, 60_000), kwargs={"per_second": 20_000})
        writer.start()
        time.sleep(1.5)
        assert pipeline.kill_forwarder(signal.SIGTERM) == 0
        pipeline.start_forwarder()
        writer.join()
    assert pipeline.consume_until(60_000, timeout=120) == (60_000, 60_000)


def test_topics_are_routed_to_their_clusters_and_counts_to_the_audit_cluster(kafka_kraft, kafka_zookeeper, tmp_path):
    """Events of `payments.*` to the ZooKeeper-mode cluster, the rest to the KRaft one, and every
    audit count to the ZooKeeper-mode cluster. Each cluster's reader must get exactly its own events:
    an event routed to the wrong cluster would be missing from its reader's count."""
    events = Pipeline(kafka_kraft, tmp_path / "events")
    payments = Pipeline(kafka_zookeeper, tmp_path / "payments", topic_prefix="payments.")
    audit_home = Pipeline(kafka_zookeeper, tmp_path / "audit")
    password = {kafka_kraft: events.password_file, kafka_zookeeper: payments.password_file}
    config = tmp_path / "forwarder.toml"
    config.write_text("\n".join(
        [f'[clusters.{name}]\nbootstrap_servers = "{k.bootstrap_servers}"\nsasl_username = "{k.admin_user}"\n'
         f'sasl_password_file = "{password[k]}"' for name, k in (("default", kafka_kraft), ("zk", kafka_zookeeper))]
        + ['[[routes]]\ntopic_prefix = "payments."\ncluster = "zk"',
           f'[audit]\ncluster = "zk"\ntopic = "{audit_home.audit_topic}"']))
    events.start_forwarder(["--config", str(config)])
    try:
        with EventLog(events.directory) as log:
            write(log, events.topic, 3000)
            write(log, payments.topic, 2000)
        assert events.consume_until(3000, timeout=120) == (3000, 3000)
        assert payments.consume_until(2000, timeout=120) == (2000, 2000)
        def counted():
            """both topics' written and delivered counts on the audit cluster"""
            code, rows, _ = audit_home.report()
            totals = [audit_home.totals(rows, topic) for topic in (events.topic, payments.topic)]
            return (code, totals) if [(t["written"], t["delivered"]) for t in totals] == [(3000, 3000),
                                                                                          (2000, 2000)] else None

        code, totals = eventually(counted, timeout=60, interval=2)
        assert code == 0 and [t["missing"] for t in totals] == [0, 0]
    finally:
        for pipeline in (events, payments, audit_home):
            pipeline.close()
