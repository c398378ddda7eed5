"""Synchronous calls for the use-case handlers, over the operator's one Kubernetes client.

kopf runs sync handlers in worker threads; these calls hand each request to the event loop's
client (kube/rest.py: one aiohttp session, kopf's credentials, a capped pool) and wait for it. So
the use-case side and the topic side share one connection pool and one set of credentials, and
no API discovery is needed: the kinds the operator writes are known.

Server-side apply under one field manager, reads that return None for "not found",
create-if-absent for generated Secrets, status patches guarded by resourceVersion.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
from typing import Any
from urllib.parse import urlencode

import kopf

from kafka_usecase_operator.kube.rest import ApiError, Ref, Rest

PLURALS = {
    "ConfigMap": "configmaps", "Secret": "secrets", "Service": "services", "Pod": "pods",
    "StatefulSet": "statefulsets", "PodDisruptionBudget": "poddisruptionbudgets", "NetworkPolicy": "networkpolicies",
    "KafkaUseCase": "kafkausecases", "KafkaTopic": "kafkatopics", "KafkaUser": "kafkausers", "KafkaAcl": "kafkaacls",
}


def ref(api_version: str, kind: str, namespace: str | None, name: str = "") -> Ref:
    return Ref(api_version, PLURALS[kind], namespace or "", name)


def collection(api_version: str, kind: str, namespace: str | None) -> str:
    """A collection's path: in one namespace, or across all of them."""
    if namespace:
        return ref(api_version, kind, namespace).collection
    prefix = "/api/v1" if api_version == "v1" else f"/apis/{api_version}"
    return f"{prefix}/{PLURALS[kind]}"


class Kube:
    def __init__(self, rest: Rest, loop: asyncio.AbstractEventLoop, field_manager: str):
        self.rest, self.loop, self.field_manager = rest, loop, field_manager

    def _call(self, method: str, path: str, body: Any = None, content_type: str = "application/json") -> dict | None:
        """One request on the event loop's client; never call this from the event loop's own thread."""
        try:
            return asyncio.run_coroutine_threadsafe(self.rest.request(method, path, body, content_type),
                                                    self.loop).result()
        except (RuntimeError, concurrent.futures.CancelledError):  # the session or loop closed, the task cancelled
            if not (self.rest.session.closed or self.loop.is_closed() or not self.loop.is_running()):
                raise
            # A handler thread kopf left running at shutdown: no traceback, and the next leader takes over.
            raise kopf.TemporaryError("the operator is stopping") from None

    def apply(self, obj: dict[str, Any]) -> dict[str, Any]:
        """Server-side apply: the operator owns exactly the fields it sets, and takes them back if changed."""
        target = ref(obj["apiVersion"], obj["kind"], obj["metadata"].get("namespace"), obj["metadata"]["name"])
        query = urlencode({"fieldManager": self.field_manager, "force": "true"})
        return self._call("PATCH", f"{target.path}?{query}", obj, "application/apply-patch+yaml")

    def get(self, api_version: str, kind: str, namespace: str, name: str) -> dict[str, Any] | None:
        return self._call("GET", ref(api_version, kind, namespace, name).path)

    def list(self, api_version: str, kind: str, namespace: str | None, label_selector: str = "") -> list[dict]:
        """The items, each with its apiVersion and kind (a list response leaves them out)."""
        query = f"?{urlencode({'labelSelector': label_selector})}" if label_selector else ""
        found = self._call("GET", collection(api_version, kind, namespace) + query) or {}
        return [{"apiVersion": api_version, "kind": kind, **item} for item in found.get("items") or []]

    def create_if_absent(self, obj: dict[str, Any]) -> dict[str, Any]:
        """Return what exists, or create it (generated Secrets are made once, never replaced).
        Read first: a create is refused in a terminating namespace even when the object exists."""
        api_version, kind, metadata = obj["apiVersion"], obj["kind"], obj["metadata"]
        existing = self.get(api_version, kind, metadata["namespace"], metadata["name"])
        if existing is not None:
            return existing
        try:
            return self._call("POST", ref(api_version, kind, metadata["namespace"]).collection, obj)
        except ApiError as error:
            if error.status != 409:  # created meanwhile by someone else
                raise
        return self.get(api_version, kind, metadata["namespace"], metadata["name"])

    def set_owner_references(self, obj: dict[str, Any], references: list[dict]) -> None:
        """Replace `obj`'s ownerReferences (a merge patch replaces a list whole; [] removes them)."""
        metadata = obj["metadata"]
        self._merge_patch(ref(obj["apiVersion"], obj["kind"], metadata["namespace"], metadata["name"]).path,
                          {"metadata": {"ownerReferences": references}})

    def delete(self, api_version: str, kind: str, namespace: str, name: str) -> None:
        """Delete; one already gone is no error."""
        self._call("DELETE", ref(api_version, kind, namespace, name).path)

    def annotate(self, api_version: str, kind: str, namespace: str, name: str,
                 annotations: dict[str, str | None]) -> None:
        """Set annotations (None removes one)."""
        self._merge_patch(ref(api_version, kind, namespace, name).path, {"metadata": {"annotations": annotations}})

    def patch_status(self, obj: dict[str, Any], status: dict) -> bool:
        """Merge-patch the status of `obj` as it was read: False when the object changed since
        (its resourceVersion moved on: the caller re-reads and recomputes) or was deleted."""
        metadata = obj["metadata"]
        path = ref(obj["apiVersion"], obj["kind"], metadata["namespace"], metadata["name"]).path + "/status"
        try:
            found = self._merge_patch(path, {"metadata": {"resourceVersion": metadata["resourceVersion"]},
                                             "status": status})
        except ApiError as error:
            if error.status == 409:
                return False
            raise
        return found is not None  # None: deleted

    def _merge_patch(self, path: str, body: dict) -> dict | None:
        return self._call("PATCH", path, body, "application/merge-patch+json")

