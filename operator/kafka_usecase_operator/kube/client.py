"""A thin, synchronous Kubernetes client for handlers: server-side apply under one field manager,
reads that return None for "not found", create-if-absent for generated Secrets, status patches."""

from __future__ import annotations

from typing import Any

from kubernetes import config as kube_config
from kubernetes.client import ApiClient
from kubernetes.client.exceptions import ApiException
from kubernetes.dynamic import DynamicClient


def api_client(user_agent: str) -> ApiClient:
    """In a pod: its ServiceAccount; elsewhere: the current KUBECONFIG context."""
    try:
        kube_config.load_incluster_config()
    except kube_config.ConfigException:
        kube_config.load_kube_config()
    client = ApiClient()
    client.user_agent = user_agent
    return client


class Kube:
    def __init__(self, client: ApiClient, field_manager: str):
        self.dynamic = DynamicClient(client)
        self.field_manager = field_manager

    def _resource(self, api_version: str, kind: str):
        return self.dynamic.resources.get(api_version=api_version, kind=kind)

    def apply(self, obj: dict[str, Any]) -> dict[str, Any]:
        """Server-side apply: the operator owns exactly the fields it sets, and takes them back if changed."""
        resource = self._resource(obj["apiVersion"], obj["kind"])
        return resource.server_side_apply(body=obj, namespace=obj["metadata"].get("namespace"),
                                          field_manager=self.field_manager, force_conflicts=True).to_dict()

    def get(self, api_version: str, kind: str, namespace: str, name: str) -> dict[str, Any] | None:
        try:
            return self._resource(api_version, kind).get(name=name, namespace=namespace).to_dict()
        except ApiException as error:
            if error.status == 404:
                return None
            raise

    def list(self, api_version: str, kind: str, namespace: str | None, label_selector: str = "") -> list[dict]:
        found = self._resource(api_version, kind).get(namespace=namespace, label_selector=label_selector)
        return [item.to_dict() for item in found.items]

    def create_if_absent(self, obj: dict[str, Any]) -> dict[str, Any]:
        """Return what exists, or create it (generated Secrets are made once, never replaced).
        Read first: a create is refused in a terminating namespace even when the object exists."""
        resource = self._resource(obj["apiVersion"], obj["kind"])
        name, namespace = obj["metadata"]["name"], obj["metadata"]["namespace"]
        existing = self.get(obj["apiVersion"], obj["kind"], namespace, name)
        if existing is not None:
            return existing
        try:
            return resource.create(body=obj, namespace=namespace).to_dict()
        except ApiException as error:
            if error.status != 409:  # created meanwhile by someone else
                raise
        return resource.get(name=name, namespace=namespace).to_dict()

    def set_owner_references(self, obj: dict[str, Any], references: list[dict]) -> None:
        """Replace `obj`'s ownerReferences (a merge patch replaces a list whole; [] removes them)."""
        metadata = obj["metadata"]
        self._resource(obj["apiVersion"], obj["kind"]).patch(
            body={"metadata": {"ownerReferences": references}}, name=metadata["name"],
            namespace=metadata["namespace"], content_type="application/merge-patch+json")

    def delete(self, api_version: str, kind: str, namespace: str, name: str) -> None:
        """Delete; one already gone is no error."""
        try:
            self._resource(api_version, kind).delete(name=name, namespace=namespace)
        except ApiException as error:
            if error.status != 404:
                raise

    def annotate(self, api_version: str, kind: str, namespace: str, name: str,
                 annotations: dict[str, str | None]) -> None:
        """Set annotations (None removes one)."""
        self._resource(api_version, kind).patch(body={"metadata": {"annotations": annotations}}, name=name,
                                                namespace=namespace, content_type="application/merge-patch+json")

    def patch_status(self, obj: dict[str, Any], status: dict) -> bool:
        """Merge-patch the status of `obj` as it was read: False when the object changed since
        (its resourceVersion moved on: the caller re-reads and recomputes) or was deleted."""
        resource = self._resource(obj["apiVersion"], obj["kind"])
        metadata = obj["metadata"]
        try:
            resource.status.patch(body={"metadata": {"resourceVersion": metadata["resourceVersion"]}, "status": status},
                                  name=metadata["name"], namespace=metadata["namespace"],
                                  content_type="application/merge-patch+json")
        except ApiException as error:
            if error.status in (404, 409):
                return False
            raise
        return True
