"""Where a use case's cluster is, and one executor per cluster.

An in-cluster use case is reached at its bootstrap Service with the admin Secret its status names;
an external one at `spec.external`'s bootstrap servers with that admin Secret. The executor (and
its admin client) is kept while neither the address nor the credentials change; the Secret is
re-read at most every `secret_ttl` seconds, so thousands of objects cost one read.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import time
from dataclasses import dataclass

from kafka_usecase_operator.kafka.confluent import ConfluentKafkaAdmin
from kafka_usecase_operator.kafka.executor import KafkaExecutor
from kafka_usecase_operator.kube.rest import Ref, Rest

IN_CLUSTER_PROTOCOL = "SASL_PLAINTEXT"  # the CLIENT listener, behind the use case's NetworkPolicy
IN_CLUSTER_MECHANISM = "SCRAM-SHA-512"


class ClusterNotReady(Exception):
    """The cluster cannot be used yet (no address, no admin Secret, unreachable): retry later."""


@dataclass(frozen=True)
class Cluster:
    """How clients reach a use case's cluster: what a user's Secret tells its applications."""

    bootstrap_servers: str
    security_protocol: str
    admin_sasl_mechanism: str
    admin_secret: str  # in the use case's namespace
    admin_username: str = ""


def locate(use_case: dict) -> Cluster:
    """Where the cluster of a KafkaUseCase (a snapshot) is, or ClusterNotReady."""
    meta, spec, status = use_case["metadata"], use_case.get("spec") or {}, use_case.get("status") or {}
    where = f"KafkaUseCase {meta['namespace']}/{meta['name']}"
    if meta.get("deletionTimestamp"):
        raise ClusterNotReady(f"{where} is being deleted")
    external = spec.get("external")
    if external:
        return Cluster(external["bootstrapServers"], external.get("securityProtocol", "SASL_SSL"),
                       external.get("saslMechanism", "SCRAM-SHA-512"), external["adminSecretRef"]["name"])
    if not status.get("bootstrapServers") or not status.get("adminSecret"):
        raise ClusterNotReady(f"{where} has no bootstrap address or admin Secret yet")
    return Cluster(status["bootstrapServers"], IN_CLUSTER_PROTOCOL, IN_CLUSTER_MECHANISM, status["adminSecret"])


class Connections:
    def __init__(self, rest: Rest, timeout: float, batch_items: int, batch_delay: float,
                 secret_ttl: float = 60.0):
        self.rest, self.timeout = rest, timeout
        self.batch_items, self.batch_delay, self.secret_ttl = batch_items, batch_delay, secret_ttl
        self._executors: dict[tuple, KafkaExecutor] = {}  # fingerprint -> executor
        self.retired_requests = 0
        self.rebuild_after = 30.0
        self._rebuilt: dict[tuple[str, str], float] = {}
        self._current: dict[tuple[str, str], tuple[float, tuple, Cluster]] = {}  # use case -> (read at, fingerprint, cluster)

    async def connect(self, use_case: dict) -> tuple[KafkaExecutor, Cluster]:
        key = (use_case["metadata"]["namespace"], use_case["metadata"]["name"])
        cluster = locate(use_case)
        cached = self._current.get(key)
        if cached and time.monotonic() - cached[0] < self.secret_ttl and _same_place(cached[2], cluster) \
                and cached[1] in self._executors:
            return self._executors[cached[1]], cached[2]
        username, password = await self._admin_credentials(key[0], cluster.admin_secret)
        cluster = Cluster(cluster.bootstrap_servers, cluster.security_protocol, cluster.admin_sasl_mechanism,
                          cluster.admin_secret, username)
        fingerprint = (cluster.bootstrap_servers, cluster.security_protocol, cluster.admin_sasl_mechanism, username,
                       hashlib.sha256(password.encode()).hexdigest())
        if fingerprint not in self._executors:
            admin = ConfluentKafkaAdmin({
                "bootstrap.servers": cluster.bootstrap_servers, "security.protocol": cluster.security_protocol,
                "sasl.mechanism": cluster.admin_sasl_mechanism, "sasl.username": username, "sasl.password": password},
                self.timeout)
            self._executors[fingerprint] = KafkaExecutor(admin, self.batch_items, self.batch_delay)
        self._current[key] = (time.monotonic(), fingerprint, cluster)
        return self._executors[fingerprint], cluster

    def forget(self, key: tuple[str, str]) -> None:
        """The next connect() builds a new admin client (in-flight calls finish on the old one), at
        most once per `rebuild_after` seconds: under load many calls time out at once, and a new
        client per timeout (a new SCRAM login each) would make the overload worse."""
        if time.monotonic() - self._rebuilt.get(key, float("-inf")) < self.rebuild_after:
            return
        self._rebuilt[key] = time.monotonic()
        cached = self._current.pop(key, None)
        retired = self._executors.pop(cached[1], None) if cached else None
        if retired:
            self.retired_requests += retired.requests_sent
            try:  # closed (off the event loop: it joins a thread) once the calls in flight had their time
                loop = asyncio.get_running_loop()
                loop.call_later(2 * self.timeout + 5, lambda: loop.run_in_executor(None, retired.close))
            except RuntimeError:  # no event loop: nothing is in flight
                retired.close()

    @property
    def admin_requests(self) -> int:
        return self.retired_requests + sum(executor.requests_sent for executor in self._executors.values())

    async def _admin_credentials(self, namespace: str, secret_name: str) -> tuple[str, str]:
        secret = await self.rest.get(Ref("v1", "secrets", namespace, secret_name))
        if secret is None:
            raise ClusterNotReady(f"admin Secret {namespace}/{secret_name} not found")
        data = {k: base64.b64decode(v).decode() for k, v in (secret.get("data") or {}).items()}
        if not data.get("username") or not data.get("password"):
            raise ClusterNotReady(f"admin Secret {namespace}/{secret_name} needs keys username and password")
        return data["username"], data["password"]


def _same_place(a: Cluster, b: Cluster) -> bool:
    return (a.bootstrap_servers, a.security_protocol, a.admin_sasl_mechanism, a.admin_secret) == \
        (b.bootstrap_servers, b.security_protocol, b.admin_sasl_mechanism, b.admin_secret)
