"""Which messages a screen acts on: the one place that decides "new call" versus "seen it".

Rules (issue 4):
- a call event is announced at most once: events are deduplicated by id;
- after every (re)connect the retained room snapshot is the truth: call events whose
  ``seq`` is older than that snapshot's ``seq`` are old news and never announced;
- a live (not retained) snapshot older than one already shown is out of date and ignored;
- rooms this screen does not show are ignored.
Thread-safe: the MQTT thread calls it, the UI thread never needs to.
"""
from __future__ import annotations

import threading
from collections import OrderedDict

from protocol.payloads import CallEvent, RoomState


class CallGate:
    """Decides which room snapshots to show and which call events to announce."""

    def __init__(self, rooms: set[str] | None = None, *, remember: int = 2000) -> None:
        self.rooms = rooms  # None: every room of the site (hall boards)
        self._remember = remember
        self._seen: OrderedDict[str, None] = OrderedDict()
        self._shown_seq: dict[str, int] = {}
        self._floor: dict[str, int] = {}
        self._lock = threading.Lock()

    def wants(self, room: str) -> bool:
        return self.rooms is None or room in self.rooms

    def accept_state(self, state: RoomState, retained: bool) -> bool:
        """True when ``state`` should be drawn."""
        if not self.wants(state.room):
            return False
        with self._lock:
            if retained:
                # A snapshot delivered on (re)subscription: authoritative, even if the seq went back
                # (a server restored from backup); events before it are history.
                self._floor[state.room] = state.seq
            elif state.seq < self._shown_seq.get(state.room, -1):
                return False
            self._shown_seq[state.room] = state.seq
            return True

    def accept_call(self, event: CallEvent) -> bool:
        """True exactly once per new call event that should be shown and announced."""
        if not self.wants(event.room):
            return False
        with self._lock:
            if event.id in self._seen:
                return False
            self._seen[event.id] = None
            while len(self._seen) > self._remember:
                self._seen.popitem(last=False)
            return event.seq >= self._floor.get(event.room, -1)
