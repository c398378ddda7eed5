"""A 2-step logging pipeline on a devstack broker, for the tests and the benchmark: a directory,
a fresh topic and audit topic, the forwarder as its own process (as it runs in production), a
consumer that reports what it read, and the completeness report as a user runs it."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
import uuid
from pathlib import Path

from confluent_kafka import Consumer
from confluent_kafka.admin import AdminClient, NewTopic

from kafka_usecase_clients.twostep.audit import ConsumedAudit

BIN = Path(sys.executable).parent


class Pipeline:
    def __init__(self, kafka, tmp: Path, partitions: int = 3, topic_prefix: str = ""):
        self.kafka, self.tmp = kafka, tmp
        self.directory = tmp / "events"
        self.directory.mkdir(parents=True)
        suffix = uuid.uuid4().hex[:6]
        self.topic, self.audit_topic = f"{topic_prefix}twostep-{suffix}", f"twostep-audit-{suffix}"
        admin = AdminClient(kafka.client_config())
        for future in admin.create_topics([NewTopic(self.topic, partitions, -1),
                                           NewTopic(self.audit_topic, 1, -1)]).values():
            future.result(timeout=60)
        self.password_file = tmp / "admin-password"
        self.password_file.write_text(kafka.admin_password)
        self.metrics_port = _free_port()
        self.forwarder: subprocess.Popen | None = None
        self.forwarder_log = tmp / "forwarder.log"
        self.audit = ConsumedAudit(kafka.client_config(), topic=self.audit_topic)
        self.group = f"reader-{suffix}"
        self.consumer: Consumer | None = None  # made at the first read: see consume_until
        self.distinct = self.arrivals = 0  # events read: different ones, and all (duplicates included)

    def credentials(self) -> list[str]:
        return ["--bootstrap-servers", self.kafka.bootstrap_servers, "--sasl-username", self.kafka.admin_user,
                "--sasl-password-file", str(self.password_file)]

    def start_forwarder(self, where: list[str] | None = None) -> None:
        """`where`: the clusters' arguments (default: this pipeline's cluster and audit topic)."""
        assert self.forwarder is None or self.forwarder.poll() is not None, "a forwarder runs already"
        where = where or [*self.credentials(), "--audit-topic", self.audit_topic]
        with open(self.forwarder_log, "ab") as log:
            self.forwarder = subprocess.Popen(
                [str(BIN / "twostep-forwarder"), "--dir", str(self.directory), *where,
                 "--metrics-port", str(self.metrics_port)], stdout=log, stderr=subprocess.STDOUT)

    def kill_forwarder(self, sig: int = signal.SIGKILL) -> int:
        self.forwarder.send_signal(sig)
        try:
            return self.forwarder.wait(timeout=30)
        except subprocess.TimeoutExpired:
            tail = self.forwarder_log.read_text(errors="replace").splitlines()[-20:]
            raise AssertionError(f"the forwarder did not exit within 30 s of signal {sig}; its log ends:\n"
                                 + "\n".join(tail)) from None

    def metrics(self) -> dict[str, float]:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.metrics_port}/metrics", timeout=5) as response:
            lines = response.read().decode().splitlines()
        return {line.rsplit(" ", 1)[0]: float(line.rsplit(" ", 1)[1]) for line in lines if not line.startswith("#")}

    def consume_until(self, distinct: int, timeout: float, quiet: float = 3.0) -> tuple[int, int]:
        """Read until `distinct` different events arrived and nothing more came for `quiet` seconds
        (late duplicates are counted too); returns (distinct, all arrivals)."""
        if self.consumer is None:
            # Not before: a consumer that subscribed, then saw its only broker restart before it
            # ever polled, stays stuck on NOT_COORDINATOR (librdkafka 2.16, reproduced by hand).
            self.consumer = Consumer({**self.kafka.client_config(), "group.id": self.group,
                                      "auto.offset.reset": "earliest", "enable.auto.commit": False, "log_level": 3})
            self.consumer.subscribe([self.topic])
        deadline, last = time.monotonic() + timeout, time.monotonic()
        while time.monotonic() < deadline:
            messages = self.consumer.consume(10_000, 0.5)
            events = [m for m in messages if m.error() is None]  # errors: a broker's restart, reported and retried
            assert not any(m.error().fatal() for m in messages if m.error()), [m.error() for m in messages]
            for message in events:
                self.distinct += self.audit.record(message)  # True the first time an event id is seen
            self.arrivals += len(events)
            if events:
                last = time.monotonic()
            elif self.distinct >= distinct and time.monotonic() - last >= quiet:
                break
        self.audit.flush()
        return self.distinct, self.arrivals

    def report(self) -> tuple[int, list[dict], str]:
        """`twostep-audit report` as a user runs it: (exit code, its JSON rows, its table)."""
        args = [str(BIN / "twostep-audit"), "report", "--since", "1h", *self.credentials(), "--topic",
                self.audit_topic]
        table = subprocess.run(args, capture_output=True, text=True, timeout=120)
        rows = subprocess.run(args + ["--json"], capture_output=True, text=True, timeout=120)
        assert table.returncode in (0, 1), table.stderr
        return rows.returncode, [json.loads(line) for line in rows.stdout.splitlines() if line.strip()], table.stdout

    def totals(self, rows: list[dict], topic: str | None = None) -> dict[str, int]:
        mine = [r for r in rows if r["topic"] == (topic or self.topic)]
        return {k: sum(r[k] or 0 for r in mine) for k in ("written", "delivered", "consumed", "missing", "duplicated")}

    def close(self) -> None:
        if self.forwarder and self.forwarder.poll() is None:
            self.kill_forwarder(signal.SIGTERM)
        if self.consumer is not None:
            self.consumer.close()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True
