"""One lag-aware consumer group member as its own process, for tests that kill it.

    python lagaware_member.py BOOTSTRAP TOPIC GROUP NAME SERVICE_MS OUTPUT

Serves each message for SERVICE_MS and appends "unix-time partition key sequence" to OUTPUT (flushed
per line, so a SIGKILL loses nothing already written); OUTPUT.coordinator exists while this member
is the group's coordinator. SIGTERM: close() — commit and hand over."""

from __future__ import annotations

import json
import os
import signal
import sys
import threading
import time

from kafka_usecase_clients.lagaware import LagAwareConsumer


def main(bootstrap: str, topic: str, group: str, name: str, service_ms: str, output: str) -> None:
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    consumer = LagAwareConsumer({"bootstrap.servers": bootstrap}, topic, group, name=name)
    service = float(service_ms) / 1000
    flag = output + ".coordinator"
    with open(output, "a", buffering=1) as out:
        while not stop.is_set():
            if consumer.coordinator.active != os.path.exists(flag):
                open(flag, "w").close() if consumer.coordinator.active else os.remove(flag)
            message = consumer.poll(0.05)
            if message is None or message.error():
                continue
            time.sleep(service)
            sequence, _ = json.loads(message.value())
            out.write(f"{time.time():.6f} {message.partition()} {message.key().decode()} {sequence}\n")
            consumer.done(message)
    consumer.close()


if __name__ == "__main__":
    main(*sys.argv[1:])
