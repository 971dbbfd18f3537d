"""Which messages a screen acts on: the one place that decides "new", "old news" and "not ours".

Rules (``docs/protocol.md``, "Order, epochs and removed rooms"):
- rooms this screen is not configured for are not ours (a hall board with no rooms: every room);
- a call event is acted on at most once: events are deduplicated by id;
- per room, messages are ordered by (epoch, seq). The epoch is the server's store generation:
  a message of another epoch than the one shown means the store was replaced (a restore, a new
  database) and its seq counts afresh, so it is taken as the new truth;
- within an epoch a lower seq is out of date and ignored, with two exceptions so that no single
  message can silence a room: the retained snapshot received on (re)subscription is the broker's
  current truth and always taken, and a lower seq that arrives more than ``reorder_window``
  seconds after the message that set the floor is the server's real order (the floor was wrong);
- a seq more than ``MAX_SEQ_JUMP`` ahead of the shown one within the same epoch is not believed
  (no server changes one room that often between two snapshots): logged and dropped;
- a removed room (empty retained payload) is forgotten: its next snapshot starts afresh.
Thread-safe: the MQTT thread calls it, the UI thread never needs to.
"""
from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

from protocol.payloads import CallEvent, RoomState

MAX_SEQ_JUMP = 100_000
REORDER_WINDOW_S = 2.0
"""Replicas of the server publish the same room from separate connections, so two snapshots a
few milliseconds apart can arrive swapped; a message late by more than this is not a swap."""


@dataclass(frozen=True)
class Verdict:
    """The gate's answer: ``ok`` to act on the message, else ``reason`` says why it was ignored."""

    ok: bool
    reason: str = ""
    suspicious: bool = False
    """Dropped as implausible (logged as a warning and counted), not just old news."""

    def __bool__(self) -> bool:
        return self.ok


_NEW = Verdict(True)


@dataclass
class _Floor:
    epoch: str
    seq: int
    at: float  # monotonic time the message that set it arrived


class CallGate:
    """Decides which room snapshots to show and which call events to act on."""

    def __init__(self, rooms: set[str] | None = None, *, remember: int = 2000,
                 reorder_window: float = REORDER_WINDOW_S, clock: Callable[[], float] = time.monotonic) -> None:
        self.rooms = rooms  # None: every room of the site
        self.reorder_window = reorder_window
        self._remember = remember
        self._clock = clock
        self._seen: OrderedDict[str, None] = OrderedDict()
        self._floor: dict[str, _Floor] = {}
        self._lock = threading.Lock()

    def wants(self, room: str) -> bool:
        return self.rooms is None or room in self.rooms

    def accept_state(self, state: RoomState, retained: bool) -> Verdict:
        """Whether ``state`` should be drawn (and then it sets the room's floor)."""
        if not self.wants(state.room):
            return Verdict(False, f"room {state.room} is not shown on this screen", suspicious=True)
        with self._lock:
            verdict = _NEW if retained else self._order(state.room, state.epoch, state.seq)
            if verdict:
                # Whatever the snapshot shows has happened: events from before it are history.
                self._floor[state.room] = _Floor(state.epoch, state.seq, self._clock())
            return verdict

    def accept_call(self, event: CallEvent) -> Verdict:
        """Whether ``event`` is a call not yet seen and not older than what the room shows."""
        if not self.wants(event.room):
            return Verdict(False, f"room {event.room} is not shown on this screen", suspicious=True)
        with self._lock:
            if event.id in self._seen:
                return Verdict(False, "already seen")
            verdict = self._order(event.room, event.epoch, event.seq)
            if verdict.suspicious:  # not remembered: the real event with this id may still come
                return verdict
            self._seen[event.id] = None
            while len(self._seen) > self._remember:
                self._seen.popitem(last=False)
            return verdict

    def forget_room(self, room: str) -> None:
        """The room was removed from the site: nothing about it is remembered."""
        with self._lock:
            self._floor.pop(room, None)

    def _order(self, room: str, epoch: str, seq: int) -> Verdict:
        floor = self._floor.get(room)
        if floor is None or floor.epoch != epoch:
            return _NEW
        if seq - floor.seq > MAX_SEQ_JUMP:
            return Verdict(False, f"seq {seq} jumps more than {MAX_SEQ_JUMP} past {floor.seq}", suspicious=True)
        if seq >= floor.seq:
            return _NEW
        if self._clock() - floor.at > self.reorder_window:
            return _NEW  # nothing the server sent since agrees with the floor: it was wrong
        return Verdict(False, f"seq {seq} is older than the shown {floor.seq}")
