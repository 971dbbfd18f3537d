"""Which messages a screen acts on: the one place that decides "new call" versus "seen it".

Rules (issue 4):
- a call event is announced at most once: events are deduplicated by id;
- the room snapshot is the truth, above all the retained one received on every (re)connect:
  call events whose ``seq`` is older than the latest snapshot's ``seq`` are old news and
  never announced (the server publishes a call's snapshot and its event with the same seq);
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
        self._floor: dict[str, int] = {}
        self._lock = threading.Lock()

    def wants(self, room: str) -> bool:
        return self.rooms is None or room in self.rooms

    def accept_state(self, state: RoomState, retained: bool) -> bool:
        """True when ``state`` should be drawn."""
        if not self.wants(state.room):
            return False
        with self._lock:
            # A snapshot delivered on (re)subscription is authoritative even if its seq went back
            # (a server restored from backup); a live one older than what is shown is out of date.
            if not retained and state.seq < self._floor.get(state.room, -1):
                return False
            # Whatever the snapshot shows has happened: events from before it are history.
            self._floor[state.room] = state.seq
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
