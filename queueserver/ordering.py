"""``Ordering``: every room's calling order (``RoomLanes``), kept in memory across operations.

Writes are one at a time (the store's writer lock; on PostgreSQL also across replicas), so
the calling order of every room is kept in memory, changed inside each transaction under
that lock, and dropped (rebuilt from the database) when a transaction rolls back.

On PostgreSQL another replica may have written since this one last did. Each write records
the tickets it changed in the change log (``qs_changes``, one INSERT per write transaction,
that is per group commit); when a write turn starts, or a read needs the lists, ``refresh``
reads the log past the last entry this cache applied and re-reads only those tickets. The
cache is kept, never rebuilt per operation; a change of many tickets at once (end of day)
logs one entry that makes every replica rebuild.
"""
from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from datetime import datetime
from types import SimpleNamespace
from typing import Any

from sqlalchemy import and_, bindparam, func, insert, or_, select
from sqlalchemy.engine import Connection

from queueserver.context import QueueContext, waiting
from queueserver.hospital_file import Room
from queueserver.lanes import RoomLanes
from queueserver.store import Tx, changes, tickets

Changed = set[str] | dict[str, Any]  # tickets a change touched: ids to read back, or id -> row now (None: gone)

WAIT_COLUMNS = [tickets.c[name] for name in (
    "ticket_id", "number", "arrived_at", "number_seq", "slot_start", "slot_end", "emergency", "priority",
    "is_returning", "front_reason", "not_before", "masked_name", "room", "department")]
_Q_LOG = select(changes.c.id, changes.c.ticket_id).where(changes.c.id > bindparam("after")).order_by(changes.c.id)
_Q_OVERLAY = select(*WAIT_COLUMNS, tickets.c.status, tickets.c.day).where(
    tickets.c.ticket_id.in_(bindparam("ids", expanding=True)))


class Ordering:
    """The calling order of the site's rooms (see the module docstring)."""

    def __init__(self, ctx: QueueContext) -> None:
        self.ctx = ctx
        self.shared = not ctx.store.is_sqlite  # other replicas may write to the same database
        self._lanes: dict[str, RoomLanes] | None = None
        self._day: str | None = None
        self._rooms_of: dict[str, tuple[str, ...]] = {}
        self._applied = 0  # PostgreSQL: the last change-log entry this cache reflects
        self._logged: set[str] = set()  # tickets this write transaction changed, to log at its end
        self._log_reload = False  # this write transaction changed too many tickets to list
        if self.shared:
            ctx.store.on_write_start(self.refresh)
            ctx.store.on_write_end(self._write_log)

    def load(self, conn: Connection, for_rooms: list[Room], day: str) -> dict[str, list[Any]]:
        """The waiting tickets of several rooms from the database (only the columns the rules need)."""
        depts = sorted({d for r in for_rooms for d in r.departments})
        q = select(*WAIT_COLUMNS).where(
            tickets.c.status == "waiting", tickets.c.day == day,
            or_(tickets.c.room.in_([r.id for r in for_rooms]),
                and_(tickets.c.room.is_(None), tickets.c.department.in_(depts))),
        )
        out: dict[str, list[Any]] = {r.id: [] for r in for_rooms}
        for row in conn.execute(q).all():  # plain rows: attribute access is cheaper than mappings
            for r in for_rooms:
                if row.room == r.id or (row.room is None and row.department in r.departments):
                    out[r.id].append(row)
        return out

    def rooms_of_ticket(self, row: Any) -> tuple[str, ...]:
        """The rooms whose queue a waiting ticket is in: its own room, or every room of its department."""
        hospital = self.ctx.hospital
        if row.room is not None:
            return (row.room,) if hospital.room(row.room) is not None else ()
        return tuple(r.id for r in hospital.rooms_for(row.department))

    def lanes_for(self, conn: Connection, for_rooms: list[Room], day: str, now: datetime) -> dict[str, RoomLanes]:
        """The calling order of these rooms (built from the database on first use and at a new day)."""
        if self._lanes is None or self._day != day:
            self._build(conn, day, now)
        kept = self._lanes
        assert kept is not None
        return {r.id: kept[r.id] for r in for_rooms}

    def _build(self, conn: Connection, day: str, now: datetime) -> None:
        ctx = self.ctx
        applied = self._last_logged(conn) if self.shared else 0  # first: what is read next is at least as new
        rows = conn.execute(select(*WAIT_COLUMNS).where(tickets.c.status == "waiting",
                                                        tickets.c.day == day)).all()
        lanes = {r.id: RoomLanes(ctx.rules, ctx.tz) for r in ctx.hospital.rooms}
        self._rooms_of = {}
        for row in rows:
            self._rooms_of[row.ticket_id] = self.rooms_of_ticket(row)
            for rid in self._rooms_of[row.ticket_id]:
                lanes[rid].add(waiting(row), now)
        self._lanes, self._day, self._applied = lanes, day, applied

    @staticmethod
    def _last_logged(conn: Connection) -> int:
        return conn.execute(select(func.coalesce(func.max(changes.c.id), 0))).scalar_one()  # type: ignore[no-any-return]

    def refresh(self, conn: Connection) -> None:
        """Apply the other replicas' changes logged since this cache was last brought up to date (PostgreSQL).

        Called when a write turn starts (the writer lock is held: nobody writes meanwhile) or
        before a read (the log is read before the tickets, so what is applied is at least as new).
        """
        self._logged, self._log_reload = set(), False
        if self._lanes is None:
            return
        entries = conn.execute(_Q_LOG, {"after": self._applied}).all()
        if not entries:
            return
        if any(e.ticket_id is None for e in entries):
            self.drop()  # rebuilt on next use, from this transaction's view
            return
        self._applied = entries[-1].id
        assert self._day is not None
        self._overlay(conn, {e.ticket_id for e in entries}, self._day, self.ctx.clock())

    def _write_log(self, conn: Connection) -> None:
        """At the end of a write transaction: log the tickets it changed (one statement) for the other replicas."""
        logged, reload = self._logged, self._log_reload
        self._logged, self._log_reload = set(), False
        if not logged and not reload:
            return
        values = [{"ticket_id": None}] if reload else [{"ticket_id": tid} for tid in sorted(logged)]
        last = max(conn.execute(insert(changes).returning(changes.c.id), values).scalars().all())
        if self._lanes is not None and not reload:
            self._applied = last  # ours are in the cache already; others' came before (read at the turn's start)

    def changed_everything(self) -> None:
        """Many tickets changed at once (end of day): this cache is dropped, and other replicas rebuild theirs."""
        self.drop()
        self._log_reload = True

    def kept_lanes(self) -> dict[str, RoomLanes] | None:
        """The in-memory order of every room, if one is kept now (tests compare it with the database)."""
        return self._lanes

    def drop(self) -> None:
        """Forget the in-memory order (a rolled-back transaction, a new hospital file, end of day)."""
        self._lanes, self._day, self._rooms_of = None, None, {}

    def apply(self, tx: Tx, day: str, now: datetime, changed: Changed) -> None:
        """Move this transaction's changed tickets in the in-memory lanes (undone on rollback).

        ``changed``: ticket ids to read back, or id -> the row as it now is (None: no longer waiting).
        """
        if self.shared:
            self._logged.update(changed)
        if self._lanes is None or self._day != day or not changed:
            return
        tx.on_rollback(self.drop)
        if isinstance(changed, dict):
            found = {tid: SimpleNamespace(**row) if isinstance(row, Mapping) else row
                     for tid, row in changed.items() if row is not None}
            self._move(changed, found, day, now)
        else:
            self._overlay(tx.conn, set(changed), day, now)

    def _overlay(self, conn: Connection, ticket_ids: set[str], day: str, now: datetime) -> None:
        """Re-read these tickets and put each where it now belongs (or nowhere, if no longer waiting)."""
        found = {r.ticket_id: r for r in conn.execute(_Q_OVERLAY, {"ids": sorted(ticket_ids)}).all()}
        self._move(ticket_ids, found, day, now)

    def _move(self, ticket_ids: Any, found: dict[str, Any], day: str, now: datetime) -> None:
        assert self._lanes is not None
        for tid in ticket_ids:
            for rid in self._rooms_of.pop(tid, ()):
                self._lanes[rid].discard(tid)
            row = found.get(tid)
            if row is not None and row.status == "waiting" and row.day == day:
                self._rooms_of[tid] = self.rooms_of_ticket(row)
                entry = waiting(row)
                for rid in self._rooms_of[tid]:
                    self._lanes[rid].add(entry, now)

    @contextmanager
    def reading(self) -> Iterator[Connection]:
        """A read snapshot that may use the in-memory lanes (they change only under the writer lock)."""
        store = self.ctx.store
        with store.writer_lock(), store.read() as conn:
            if self.shared:
                self.refresh(conn)
            yield conn
