"""The guard against calling two patients by accident: a quick second "call next" needs a confirmation.

"Call next" finishes the patient just called and calls another, so a double click, a retry
with a fresh key, or the web console and the button box pressed together by one clinician
would send a patient away unseen. Clients take care (one key per intended action, buttons
disabled while a request runs), but no client should be able to do it by accident: when the
same caller calls next in a room within the rules' ``call_next_confirm_s`` of their previous
call there, the queue refuses with ``CallNextTooSoon`` unless the request says it is meant
(``confirm``).

The memory is the queue's, in the process that runs it (one per SQLite site; one per replica
on PostgreSQL, where a load balancer that sends one clinician's two clicks to two replicas
escapes it). A call is remembered inside its transaction, so a second call-next in the same
group commit sees the first.
"""
from __future__ import annotations

import threading
from dataclasses import dataclass
from datetime import datetime

from queueserver.errors import CallNextTooSoon


@dataclass(frozen=True)
class _LastCall:
    by: str
    number: str
    at: datetime


class CallNextGuard:
    """Each room's last call (who, which ticket, when); refuses an unconfirmed quick call-next by the same caller."""

    def __init__(self) -> None:
        self._last: dict[str, _LastCall] = {}
        self._lock = threading.Lock()

    def check(self, room: str, by: str | None, now: datetime, *, window_s: float, confirm: bool = False) -> None:
        """Raise ``CallNextTooSoon`` if ``by`` called in ``room`` less than ``window_s`` before ``now``."""
        if confirm or by is None or window_s <= 0:
            return
        with self._lock:
            last = self._last.get(room)
        if last is None or last.by != by:
            return
        ago = (now - last.at).total_seconds()
        if 0 <= ago < window_s:
            raise CallNextTooSoon(f"You called {last.number} here {ago:.0f} s ago. Calling next now would finish "
                                  f"{last.number} and call someone else: confirm if that is what you mean.")

    def called(self, room: str, by: str | None, number: str, now: datetime) -> None:
        """Remember a call (call-next, a chosen ticket, a recall) that ``by`` made in ``room``."""
        if by is not None:
            with self._lock:
                self._last[room] = _LastCall(by, number, now)
