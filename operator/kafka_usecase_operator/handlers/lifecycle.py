"""Start-up wires things once: kopf settings, the settings object, the Kubernetes clients (kopf's
and ours, each with a capped connection pool; ours also serves the sync use-case handlers), the
Kafka connections and the metrics endpoint."""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging

import kopf
from prometheus_client import Gauge, start_http_server

from kafka_usecase_operator.api import GROUP
from kafka_usecase_operator.handlers.diffbase import InMemoryDiffBase, UnmarkedProgressStorage
from kafka_usecase_operator.kafka.connections import Connections
from kafka_usecase_operator.kube.client import Kube
from kafka_usecase_operator.kube.rest import Rest, capped_session, connection_info, user_agent
from kafka_usecase_operator.reconcile.context import Context, NamespaceLabels
from kafka_usecase_operator.settings import OperatorSettings
from kafka_usecase_operator.world import FINALIZER

ADMIN_REQUESTS = Gauge("kuo_kafka_admin_requests", "Admin requests sent to Kafka clusters since start")
API_REQUESTS = Gauge("kuo_api_requests", "Requests to the API server sent by the operator's own client "
                                         "(kopf's watches and patches not included)")


@kopf.on.startup()
async def configure(settings: kopf.OperatorSettings, memo: kopf.Memo, **_) -> None:
    # Progress and KafkaUseCase diff-bases live in annotations of our own prefix: the CRDs' status
    # schemas are strict, and a pruned status.kopf would make kopf re-detect creation forever.
    settings.persistence.progress_storage = UnmarkedProgressStorage(prefix=GROUP)
    memo.diffbase = InMemoryDiffBase(kopf.AnnotationsDiffBaseStorage(prefix=GROUP))
    settings.persistence.diffbase_storage = memo.diffbase
    settings.persistence.finalizer = FINALIZER
    settings.posting.level = logging.WARNING  # Events for warnings and up; handlers post the rest explicitly
    settings.watching.server_timeout = 300
    settings.scanning.disabled = True  # the four kinds are known: no cluster-wide watch of CRDs to need RBAC for
    if "settings" not in memo:  # `kafka-usecase-operator run` passes them, with its command-line options
        memo.settings = OperatorSettings.from_env()
    # Batches and per-principal ACL reads wait on Kafka in threads; the default pool (cores + 4) is small.
    asyncio.get_running_loop().set_default_executor(concurrent.futures.ThreadPoolExecutor(16, "kafka-admin"))
    agent = user_agent(memo.settings.pod_name)
    info = connection_info(settings)
    rest = Rest(capped_session(info, memo.settings.api_connections, agent), info.server)
    memo.kube = Kube(rest, asyncio.get_running_loop(), memo.settings.field_manager)  # the same client, for sync handlers
    connections = Connections(rest, memo.settings.kafka_timeout_seconds, memo.settings.batch_max_items,
                              memo.settings.batch_max_delay)
    memo.ctx = Context(rest, connections, memo.settings, NamespaceLabels(rest))
    if memo.settings.metrics_port:
        ADMIN_REQUESTS.set_function(lambda: connections.admin_requests)
        API_REQUESTS.set_function(lambda: rest.requests_sent)
        start_http_server(memo.settings.metrics_port)


# The kinds kopf watches (the four custom kinds, StatefulSets and Pods): one watch stream each,
# cluster-wide or per watched namespace. A unit test keeps this equal to what the handlers register.
WATCHED_RESOURCES = 6


def kopf_connections(settings: OperatorSettings) -> int:
    """Every watch stream holds a connection for as long as it runs: the cap is on top of them.
    (Capped at api_connections alone, 4 namespaces x 6 kinds starved the last streams and the
    requests: the operator stopped handling anything, found by the Helm e2e.)"""
    return WATCHED_RESOURCES * max(1, len(settings.namespaces)) + settings.api_connections


@kopf.on.login()
async def login(settings: kopf.OperatorSettings, memo: kopf.Memo, **_) -> kopf.AiohttpSession:
    """kopf's own session, capped: its default pool is unlimited, and at thousands of objects the
    connections alone decide whether the operator stays small."""
    ours = memo.settings if "settings" in memo else OperatorSettings.from_env()
    info = connection_info(settings)
    session = capped_session(info, kopf_connections(ours), user_agent(ours.pod_name))
    return kopf.AiohttpSession(server=info.server, default_namespace=info.default_namespace, aiohttp_session=session)


@kopf.on.cleanup()
async def close(memo: kopf.Memo, **_) -> None:
    if "ctx" in memo:
        await memo.ctx.rest.session.close()
