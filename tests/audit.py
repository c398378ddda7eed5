"""Reading the devstack API server's audit log: what a user was refused (HTTP 403), from the
server's own record rather than the client's log, which a log level could silence."""

from __future__ import annotations

import json
import re
import time
from dataclasses import dataclass
from pathlib import Path

FLUSH_SECONDS = 2.5  # the devstack writes the log in batches, at most 1 s apart


@dataclass(frozen=True)
class Denial:
    verb: str
    group: str
    resource: str  # with its subresource: "kafkatopics/status"
    namespace: str

    def __str__(self) -> str:
        return f"{self.verb} {self.resource}{'.' + self.group if self.group else ''} in {self.namespace or '(cluster)'}"


class AuditLog:
    def __init__(self, path: Path):
        self.path = path

    def mark(self) -> int:
        """A position: denials() reads only what was logged after it."""
        return self.path.stat().st_size if self.path.exists() else 0

    def denials(self, user: str, since: int) -> set[Denial]:
        found = set()
        for event in self._events(user, since):
            if event.get("responseStatus", {}).get("code") != 403:
                continue
            # RBAC's refusal names the verb it refused: a server-side apply of a new object is a
            # patch refused for "create". (A 403 without it, e.g. "namespace is being terminated",
            # is not about permissions.)
            refused = re.search(r"cannot (\w+) resource", event["responseStatus"].get("message", ""))
            if not refused:
                continue
            ref = event.get("objectRef", {})
            resource = ref.get("resource", "") + (f"/{ref['subresource']}" if ref.get("subresource") else "")
            found.add(Denial(refused.group(1), ref.get("apiGroup", ""), resource, ref.get("namespace", "")))
        return found

    def requests(self, user: str, since: int, user_agent: str = "") -> list[dict]:
        """Every request of `user` (optionally only those whose User-Agent contains `user_agent`)."""
        return [e for e in self._events(user, since) if user_agent in e.get("userAgent", "")]

    def _events(self, user: str, since: int) -> list[dict]:
        time.sleep(FLUSH_SECONDS)
        with open(self.path, "rb") as log:
            log.seek(since)
            events = [json.loads(line) for line in log]
        return [e for e in events if e.get("user", {}).get("username") == user]
