"""The 2-step logging pieces that need no broker: the segment format, the writer on a local
directory, duplicate counting, and the completeness arithmetic."""

from __future__ import annotations

import random
import signal
import subprocess
import sys
import threading
import time
from collections import Counter

import pytest

from kafka_usecase_clients.twostep import DiskBudgetExceeded, EventLog
from kafka_usecase_clients.twostep.audit import DelayHistogram, SeenSequences, aggregate, render
from kafka_usecase_clients.twostep import forwarder as forwarder_module
from kafka_usecase_clients.twostep.forwarder import Cluster, Routes, bucket_spans
from kafka_usecase_clients.twostep.segment import FILE_HEADER, Corrupt, decode, encode, next_valid
from kafka_usecase_clients.twostep.writer import AUDIT_DIR, AUDIT_TOPIC


def records_in(directory) -> list:
    found = []
    for path in sorted(directory.glob("*.seg")) + sorted(directory.glob("*.open")):
        data = path.read_bytes()
        assert data.startswith(FILE_HEADER)
        records, end = decode(data, len(FILE_HEADER))
        assert end == len(data), f"{path.name}: bytes after the last whole record"
        found += records
    return found


@pytest.mark.unit
def test_a_record_round_trips_with_key_headers_and_unicode():
    data = encode(1700000000123, 7, "orders.ü", b"\x00value", key=b"k", headers=[("h", b"1"), ("empty", b"")])
    data += encode(1700000000124, 8, "t", b"", key=None)
    (first, second), end = decode(data)
    assert end == len(data)
    assert (first.timestamp_ms, first.sequence, first.topic, first.key, first.headers, first.value) == \
        (1700000000123, 7, "orders.ü", b"k", [("h", b"1"), ("empty", b"")], b"\x00value")
    assert (second.key, second.headers, second.value, second.offset) == (None, [], b"", first.end)


@pytest.mark.unit
def test_a_partly_written_record_waits_and_a_corrupt_one_names_where_to_resume():
    good = [encode(1, i, "t", f"event {i}".encode()) for i in range(3)]
    whole = b"".join(good)
    records, end = decode(whole[:-3])
    assert [r.sequence for r in records] == [0, 1] and end == len(good[0]) + len(good[1])

    damaged = bytearray(whole)
    damaged[len(good[0]) + 12] ^= 0xFF  # inside the second record's body
    with pytest.raises(Corrupt) as caught:
        decode(bytes(damaged))
    assert [r.sequence for r in caught.value.records] == [0]
    assert (caught.value.offset, caught.value.resume) == (len(good[0]), len(good[0]) + len(good[1]))
    assert "CRC" in caught.value.why


@pytest.mark.unit
def test_a_damaged_length_stops_decoding_and_the_next_good_record_is_found():
    good = [encode(1, i, "t", f"event {i}".encode()) for i in range(3)]
    damaged = bytearray(b"".join(good))
    damaged[len(good[0]) + 4] = 0x7F  # the second record's length now points past the end (< 16 MiB)
    records, end = decode(bytes(damaged))
    assert [r.sequence for r in records] == [0] and end == len(good[0])
    assert next_valid(bytes(damaged), end) == len(good[0]) + len(good[1])


@pytest.mark.unit
def test_duplicates_are_told_apart_in_any_order_with_few_ranges():
    seen = SeenSequences()
    order = list(range(10_000)) + random.sample(range(10_000), 500)
    random.shuffle(order)
    new = sum(seen.add(n) for n in order)
    assert new == 10_000
    assert (seen.starts, seen.ends) == ([0], [10_000])


@pytest.mark.unit
def test_the_report_counts_missing_and_duplicated_from_the_consumers_distinct_counts():
    bucket = 1_700_000_040
    rows = aggregate([
        {"stage": "written", "source": "w1", "sequence": 0, "topic": "a", "bucket": bucket, "count": 100},
        {"stage": "written", "source": "w2", "sequence": 0, "topic": "a", "bucket": bucket, "count": 50},
        {"stage": "written", "source": "w1", "sequence": 0, "topic": "a", "bucket": bucket, "count": 100},  # sent again
        {"stage": "delivered", "topic": "a", "bucket": bucket, "count": 160},
        {"stage": "consumed", "topic": "a", "bucket": bucket, "count": 158, "distinct": 148},
        {"stage": "written", "source": "w1", "sequence": 1, "topic": "b", "bucket": bucket, "count": 10},
        {"stage": "delivered", "topic": "b", "bucket": bucket, "count": 12},
    ])
    a, b = rows
    assert (a.written, a.delivered, a.consumed, a.missing, a.duplicated) == (150, 160, 158, 2, 10)
    assert (b.has_consumer, b.missing, b.duplicated) == (False, 0, 2)  # no consumer: judged by deliveries
    assert "INCOMPLETE: 2 events missing" in render(rows)


@pytest.mark.unit
def test_delay_percentiles_are_bucket_upper_bounds():
    histogram = DelayHistogram()
    for delay in [3] * 90 + [40] * 9 + [2000]:
        histogram.add(delay)
    assert (histogram.percentile(0.5), histogram.percentile(0.99), histogram.percentile(1.0)) == (5, 50, 2500)


@pytest.mark.unit
def test_routes_pick_the_longest_matching_prefix():
    default, payments, fraud = Cluster("default", {}), Cluster("payments", {}), Cluster("fraud", {})
    routes = Routes(default, [("pay.", payments), ("pay.fraud.", fraud)])
    assert [routes.cluster(t).name for t in ("orders", "pay.card", "pay.fraud.x")] == ["default", "payments", "fraud"]


def test_the_writer_appends_bytes_and_json_rotates_and_closes(tmp_path):
    with EventLog(tmp_path, segment_bytes=4096, fsync="never") as log:
        log.send("orders", b"raw", key="k1")
        log.send("orders", {"id": 1, "name": "ü"}, schema="order/v2")
        for i in range(200):
            log.send("clicks", b"x" * 50)
    assert not list(tmp_path.glob("*.open")), "close() closes the open segment"
    assert len(list(tmp_path.glob("*.seg"))) > 1, "rotated by size"
    records = records_in(tmp_path)
    assert [r.sequence for r in records] == list(range(202))
    raw, json_event = records[:2]
    assert (raw.key, raw.value, raw.headers) == (b"k1", b"raw", [])
    assert json_event.value == '{"id":1,"name":"ü"}'.encode()
    assert json_event.headers == [("content-type", b"application/json"), ("schema", b"order/v2")]
    counts = records_in(tmp_path / AUDIT_DIR)
    assert {r.topic for r in counts} == {AUDIT_TOPIC}
    import json
    totals = {}
    for r in counts:
        count = json.loads(r.value)
        totals[count["topic"]] = totals.get(count["topic"], 0) + count["count"]
    assert totals == {"orders": 2, "clicks": 200}


def test_writers_on_four_threads_never_interleave_records(tmp_path):
    with EventLog(tmp_path, segment_bytes=64 * 1024, fsync="never") as log:
        threads = [threading.Thread(target=lambda n=n: [log.send(f"t{n}", b"v" * 100) for _ in range(2000)])
                   for n in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    records = records_in(tmp_path)
    assert sorted(r.sequence for r in records) == list(range(8000))
    assert {t: sum(r.topic == t for r in records) for t in ("t0", "t1", "t2", "t3")} == dict.fromkeys(
        ("t0", "t1", "t2", "t3"), 2000)


def test_a_full_disk_budget_is_a_clear_error_and_keeps_what_was_written(tmp_path):
    log = EventLog(tmp_path, disk_budget_bytes=20_000, fsync="never")
    sent = 0
    with pytest.raises(DiskBudgetExceeded, match="disk budget of 20000 bytes is used up .* not written"):
        while True:
            log.send("t", b"e" * 100)
            sent += 1
    log.close()
    assert sent > 100 and [r.sequence for r in records_in(tmp_path)] == list(range(sent))


def test_a_blocking_writer_waits_for_the_forwarder_to_free_space(tmp_path):
    log = EventLog(tmp_path, disk_budget_bytes=20_000, segment_bytes=2_000, fsync="never", when_full="block",
                   block_timeout=10)
    record_bytes = len(encode(0, 0, "t", b"e" * 100))
    while log._used + record_bytes <= 20_000:
        log.send("t", b"e" * 100)
    freed = threading.Timer(0.5, lambda: [p.unlink() for p in tmp_path.glob("*.seg")])  # the forwarder's part
    freed.start()
    started = time.monotonic()
    log.send("t", b"e" * 100)
    assert time.monotonic() - started >= 0.4, "send waited for space"
    log.close()


@pytest.mark.unit
def test_counts_by_bisection_equal_counting_one_by_one():
    minute = 1_700_000_040_000
    ordered = [encode(minute - 30_000 + i * 97, i, "a", b"") for i in range(1000)]  # crosses a minute
    mixed = [encode(minute + (i * 7919) % 90_000, i, "ab"[i % 2], b"") for i in range(1000)]
    for chunk in (ordered, mixed):
        records, _ = decode(b"".join(chunk))
        stamps, spans = bucket_spans([r.timestamp_ms for r in records], [r.topic for r in records])
        by_span = {(t, b): hi - lo for t, b, lo, hi in spans}
        one_by_one = Counter((r.topic, r.timestamp_ms - r.timestamp_ms % 60_000) for r in records)
        assert by_span == one_by_one
        now = minute + 100_000
        for topic, bucket, lo, hi in spans:
            fast, slow = DelayHistogram(), DelayHistogram()
            fast.add_sorted(stamps, lo, hi, now)
            for r in records:
                if r.topic == topic and r.timestamp_ms - r.timestamp_ms % 60_000 == bucket:
                    slow.add(now - r.timestamp_ms)
            assert fast.counts == slow.counts


class RecordingProducer:
    """Stands in for confluent-kafka's Producer in pure-code tests of the forwarder's read loop."""

    def __init__(self):
        self.sent = []

    def produce(self, topic, value, key=None, headers=None, timestamp=0):
        self.sent.append((topic, value, key, list(headers), timestamp))

    def __len__(self):
        return 0


def forwarded_by_read_loop(path, monkeypatch, with_c: bool) -> tuple[list, list]:
    """What the forwarder's read loop produces from one segment, and the chunks it cuts."""
    monkeypatch.setattr(forwarder_module, "_scan", forwarder_module._scan if with_c else None)
    forwarder = forwarder_module.Forwarder(path.parent, Routes(Cluster("default", {})))
    producer = RecordingProducer()
    monkeypatch.setattr(forwarder, "_producer", lambda cluster: producer)
    segment = forwarder_module._Segment(path)
    segment.refresh(path)
    chunks = []
    while (chunk := forwarder._send(segment, 1000)) is not None:
        chunks.append((chunk.start, chunk.end, chunk.count, chunk.corrupt))
        segment.sent = chunk.end
    segment.file.close()
    return producer.sent, chunks


@pytest.mark.unit
def test_the_c_read_loop_is_built_here():
    assert forwarder_module._scan is not None, (
        "kafka_usecase_clients.twostep._scan was not compiled (no C compiler at install?): the forwarder "
        "runs at about half speed without it. Reinstall: pip install -e './clients/python[forwarder]'")


@pytest.mark.unit
def test_the_c_and_python_read_loops_send_the_same_events_from_damaged_segments(tmp_path, monkeypatch):
    rng = random.Random(7)
    records = []
    for i in range(3000):
        topic = "orders" if i % 500 < 400 else rng.choice(["orders", "payments", "orders.ü"])
        key = b"k%d" % i if i % 97 == 0 else None
        headers = [("h", b"%d" % i)] if i % 89 == 0 else None
        records.append(encode(1_700_000_000_000 + i, i, topic, rng.randbytes(rng.randrange(0, 300)), key, headers))
    clean = FILE_HEADER + b"".join(records)
    expected = [(r.topic, r.value, r.key, [*r.headers, ("twostep.id", b"w-1:%d" % r.sequence)], r.timestamp_ms)
                for r in decode(clean, len(FILE_HEADER))[0]]
    damaged = {"clean": clean}
    for n in range(12):  # flipped bits anywhere, and a closed segment cut mid-record
        data = bytearray(clean)
        data[rng.randrange(len(FILE_HEADER), len(data))] ^= 1 << rng.randrange(8)
        damaged[f"flip{n}"] = bytes(data)
    damaged["cut"] = clean[:-50]
    for name, data in damaged.items():
        path = tmp_path / f"w-1-{name}.seg"
        path.write_bytes(data)
        in_c = forwarded_by_read_loop(path, monkeypatch, with_c=True)
        in_python = forwarded_by_read_loop(path, monkeypatch, with_c=False)
        assert in_c == in_python, name
        sent, chunks = in_c
        if name == "clean":
            assert sent == expected
        else:  # one damaged record is set aside; every other record is sent, in order
            assert len(sent) == len(expected) - 1 and all(s in expected for s in sent), name
            assert sum(1 for *_, corrupt in chunks if corrupt) == 1, name


def test_sigterm_exits_even_when_the_kafka_client_hangs_in_its_teardown(tmp_path):
    """librdkafka's rd_kafka_destroy can hang on a pending request: the forwarder must still leave
    within its bound after SIGTERM, not hold the pod until it is killed."""
    script = ("import sys, time\n"
              "from kafka_usecase_clients.twostep import forwarder as f\n"
              "f.Forwarder.__init__.__kwdefaults__['shutdown_seconds'] = 0.0\n"
              "f.Forwarder.close = lambda self: time.sleep(3600)  # a teardown that never returns\n"
              "sys.exit(f.main(sys.argv[1:]))\n")
    process = subprocess.Popen([sys.executable, "-c", script, "--dir", str(tmp_path), "--bootstrap-servers",
                                "127.0.0.1:1"], stderr=subprocess.PIPE, text=True)
    try:
        assert "forwarding" in process.stderr.readline()
        signalled = time.monotonic()
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=30) == 0
        assert time.monotonic() - signalled < 15
        assert "shutdown did not finish in 10s" in process.stderr.read()
    finally:
        process.kill()
