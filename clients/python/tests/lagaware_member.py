"""One lag-aware consumer group member as its own process, for tests that kill it.

    LAGAWARE_CLIENT_CONFIG='{"bootstrap.servers": ...}' python lagaware_member.py TOPIC GROUP NAME SERVICE_MS OUTPUT

Serves each message for SERVICE_MS and appends "unix-time partition key sequence" to OUTPUT (flushed
per line, so a SIGKILL loses nothing already written), and "unix-time partitions" to OUTPUT.held
whenever the partitions it holds change; OUTPUT.coordinator exists while this member is the group's
coordinator. SIGTERM: close() — commit and hand over."""

from __future__ import annotations

import json
import os
import signal
import sys
import threading
import time

from kafka_usecase_clients.lagaware import LagAwareConsumer


def main(topic: str, group: str, name: str, service_ms: str, output: str) -> None:
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    config = json.loads(os.environ["LAGAWARE_CLIENT_CONFIG"])  # not argv: it holds a password
    consumer = LagAwareConsumer(config, topic, group, name=name)
    service = float(service_ms) / 1000
    flag, held = output + ".coordinator", set()
    with open(output, "a", buffering=1) as out, open(output + ".held", "a", buffering=1) as holdings:
        while not stop.is_set():
            if consumer.coordinator.active != os.path.exists(flag):
                open(flag, "w").close() if consumer.coordinator.active else os.remove(flag)
            message = consumer.poll(0.05)
            if consumer.held != held:
                held = set(consumer.held)
                holdings.write(f"{time.time():.6f} {','.join(map(str, sorted(held)))}\n")
            if message is None or message.error():
                continue
            time.sleep(service)
            sequence, _ = json.loads(message.value())
            out.write(f"{time.time():.6f} {message.partition()} {message.key().decode()} {sequence}\n")
            consumer.done(message)
    consumer.close()


if __name__ == "__main__":
    main(*sys.argv[1:])
