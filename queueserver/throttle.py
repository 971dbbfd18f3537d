"""Failed attempts counted per key in a sliding window: the brake on guessing patients' identities.

Phone number + last four ID characters is a small space: without a brake a script at a kiosk
(or with a kiosk token) could walk it. ``FailureThrottle`` remembers when each key (a kiosk, a
phone number) failed; a key with ``limit`` failures inside ``window_s`` is refused until the
oldest of them ages out. State is per process and in memory: a restart forgets it, which
costs an attacker a restart of the hospital's server.
"""
from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable


class FailureThrottle:
    """Sliding-window failure counts per key (thread-safe)."""

    def __init__(self, *, limit: int, window_s: float, clock: Callable[[], float] = time.monotonic,
                 max_keys: int = 10_000) -> None:
        self.limit, self.window_s, self.clock, self.max_keys = limit, window_s, clock, max_keys
        self._failures: dict[str, deque[float]] = {}
        self._lock = threading.Lock()

    def _recent(self, key: str, now: float) -> deque[float]:
        times = self._failures.get(key)
        if times is None:
            return deque()
        while times and times[0] <= now - self.window_s:
            times.popleft()
        if not times:
            del self._failures[key]
        return times

    def retry_after(self, key: str) -> float | None:
        """Seconds until ``key`` may try again, or None if it may now."""
        with self._lock:
            now = self.clock()
            times = self._recent(key, now)
            if len(times) < self.limit:
                return None
            return max(1.0, times[-self.limit] + self.window_s - now)

    def failed(self, key: str) -> bool:
        """Record a failure of ``key``; True when this one reached the limit (alert staff once)."""
        with self._lock:
            now = self.clock()
            times = self._recent(key, now)
            if key not in self._failures:
                if len(self._failures) >= self.max_keys:  # bounded memory under a flood of distinct keys
                    self._failures.pop(next(iter(self._failures)))
                self._failures[key] = times
            times.append(now)
            return len(times) == self.limit

    def forget(self, key: str) -> None:
        """A success: the key's failures no longer count (used per phone, not per kiosk)."""
        with self._lock:
            self._failures.pop(key, None)
