"""Batching: many handlers' single-item requests become one admin request per operation.

A handler awaits `batcher.submit(item)`; the batcher sends what has gathered when `max_items`
are waiting or `max_delay` after the first one, whichever comes first, runs the blocking admin
call in a thread (the event loop never waits on Kafka), and hands each caller its own item's
outcome. One failing item fails only its own caller.
"""

from __future__ import annotations

import asyncio
from typing import Callable, Generic, Hashable, TypeVar

K = TypeVar("K", bound=Hashable)

BatchCall = Callable[[list], dict]  # items -> {key: Exception | None | value}


class Batcher(Generic[K]):
    def __init__(self, call: BatchCall, key: Callable[[object], K] = lambda item: item,
                 max_items: int = 100, max_delay: float = 0.1):
        self.call, self.key = call, key
        self.max_items, self.max_delay = max_items, max_delay
        self.requests_sent = 0  # admin requests, for benchmarks
        self._pending: list[tuple[object, asyncio.Future]] = []
        self._timer: asyncio.TimerHandle | None = None

    async def submit(self, item: object):
        """The item's outcome: its value (None for plain success); its exception is raised."""
        future = asyncio.get_running_loop().create_future()
        self._pending.append((item, future))
        if len(self._pending) >= self.max_items:
            self._flush()
        elif self._timer is None:
            self._timer = asyncio.get_running_loop().call_later(self.max_delay, self._flush)
        outcome = await future
        if isinstance(outcome, Exception):
            raise outcome
        return outcome

    def _flush(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        batch, self._pending = self._pending, []
        if batch:
            asyncio.get_running_loop().create_task(self._send(batch))

    async def _send(self, batch: list[tuple[object, asyncio.Future]]) -> None:
        self.requests_sent += 1
        unique = {self.key(item): item for item, _ in batch}  # two callers, one item: sent once
        try:
            results = await asyncio.to_thread(self.call, list(unique.values()))
        except Exception as error:  # the whole request failed: every caller learns why
            results = {self.key(item): error for item, _ in batch}
        for item, future in batch:
            if not future.done():
                future.set_result(results.get(self.key(item), KeyError(f"no result for {self.key(item)!r}")))
