"""Conditions as data: pure functions, so `Ready` can be computed and tested without a cluster.

`lastTransitionTime` changes only when a condition's status changes (kstatus, cert-manager)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone


@dataclass(frozen=True)
class Observed:
    """One condition as the operator observed it now."""

    type: str
    status: bool
    reason: str
    message: str = ""


def now() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def merge(previous: list[dict], observed: list[Observed], generation: int | None, timestamp: str) -> list[dict]:
    """The new condition list: observed ones replace their type, others are kept as they were."""
    by_type = {c.get("type"): c for c in previous or []}
    for item in observed:
        status = "True" if item.status else "False"
        old = by_type.get(item.type)
        changed = old is None or old.get("status") != status
        by_type[item.type] = {
            "type": item.type, "status": status, "reason": item.reason, "message": item.message,
            "lastTransitionTime": timestamp if changed else old.get("lastTransitionTime", timestamp),
            "observedGeneration": generation,
        }
    ready_first = sorted(by_type.values(), key=lambda c: (c["type"] != "Ready", c["type"]))
    return ready_first
