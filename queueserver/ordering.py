"""``Ordering``: every room's calling order (``RoomLanes``), kept in memory where that is safe.

On SQLite this process is the only writer, so the calling order of every room is kept in
memory, changed inside each transaction under the writer lock, and dropped (rebuilt from
the database) when a transaction rolls back. On PostgreSQL several replicas write, so the
order is built from the database for each operation.
"""
from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager, nullcontext
from datetime import datetime
from types import SimpleNamespace
from typing import Any

from sqlalchemy import and_, bindparam, or_, select
from sqlalchemy.engine import Connection

from queueserver.context import QueueContext, waiting
from queueserver.hospital_file import Room
from queueserver.lanes import RoomLanes
from queueserver.store import Tx, tickets

Changed = set[str] | dict[str, Any]  # tickets a change touched: ids to read back, or id -> row now (None: gone)

WAIT_COLUMNS = [tickets.c[name] for name in (
    "ticket_id", "number", "arrived_at", "number_seq", "slot_start", "slot_end", "emergency", "priority",
    "is_returning", "front_reason", "not_before", "masked_name", "room", "department")]
_Q_OVERLAY = select(*WAIT_COLUMNS, tickets.c.status, tickets.c.day).where(
    tickets.c.ticket_id.in_(bindparam("ids", expanding=True)))


class Ordering:
    """The calling order of the site's rooms (see the module docstring)."""

    def __init__(self, ctx: QueueContext) -> None:
        self.ctx = ctx
        self.kept = ctx.store.is_sqlite
        self._lanes: dict[str, RoomLanes] | None = None
        self._day: str | None = None
        self._rooms_of: dict[str, tuple[str, ...]] = {}

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
        """The calling order of these rooms: kept in memory on SQLite, read from the database on PostgreSQL."""
        ctx = self.ctx
        if not self.kept:
            loaded = self.load(conn, for_rooms, day)
            return {r.id: RoomLanes(ctx.rules, ctx.tz, [waiting(x) for x in loaded[r.id]], now=now)
                    for r in for_rooms}
        if self._lanes is None or self._day != day:
            rows = conn.execute(select(*WAIT_COLUMNS).where(tickets.c.status == "waiting",
                                                            tickets.c.day == day)).all()
            lanes = {r.id: RoomLanes(ctx.rules, ctx.tz) for r in ctx.hospital.rooms}
            self._rooms_of = {}
            for row in rows:
                self._rooms_of[row.ticket_id] = self.rooms_of_ticket(row)
                for rid in self._rooms_of[row.ticket_id]:
                    lanes[rid].add(waiting(row), now)
            self._lanes, self._day = lanes, day
        kept = self._lanes
        return {r.id: kept[r.id] for r in for_rooms}

    def kept_lanes(self) -> dict[str, RoomLanes] | None:
        """The in-memory order of every room, if one is kept now (tests compare it with the database)."""
        return self._lanes

    def drop(self) -> None:
        """Forget the in-memory order (a rolled-back transaction, a new hospital file, end of day)."""
        self._lanes, self._day, self._rooms_of = None, None, {}

    def apply(self, tx: Tx, day: str, now: datetime, changed: Changed) -> None:
        """Move this transaction's changed tickets in the in-memory lanes (SQLite; undone on rollback).

        ``changed``: ticket ids to read back, or id -> the row as it now is (None: no longer waiting).
        """
        if self._lanes is None or self._day != day or not changed:
            return
        tx.on_rollback(self.drop)
        found: dict[str, Any] = {}
        if isinstance(changed, dict):
            found = {tid: SimpleNamespace(**row) if isinstance(row, Mapping) else row
                     for tid, row in changed.items() if row is not None}
        else:
            found = {r.ticket_id: r for r in tx.conn.execute(_Q_OVERLAY, {"ids": sorted(changed)}).all()}
        for tid in changed:
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
        with store.writer_lock() if self.kept else nullcontext():
            with store.read() as conn:
                yield conn
