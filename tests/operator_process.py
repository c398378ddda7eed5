"""`kafka-usecase-operator run` as a real process for integration tests: started, health-checked,
killed (SIGKILL, for crash tests) and restarted with the same arguments."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import urllib.request
from pathlib import Path

from waiting import eventually

OPERATOR = str(Path(sys.executable).with_name("kafka-usecase-operator"))


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class OperatorProcess:
    def __init__(self, kubeconfig: Path, namespaces: list[str], log: Path, env: dict[str, str] | None = None):
        self.port = free_port()
        self.log = log
        self.argv = [OPERATOR, "run", "--liveness-port", str(self.port)] + \
            [arg for ns in namespaces for arg in ("--namespace", ns)]
        self.env = {**os.environ, "KUBECONFIG": str(kubeconfig), "KUO_OPERATOR_NAMESPACE": "kafka-system",
                    "KUO_METRICS_PORT": "0", "KUO_KAFKA_TIMEOUT_SECONDS": "10", **(env or {})}
        self.process: subprocess.Popen | None = None

    def start(self) -> OperatorProcess:
        with open(self.log, "ab") as out:
            self.process = subprocess.Popen(self.argv, stdout=out, stderr=subprocess.STDOUT, env=self.env)
        eventually(self._healthy, timeout=60)
        return self

    def _healthy(self) -> bool:
        """the operator's liveness endpoint answers"""
        assert self.process.poll() is None, self.log.read_text()[-3000:]
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/healthz", timeout=1) as response:
                return response.status == 200
        except OSError:
            return False

    def kill(self) -> None:
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=30)

    def stop(self, kill_after: bool = False) -> None:
        """SIGTERM, and 30 s to stop. `kill_after`: then SIGKILL, for runs whose shutdown is not under
        test (an operator refused a watch by RBAC retries it with back-off and stops late)."""
        if self.process and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                if not kill_after:
                    raise
                self.kill()

    def assert_no_traceback(self) -> None:
        text = self.log.read_text()
        assert "Traceback" not in text, text[-5000:]
