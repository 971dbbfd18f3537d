"""Today's aggregate cells, maintained as the day goes: a query folds only the tickets that changed.

``OpenDay`` keeps, for the open day, what each ticket adds to its cell (``aggregate.ticket_cell``)
and the cells' sums and wait histograms. ``refresh`` asks the database for one short fingerprint
per ticket of the day (every column the fold reads, joined in SQL: no row is decoded) and refolds
only the tickets that are new or whose fingerprint changed, and the cells they left or joined;
kiosk events, which are never changed, are read once each by their id. 10,000 tickets: the first
refresh folds them all, a later one reads 10,000 fingerprints and refolds the few changed tickets.

Nothing is hooked into the queue's write path: whatever wrote the tickets (this process, another
replica on the same PostgreSQL, end of day, a late rating) is seen the same way, so the kept cells
are always those a fold from scratch gives (tests/test_dashboard_open_day.py checks it).
"""
from __future__ import annotations

import threading
from collections.abc import Iterable
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import Text, cast, func, select
from sqlalchemy.engine import Connection

from queueserver.hospital_file import Rules
from queueserver.store import tickets
from queueserver.dashboard.aggregate import TICKET_COLUMNS, Folded, HourKey, fold_kiosk, ticket_rows, ticket_cell
from queueserver.dashboard.tables import HOUR_SUMS, kiosk_events

_FOLDED = [c for c in TICKET_COLUMNS if c.name != "ticket_id"]
# One text per ticket of every column the fold reads, made by the database (a JSON array: NULLs kept apart,
# twice as fast on SQLite as joining cast columns); rows are compared, never decoded.
_FINGERPRINT = {"sqlite": func.json_array(*_FOLDED).label("fingerprint"),
                "postgresql": cast(func.json_build_array(*_FOLDED), Text).label("fingerprint")}
_REREAD_ALL = 2000  # more changed tickets than this: read the day's rows in one go rather than by id


class OpenDay:
    """The open day's cells (see the module docstring). Thread-safe; ``refresh`` returns a snapshot."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._reset(None, None)

    def _reset(self, day: str | None, rules: Any) -> None:
        self.day, self._rules = day, rules
        self._seen: dict[str, str] = {}  # ticket id -> fingerprint of the row folded
        self._of: dict[str, HourKey] = {}  # ticket id -> its cell
        self._members: dict[HourKey, dict[str, tuple[tuple[float, ...], int | None]]] = {}
        self._hours: dict[HourKey, dict[str, float]] = {}
        self._waits: dict[HourKey, dict[int, int]] = {}
        self._events: set[str] = set()
        self._kiosk = Folded()
        self.refolded = 0  # tickets folded by the last refresh (the bench and tests read it)

    def refresh(self, conn: Connection, day: str, *, rules: Rules, tz: ZoneInfo) -> Folded:
        """Bring the cells up to ``conn``'s view of ``day``; a new day or new rules start afresh."""
        with self._lock:
            if day != self.day or rules is not self._rules:
                self._reset(day, rules)
            self._refresh_tickets(conn, day, rules, tz)
            self._refresh_kiosk(conn, day, tz)
            return Folded(hours=dict(self._hours), waits=dict(self._waits),
                          kiosk={k: list(v) for k, v in self._kiosk.kiosk.items()})

    def _refresh_tickets(self, conn: Connection, day: str, rules: Rules, tz: ZoneInfo) -> None:
        fingerprint = _FINGERPRINT[conn.dialect.name]
        now: dict[str, str] = dict(conn.execute(select(tickets.c.ticket_id, fingerprint).where(tickets.c.day == day)).tuples().all())
        changed = [tid for tid, fp in now.items() if self._seen.get(tid) != fp]
        gone = [tid for tid in self._seen if tid not in now]
        self.refolded = len(changed)
        dirty: set[HourKey] = set()
        for tid in gone:
            dirty.add(self._drop(tid))
        if changed:
            cond = [tickets.c.day == day]
            if len(changed) <= _REREAD_ALL:
                cond.append(tickets.c.ticket_id.in_(changed))
            self._fold(ticket_rows(conn, cond, extra=[fingerprint]), rules, tz, dirty)
        for key in dirty:
            self._recount(key)

    def _drop(self, tid: str) -> HourKey:
        key = self._of.pop(tid)
        del self._members[key][tid]
        del self._seen[tid]
        return key

    def _fold(self, rows: Iterable[dict[str, Any]], rules: Rules, tz: ZoneInfo, dirty: set[HourKey]) -> None:
        for r in rows:
            tid, fp = r["ticket_id"], r["fingerprint"]
            if self._seen.get(tid) == fp:
                continue  # read again with the whole day, unchanged
            if tid in self._of:
                dirty.add(self._drop(tid))
            key, values, minute = ticket_cell(r, rules=rules, tz=tz)
            self._members.setdefault(key, {})[tid] = (values, minute)
            self._of[tid], self._seen[tid] = key, fp
            dirty.add(key)

    def _recount(self, key: HourKey) -> None:
        """The sums and histogram of one cell from its tickets (a few dozen), replaced, not changed in place."""
        members = self._members.get(key)
        if not members:
            self._members.pop(key, None)
            self._hours.pop(key, None)
            self._waits.pop(key, None)
            return
        sums: list[float] = [0] * len(HOUR_SUMS)
        waits: dict[int, int] = {}
        for values, minute in members.values():
            for i, v in enumerate(values):
                sums[i] += v
            if minute is not None:
                waits[minute] = waits.get(minute, 0) + 1
        self._hours[key] = dict(zip(HOUR_SUMS, sums))
        if waits:
            self._waits[key] = waits
        else:
            self._waits.pop(key, None)

    def _refresh_kiosk(self, conn: Connection, day: str, tz: ZoneInfo) -> None:
        k = kiosk_events
        ids = set(conn.execute(select(k.c.event_id).where(k.c.day == day)).scalars())
        if self._events - ids:  # an event removed (never done by the server): start the day's kiosk cells again
            self._events, self._kiosk = set(), Folded()
        new = ids - self._events
        if not new:
            return
        cond = [k.c.day == day] + ([k.c.event_id.in_(sorted(new))] if len(new) <= _REREAD_ALL else [])
        rows = [r for r in conn.execute(select(k).where(*cond)).mappings() if r["event_id"] in new]
        fold_kiosk(rows, tz=tz, into=self._kiosk)
        self._events |= {r["event_id"] for r in rows}
