"""Where kopf keeps the last handled state of an object, for change detection.

kopf's default writes it to an annotation: one more PATCH (and one more watch event) per object.
For topics, users and ACLs the operator keeps it in memory instead. After a restart nothing is
remembered, so every object is seen as new and reconciled once: exactly the convergence a
restart needs, and the reconcilers are idempotent. KafkaUseCase keeps kopf's annotation.
"""

from __future__ import annotations

import hashlib
import json

import kopf

from kafka_usecase_operator.api import GROUP
from kafka_usecase_operator.reconcile.context import PLURALS
from kafka_usecase_operator.world import ADOPT, ROTATE

IN_MEMORY_KINDS = frozenset(PLURALS)


class UnmarkedProgressStorage(kopf.AnnotationsProgressStorage):
    """kopf's annotation progress storage, minus the `<prefix>/kopf-managed` marker it adds to
    every object on first success: one more PATCH per object for a marker this operator does not
    need (the in-memory diff-base ignores the progress annotations itself; KafkaUseCase's
    annotation diff-base still writes the marker for its own objects)."""

    def _store_marker(self, *, prefix, patch, body) -> None:  # kopf 1.45's hook, pinned in pyproject
        return


def _digest(essence: kopf.BodyEssence) -> bytes:
    return hashlib.blake2b(json.dumps(essence, sort_keys=True).encode(), digest_size=16).digest()


class InMemoryDiffBase(kopf.DiffBaseStorage):
    def __init__(self, fallback: kopf.DiffBaseStorage):
        super().__init__()
        self.fallback = fallback
        self._digests: dict[str, bytes] = {}  # a digest, not the essence: 10,000 essences are megabytes

    def build(self, *, body: kopf.Body, extra_fields=None) -> kopf.BodyEssence:
        essence = super().build(body=body, extra_fields=extra_fields)
        if body.get("kind") in IN_MEMORY_KINDS:  # kopf's progress annotations are not the user's intent
            annotations = essence.get("metadata", {}).get("annotations", {})
            for key in [k for k in annotations if k.startswith(f"{GROUP}/") and k not in (ADOPT, ROTATE)]:
                del annotations[key]
        return essence

    def fetch(self, *, body: kopf.Body) -> kopf.BodyEssence | None:
        """The current essence if it is the one last handled (no change to handle), else None:
        the reconcilers handle creation and update alike, so what changed does not matter."""
        if body.get("kind") not in IN_MEMORY_KINDS:
            return self.fallback.fetch(body=body)
        essence = self.build(body=body)
        return essence if self._digests.get(body["metadata"]["uid"]) == _digest(essence) else None

    def store(self, *, body: kopf.Body, patch: kopf.Patch, essence: kopf.BodyEssence) -> None:
        if body.get("kind") not in IN_MEMORY_KINDS:
            self.fallback.store(body=body, patch=patch, essence=essence)
            return
        self._digests[body["metadata"]["uid"]] = _digest(essence)

    def forget(self, uid: str) -> None:
        self._digests.pop(uid, None)

    def keep_only(self, uids: set[str]) -> None:
        """Drop what deleted objects left (those deleted without a finalizer are never seen again)."""
        for uid in set(self._digests) - uids:
            del self._digests[uid]
