"""An async Kubernetes client for the hot path of topics, users and ACLs: JSON over one aiohttp
session with a capped connection pool, logged in the way kopf logs in.

Why not the `kubernetes` library here: its calls block, so async handlers would queue on a small
thread pool, and its pool is not shared with anything. Why not kopf's session: kopf has no public
API for arbitrary requests, and it opens an unlimited number of connections (KOPF-AT-SCALE.md).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import aiohttp
import kopf

USER_AGENT = "kafka-usecase-operator"


def user_agent(pod_name: str) -> str:
    """Names the process in the API server's audit log (two replicas: which one did what)."""
    return f"{USER_AGENT} ({pod_name})" if pod_name else USER_AGENT


class ApiError(Exception):
    def __init__(self, status: int, message: str):
        super().__init__(f"{status}: {message}")
        self.status = status


@dataclass(frozen=True)
class Ref:
    """Where an object lives in the API: enough to build its URL."""

    api_version: str
    plural: str
    namespace: str
    name: str

    @property
    def path(self) -> str:
        prefix = "/api/v1" if self.api_version == "v1" else f"/apis/{self.api_version}"
        return f"{prefix}/namespaces/{self.namespace}/{self.plural}/{self.name}"

    @property
    def collection(self) -> str:
        return self.path.rsplit("/", 1)[0]


def connection_info(settings: kopf.OperatorSettings) -> kopf.ConnectionInfo:
    """The same credentials kopf uses: the pod's ServiceAccount, else the current KUBECONFIG."""
    info = kopf.login_with_service_account(settings=settings) or kopf.login_with_kubeconfig(settings=settings)
    if info is None:
        raise kopf.PermanentError("no Kubernetes credentials: neither in a pod nor a KUBECONFIG")
    return info


def capped_session(info: kopf.ConnectionInfo, connections: int, agent: str = USER_AGENT) -> aiohttp.ClientSession:
    """An aiohttp session with at most `connections` connections: what bounds the operator's memory
    when thousands of objects are handled at once."""
    headers = {**info.as_http_headers(), "User-Agent": agent}
    # No total timeout: with the pool capped, a request may wait its turn for a connection for long
    # under a burst, and that wait is not a failure; the socket itself gets 10 s to connect, 60 to answer.
    timeout = aiohttp.ClientTimeout(total=None, connect=None, sock_connect=10, sock_read=60)
    return aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=connections, ssl=info.as_ssl_context()),
                                 headers=headers, timeout=timeout)


class Rest:
    def __init__(self, session: aiohttp.ClientSession, server: str):
        self.session, self.server = session, server.rstrip("/")
        self.requests_sent = 0  # for benchmarks

    async def request(self, method: str, path: str, body: Any = None,
                      content_type: str = "application/json") -> dict | None:
        """The response object; None for 404. Other failures raise ApiError."""
        self.requests_sent += 1
        data = None if body is None else json.dumps(body)
        async with self.session.request(method, self.server + path, data=data,
                                        headers={"Content-Type": content_type}) as response:
            if response.status == 404:
                return None
            text = await response.text()
            if response.status >= 400:
                try:
                    message = json.loads(text).get("message", text)
                except ValueError:
                    message = text
                raise ApiError(response.status, message)
            return json.loads(text) if text else {}

    async def get(self, ref: Ref) -> dict | None:
        return await self.request("GET", ref.path)

    async def create(self, ref: Ref, body: dict) -> dict | None:
        """Create; None if it already exists."""
        try:
            return await self.request("POST", ref.collection, body)
        except ApiError as error:
            if error.status == 409:
                return None
            raise

    async def merge_patch(self, ref: Ref, body: dict, subresource: str = "") -> dict | None:
        return await self.request("PATCH", ref.path + subresource, body, "application/merge-patch+json")

    async def json_patch(self, ref: Ref, operations: list[dict]) -> dict | None:
        return await self.request("PATCH", ref.path, operations, "application/json-patch+json")

    async def add_finalizer(self, ref: Ref, metadata: dict, finalizer: str) -> None:
        """Add `finalizer` to an object as it was read: a concurrent change of its finalizers fails
        the request (a test operation, or the resourceVersion when it had none) instead of being lost."""
        finalizers = list(metadata.get("finalizers") or [])
        if finalizer in finalizers:
            return
        if finalizers:
            await self.json_patch(ref, [{"op": "test", "path": "/metadata/finalizers", "value": finalizers},
                                        {"op": "add", "path": "/metadata/finalizers/-", "value": finalizer}])
        else:
            await self.merge_patch(ref, {"metadata": {"resourceVersion": metadata["resourceVersion"],
                                                      "finalizers": [finalizer]}})
