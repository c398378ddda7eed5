"""Leader election on a coordination.k8s.io Lease, the way client-go does it, so at most one
operator process acts at a time (two replicas, or the old and the new pod of a rollout).

A candidate takes the Lease when it is free, released, or not renewed for `lease_seconds` as
measured on the candidate's own clock since it last saw the Lease change (clocks of different
machines are never compared). The leader renews every `retry_seconds`; if it cannot renew for
`renew_deadline_seconds` (< lease_seconds) it must stop acting, before anyone may take over.
Every write carries the resourceVersion it was computed from, so two candidates never both win.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone

import aiohttp

from kafka_usecase_operator.kube.rest import ApiError, Ref, Rest

logger = logging.getLogger(__name__)
FAILURES = (ApiError, aiohttp.ClientError, asyncio.TimeoutError, OSError)


def micro_time() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


@dataclass
class LeaderElector:
    rest: Rest
    namespace: str
    name: str
    identity: str
    lease_seconds: float = 15
    renew_deadline_seconds: float = 10
    retry_seconds: float = 2
    clock: Callable[[], float] = time.monotonic
    _seen: tuple = field(default=(), init=False)  # (holder, renewTime) last seen ...
    _seen_at: float = field(default=0.0, init=False)  # ... and when, on our clock

    @property
    def ref(self) -> Ref:
        return Ref("coordination.k8s.io/v1", "leases", self.namespace, self.name)

    async def acquire(self) -> None:
        """Wait until this process holds the Lease."""
        waiting_for = None
        while True:
            try:
                if await self.try_acquire_or_renew():
                    logger.info("Leader election: %s holds lease %s/%s", self.identity, self.namespace, self.name)
                    return
            except FAILURES as error:
                logger.warning("Leader election: cannot read lease %s/%s: %s", self.namespace, self.name, error)
            if self._seen and self._seen[0] != waiting_for:
                waiting_for = self._seen[0]
                logger.info("Leader election: standing by; lease %s/%s is held by %s", self.namespace, self.name,
                            waiting_for)
            await asyncio.sleep(self.retry_seconds)

    async def hold(self) -> None:
        """Renew the Lease; return when it could not be renewed for the renew deadline: leadership is lost."""
        renewed = self.clock()
        while True:
            await asyncio.sleep(self.retry_seconds)
            try:
                if await self.try_acquire_or_renew():
                    renewed = self.clock()
                    continue
            except FAILURES as error:
                logger.warning("Leader election: renewing lease %s/%s failed: %s", self.namespace, self.name, error)
            if self.clock() - renewed > self.renew_deadline_seconds:
                logger.error("Leader election: lease %s/%s lost", self.namespace, self.name)
                return

    async def try_acquire_or_renew(self) -> bool:
        lease = await self.rest.get(self.ref)
        now = micro_time()
        if lease is None:
            created = await self.rest.create(self.ref, {
                "apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
                "metadata": {"name": self.name, "namespace": self.namespace},
                "spec": {"holderIdentity": self.identity, "leaseDurationSeconds": int(self.lease_seconds),
                         "acquireTime": now, "renewTime": now, "leaseTransitions": 0}})
            if created is not None:
                self._observe(created)
            return created is not None
        self._observe(lease)
        spec = lease.get("spec") or {}
        holder = spec.get("holderIdentity") or ""
        if holder and holder != self.identity and self.clock() < self._seen_at + self.lease_seconds:
            return False
        changes = {"holderIdentity": self.identity, "leaseDurationSeconds": int(self.lease_seconds), "renewTime": now}
        if holder != self.identity:
            changes |= {"acquireTime": now, "leaseTransitions": (spec.get("leaseTransitions") or 0) + 1}
        try:
            updated = await self.rest.merge_patch(self.ref, {
                "metadata": {"resourceVersion": lease["metadata"]["resourceVersion"]}, "spec": changes})
        except ApiError as error:
            if error.status == 409:  # another candidate wrote first
                return False
            raise
        self._observe(updated or lease)
        return updated is not None

    async def release(self) -> None:
        """Give the Lease up on a clean stop, so a standby takes over at its next try, not after expiry."""
        try:
            lease = await self.rest.get(self.ref)
            if lease and (lease.get("spec") or {}).get("holderIdentity") == self.identity:
                await self.rest.merge_patch(self.ref, {
                    "metadata": {"resourceVersion": lease["metadata"]["resourceVersion"]},
                    "spec": {"holderIdentity": "", "leaseDurationSeconds": 1, "renewTime": micro_time()}})
                logger.info("Leader election: lease %s/%s released", self.namespace, self.name)
        except FAILURES as error:
            logger.warning("Leader election: could not release lease %s/%s: %s", self.namespace, self.name, error)

    def _observe(self, lease: dict) -> None:
        spec = lease.get("spec") or {}
        seen = (spec.get("holderIdentity") or "", spec.get("renewTime"))
        if seen != self._seen:
            self._seen, self._seen_at = seen, self.clock()
