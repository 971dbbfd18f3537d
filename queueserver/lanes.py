"""``RoomLanes``: one room's calling order, kept up to date ticket by ticket.

``rules.order_queue`` defines the order: six lanes (emergency, aged, priority, ordinary,
early, held), each sorted, with the priority and ordinary lanes merged at the priority
ratio. Re-sorting a whole department on every check-in and call costs time linear in the
queue, on the server's hottest path. Here each lane is a sorted list kept with ``bisect``,
so the head of the order (the snapshot's next tickets, who is called next), the count and
any ticket's position cost O(log n), and the merge is arithmetic, not a walk.

A ticket's lane depends on the clock (an appointment's slot starts, a wait passes the ageing
bound, a no-show's hold ends). Each ticket knows the moment that next happens; the lanes
keep the earliest of them and re-sort everything once the clock passes it, which happens
a few times an hour, not on every request. ``tests/test_queue_lanes.py`` checks the lanes
against ``order_queue`` through random insertions, removals, counters and clocks.

Not thread-safe: the owner serialises access (the queue service holds its writer lock).
"""
from __future__ import annotations

from bisect import bisect_left
from collections.abc import Iterable
from datetime import datetime, tzinfo

from queueserver import rules as R
from queueserver.hospital_file import Rules

_BEFORE_MERGE = (R.EMERGENCY, R.AGED)
_AFTER_MERGE = (R.EARLY, R.HELD)


class RoomLanes:
    """The waiting tickets of one room, sorted lane by lane (see the module docstring)."""

    def __init__(self, rules: Rules, tz: tzinfo, tickets: Iterable[R.Waiting] = (), *,
                 now: datetime | None = None) -> None:
        self.rules = rules
        self.tz = tz
        self._tickets: dict[str, R.Waiting] = {}
        self._keys: dict[str, list[tuple]] = {lane: [] for lane in R.LANES}
        self._items: dict[str, list[R.Waiting]] = {lane: [] for lane in R.LANES}
        self._where: dict[str, tuple[str, tuple]] = {}
        self._as_of: datetime | None = None  # the latest moment the lanes were classified at
        self._until: datetime | None = None  # the earliest moment a ticket may change lane
        for t in tickets:
            self._tickets[t.ticket_id] = t
        if self._tickets and now is not None:
            self._reclassify(now)

    def __len__(self) -> int:
        return len(self._tickets)

    def __contains__(self, ticket_id: object) -> bool:
        return ticket_id in self._tickets

    def tickets(self) -> list[R.Waiting]:
        """Every waiting ticket of the room, in no particular order."""
        return list(self._tickets.values())

    # ----------------------------------------------------------------- changes
    def add(self, t: R.Waiting, now: datetime) -> None:
        """Put ``t`` in its lane (replacing an older version of the same ticket)."""
        self._sync(now)
        self.discard(t.ticket_id)
        self._tickets[t.ticket_id] = t
        self._place(t, now)

    def discard(self, ticket_id: str) -> None:
        """Take a ticket out (called, cancelled, moved); unknown ids are ignored."""
        t = self._tickets.pop(ticket_id, None)
        placed = self._where.pop(ticket_id, None)
        if t is None or placed is None:
            return
        lane, key = placed
        keys = self._keys[lane]
        i = bisect_left(keys, key)
        del keys[i]
        del self._items[lane][i]

    def _place(self, t: R.Waiting, now: datetime) -> None:
        lane, key, until = R.classify(t, now, self.rules)
        i = bisect_left(self._keys[lane], key)
        self._keys[lane].insert(i, key)
        self._items[lane].insert(i, t)
        self._where[t.ticket_id] = (lane, key)
        if until is not None and (self._until is None or until < self._until):
            self._until = until

    def _sync(self, now: datetime) -> None:
        """Re-sort if the clock passed a lane change (or went back before the last classification)."""
        if self._as_of is None or now < self._as_of or (self._until is not None and now >= self._until):
            self._reclassify(now)
        else:
            self._as_of = now

    def _reclassify(self, now: datetime) -> None:
        for lane in R.LANES:
            self._keys[lane].clear()
            self._items[lane].clear()
        self._where.clear()
        self._until = None
        self._as_of = now
        placed: dict[str, list[tuple[tuple, R.Waiting]]] = {lane: [] for lane in R.LANES}
        for t in self._tickets.values():
            lane, key, until = R.classify(t, now, self.rules)
            placed[lane].append((key, t))
            self._where[t.ticket_id] = (lane, key)
            if until is not None and (self._until is None or until < self._until):
                self._until = until
        for lane, entries in placed.items():
            entries.sort(key=lambda e: e[0])
            self._keys[lane] = [k for k, _ in entries]
            self._items[lane] = [t for _, t in entries]

    # ------------------------------------------------------------------- order
    def _first_priority_after(self, counter: int) -> int:
        """How many ordinary tickets go before the first priority one (the ratio's turn)."""
        return max(0, self.rules.priority_ratio - counter)

    def top(self, k: int, *, counter: int, now: datetime, explain: bool = True) -> list[R.Placed]:
        """The first ``k`` of the calling order; the first one carries its reason (unless ``explain`` is off)."""
        self._sync(now)
        out: list[R.Placed] = []

        def place(t: R.Waiting, category: str, others_waiting: bool = True) -> None:
            words = "" if out or not explain else R.reason(t, category, now=now, rules=self.rules, tz=self.tz,
                                                            others_waiting=others_waiting)
            out.append(R.Placed(t, category, words))

        for lane in _BEFORE_MERGE:
            for t in self._items[lane][:k - len(out)]:
                place(t, lane)
        priority, ordinary, okeys = self._items[R.PRIORITY], self._items[R.ORDINARY], self._keys[R.ORDINARY]
        pi = oi = 0
        while len(out) < k and (pi < len(priority) or oi < len(ordinary)):
            if pi < len(priority) and (counter >= self.rules.priority_ratio or oi >= len(ordinary)):
                place(priority[pi], R.PRIORITY, others_waiting=oi < len(ordinary))
                pi += 1
                counter = 0
            else:
                place(ordinary[oi], R.ordinary_category(okeys[oi], ordinary[oi]))
                oi += 1
                counter += 1
        for lane in _AFTER_MERGE:
            for t in self._items[lane][:max(0, k - len(out))]:
                place(t, lane)
        return out

    def first(self, *, counter: int, now: datetime) -> R.Placed | None:
        """Who to call now, with the reason (``rules.choose_next``)."""
        head = self.top(1, counter=counter, now=now)
        return R.as_first(head[0], self.tz) if head else None

    def position(self, ticket_id: str, *, counter: int, now: datetime) -> int | None:
        """1-based place of a ticket in the calling order, or None if it is not waiting here."""
        self._sync(now)
        placed = self._where.get(ticket_id)
        if placed is None:
            return None
        lane, key = placed
        i = bisect_left(self._keys[lane], key)
        ahead = sum(len(self._items[ln]) for ln in _BEFORE_MERGE if R.LANES.index(ln) < R.LANES.index(lane))
        p, o = len(self._items[R.PRIORITY]), len(self._items[R.ORDINARY])
        first, ratio = self._first_priority_after(counter), self.rules.priority_ratio
        if lane == R.PRIORITY:
            ahead += i + min(o, first + i * ratio)
        elif lane == R.ORDINARY:
            priorities = 0 if i < first else (p if ratio <= 0 else 1 + (i - first) // ratio)
            ahead += i + min(p, priorities)
        elif lane in _AFTER_MERGE:
            ahead += p + o + (len(self._items[R.EARLY]) if lane == R.HELD else 0) + i
        else:
            ahead += i
        return ahead + 1
