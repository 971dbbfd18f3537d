"""``Ordering``: every room's calling order (``RoomLanes``), kept in memory across operations.

Writes are one at a time (the store's writer lock; on PostgreSQL also across replicas), so
the calling order of every room is kept in memory, changed inside each transaction under
that lock, and dropped (rebuilt from the database) when a transaction rolls back.

On PostgreSQL another replica may have written since this one last did. Every change bumps
the ``seq`` of each room whose list it changes, so the cache remembers the seq it reflects
per room, and when a write turn starts (or a read needs the lists) ``refresh`` compares them
with the database and reloads only the rooms another replica changed: the cache is kept,
not rebuilt per operation.
"""
from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from datetime import datetime
from types import SimpleNamespace
from typing import Any

from sqlalchemy import and_, bindparam, or_, select
from sqlalchemy.engine import Connection

from queueserver.context import QueueContext, waiting
from queueserver.hospital_file import Room
from queueserver.lanes import RoomLanes
from queueserver.store import Tx, rooms, tickets

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
        self.shared = not ctx.store.is_sqlite  # other replicas may write to the same database
        self._lanes: dict[str, RoomLanes] | None = None
        self._day: str | None = None
        self._rooms_of: dict[str, tuple[str, ...]] = {}
        self._seq: dict[str, int] = {}  # PostgreSQL: the room seq each room's lanes reflect
        if self.shared:
            ctx.store.on_write_start(self.refresh)

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
        seqs = self._room_seqs(conn) if self.shared else {}  # first: the lists read next are at least as new
        rows = conn.execute(select(*WAIT_COLUMNS).where(tickets.c.status == "waiting",
                                                        tickets.c.day == day)).all()
        lanes = {r.id: RoomLanes(ctx.rules, ctx.tz) for r in ctx.hospital.rooms}
        self._rooms_of = {}
        for row in rows:
            self._rooms_of[row.ticket_id] = self.rooms_of_ticket(row)
            for rid in self._rooms_of[row.ticket_id]:
                lanes[rid].add(waiting(row), now)
        self._lanes, self._day, self._seq = lanes, day, seqs

    @staticmethod
    def _room_seqs(conn: Connection) -> dict[str, int]:
        return {r.room_id: r.seq for r in conn.execute(select(rooms.c.room_id, rooms.c.seq))}

    def saw(self, room_id: str, seq: int) -> None:
        """This process's own change moved the room to ``seq`` (its lanes were changed with it)."""
        if self.shared:
            self._seq[room_id] = seq

    def refresh(self, conn: Connection) -> None:
        """Reload the lists of the rooms another replica changed since this cache saw them (PostgreSQL).

        Called with the writer lock held (nobody writes meanwhile) or before a read. The rooms
        that share a department with a changed room are reloaded with it: a ticket queued for the
        department is in each of their lists.
        """
        if self._lanes is None:
            return
        ctx = self.ctx
        seqs = self._room_seqs(conn)
        stale = {rid for rid, seq in seqs.items() if self._seq.get(rid) != seq and rid in self._lanes}
        if not stale:
            return
        for rid in list(stale):
            room = ctx.hospital.room(rid)
            if room is not None:
                stale.update(ctx.rooms_sharing(room))
        stale_rooms = [r for r in ctx.hospital.rooms if r.id in stale]
        now = ctx.clock()
        for tid, where in list(self._rooms_of.items()):
            if stale.intersection(where):
                del self._rooms_of[tid]
        for r in stale_rooms:
            self._lanes[r.id] = RoomLanes(ctx.rules, ctx.tz)
        assert self._day is not None
        for rows in self.load(conn, stale_rooms, self._day).values():
            for row in rows:
                if row.ticket_id not in self._rooms_of:
                    self._rooms_of[row.ticket_id] = self.rooms_of_ticket(row)
                    entry = waiting(row)
                    for rid in self._rooms_of[row.ticket_id]:
                        self._lanes[rid].add(entry, now)
        self._seq.update({rid: seqs[rid] for rid in stale if rid in seqs})

    def kept_lanes(self) -> dict[str, RoomLanes] | None:
        """The in-memory order of every room, if one is kept now (tests compare it with the database)."""
        return self._lanes

    def drop(self) -> None:
        """Forget the in-memory order (a rolled-back transaction, a new hospital file, end of day)."""
        self._lanes, self._day, self._rooms_of, self._seq = None, None, {}, {}

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
        with store.writer_lock(), store.read() as conn:
            if self.shared:
                self.refresh(conn)
            yield conn
