"""The guard against calling two patients by accident: a quick second "call next" needs a confirmation.

"Call next" finishes the patient just called and calls another, so a double click, a retry
with a fresh key, or the web console and the button box pressed together by one clinician
would send a patient away unseen. Clients take care (one key per intended action, buttons
disabled while a request runs), but no client should be able to do it by accident: when the
same caller calls next in a room within ``window_s`` of their previous call there, the queue
refuses with ``CallNextTooSoon`` unless the request says it is meant (``confirm``).

The memory is the queue core's (one process per SQLite site; per replica on PostgreSQL, where
a load balancer that sends one clinician's two clicks to two replicas escapes it).
"""
from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from protocol.errors import ConflictError


class CallNextTooSoon(ConflictError):
    """A call-next right after the same caller's previous call in the room, not confirmed."""

    def __init__(self, number: str, seconds: float) -> None:
        super().__init__(f"You called {number} here {seconds:.0f} s ago. Calling next now would finish "
                         f"{number} and call someone else: confirm if that is what you mean.")
        self.number = number
        self.seconds = seconds


@dataclass(frozen=True)
class _LastCall:
    by: str
    number: str
    at: float


class CallNextGuard:
    """Remembers each room's last call (who, which ticket, when) and refuses an unconfirmed quick call-next."""

    def __init__(self, window_s: float = 5.0, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.window_s = window_s
        self.clock = clock
        self._last: dict[str, _LastCall] = {}
        self._lock = threading.Lock()

    def check(self, room: str, by: str | None, *, confirm: bool = False) -> None:
        """Raise ``CallNextTooSoon`` if ``by`` called in ``room`` less than ``window_s`` ago (and did not confirm)."""
        if confirm or by is None or self.window_s <= 0:
            return
        with self._lock:
            last = self._last.get(room)
        if last is not None and last.by == by:
            ago = self.clock() - last.at
            if ago < self.window_s:
                raise CallNextTooSoon(last.number, max(ago, 0.0))

    def called(self, room: str, by: str | None, number: str) -> None:
        """Record a call (call-next, a chosen ticket, a recall) made in ``room`` by ``by``."""
        if by is None:
            return
        with self._lock:
            self._last[room] = _LastCall(by, number, self.clock())
