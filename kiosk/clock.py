"""Timers for view-models: Kivy's clock in the app, a manual clock in tests.

``schedule(delay, fn)`` returns a cancel function. ``ManualClock.advance(seconds)`` runs
whatever became due, so idle timeouts, retries and QR countdowns are tested without sleeping.
"""
from __future__ import annotations

import heapq
import itertools
from typing import Callable, Protocol

Cancel = Callable[[], None]


class Scheduler(Protocol):
    def schedule(self, delay: float, fn: Callable[[], None]) -> Cancel: ...

    def now(self) -> float: ...


class KivyScheduler:
    """Schedules on Kivy's main-thread clock."""

    def schedule(self, delay: float, fn: Callable[[], None]) -> Cancel:
        from kivy.clock import Clock

        ev = Clock.schedule_once(lambda _dt: fn(), delay)
        return ev.cancel

    def now(self) -> float:
        import time

        return time.monotonic()


class ManualClock:
    """A clock that only moves when told to (tests)."""

    def __init__(self) -> None:
        self._t = 0.0
        self._heap: list[tuple[float, int, Callable[[], None]]] = []
        self._seq = itertools.count()
        self._cancelled: set[int] = set()

    def now(self) -> float:
        return self._t

    def schedule(self, delay: float, fn: Callable[[], None]) -> Cancel:
        n = next(self._seq)
        heapq.heappush(self._heap, (self._t + delay, n, fn))
        return lambda: self._cancelled.add(n)

    def advance(self, seconds: float) -> None:
        end = self._t + seconds
        while self._heap and self._heap[0][0] <= end:
            when, n, fn = heapq.heappop(self._heap)
            self._t = max(self._t, when)
            if n not in self._cancelled:
                fn()
        self._t = end

    @property
    def pending(self) -> int:
        return sum(1 for _, n, _ in self._heap if n not in self._cancelled)
