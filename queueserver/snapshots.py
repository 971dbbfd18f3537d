"""``Snapshots``: a room's ``RoomState``, the seq that orders them, and publishing them after the commit.

Each state change bumps the ``seq`` of every room whose snapshot it changes, in the same
transaction, and publishes those snapshots after the commit. On SQLite a group commit sends
each room's newest waiting-list snapshot once; a call's snapshot always goes out before its
event (``publish_now``).
"""
from __future__ import annotations

from datetime import datetime
from functools import partial
from typing import Any

from sqlalchemy import bindparam, select, update
from sqlalchemy.engine import Connection

from protocol.payloads import CurrentCall, RoomState, RoomStatus
from queueserver.context import QueueContext, Record
from queueserver.hospital_file import Room
from queueserver.lanes import RoomLanes
from queueserver.ordering import Changed, Ordering
from queueserver.store import Tx, rooms, tickets

NEXT_SHOWN = 5

# A room's row after its change, with what its snapshot shows of the current ticket (one round trip).
_CURRENT = {f"cur_{name}": select(tickets.c[name]).where(tickets.c.ticket_id == rooms.c.current_ticket_id)
            .scalar_subquery().label(f"cur_{name}")
            for name in ("number", "masked_name", "called_at", "recall_count", "status")}
_RETURNED = (*rooms.c, *_CURRENT.values())
_Q_CURRENT = select(tickets.c.number, tickets.c.masked_name, tickets.c.called_at, tickets.c.recall_count,
                    tickets.c.status).where(tickets.c.ticket_id == bindparam("tid"))  # for rows read, not changed
_U_ROOM_SEQ = (update(rooms).where(rooms.c.room_id == bindparam("rid"))
               .values(seq=rooms.c.seq + 1, updated_at=bindparam("now")).returning(*_RETURNED))
_U_ROOM_CALLED = (update(rooms).where(rooms.c.room_id == bindparam("rid"))
                  .values(seq=rooms.c.seq + 1, updated_at=bindparam("now"), current_ticket_id=bindparam("cur"),
                          current_call_id=bindparam("call"), others_since_priority=bindparam("counter"))
                  .returning(*_RETURNED))
_U_ROOM_CURRENT = (update(rooms).where(rooms.c.room_id == bindparam("rid"))
                   .values(seq=rooms.c.seq + 1, updated_at=bindparam("now"), current_ticket_id=bindparam("cur"),
                           current_call_id=bindparam("call"))
                   .returning(*_RETURNED))


class Snapshots:
    """Room snapshots: built, sequenced and published (see the module docstring)."""

    def __init__(self, ctx: QueueContext, ordering: Ordering) -> None:
        self.ctx = ctx
        self.ordering = ordering
        self._staged: dict[str, RoomState] = {}  # snapshots waiting for their group commit's end

    def snapshot(self, conn: Connection, room: Room, row: Record, now: datetime,
                 lanes: RoomLanes | None = None) -> RoomState:
        """The room's state from its row and its calling order."""
        ctx = self.ctx
        current = None
        if row["current_ticket_id"]:
            if "cur_status" in row:  # a row an update returned, with its current ticket's columns
                t: Record | None = {name: row[f"cur_{name}"] for name in
                                    ("number", "masked_name", "called_at", "recall_count", "status")}
            else:
                t = ctx.sql(conn, _Q_CURRENT, {"tid": row["current_ticket_id"]}).first()
            if t is not None and t["status"] in ("called", "serving"):
                current = CurrentCall(call_id=row["current_call_id"] or "none", ticket=t["number"],
                                      masked_name=t["masked_name"], called_at=t["called_at"],
                                      recall_count=t["recall_count"])
        if lanes is None:
            lanes = self.ordering.lanes_for(conn, [room], ctx.today(now), now)[room.id]
        head = lanes.top(NEXT_SHOWN, counter=row["others_since_priority"], now=now, explain=False)
        done = getattr(ctx.local, "bumped", None)
        if done is not None:
            done[room.id] = (row["others_since_priority"], lanes)
        dept = room.departments[0]
        return RoomState(
            seq=row["seq"], ts=now, site=ctx.site, room=room.id, room_name=dict(room.name), room_where=room.where(),
            department=dept, department_name=ctx.dept_name(dept), status=RoomStatus(row["status"]), current=current,
            next_tickets=tuple(p.ticket.number for p in head), waiting_count=len(lanes),
        )

    def bump(self, tx: Tx, room_ids: set[str], now: datetime, *, tickets_changed: Changed | None = None,
             room_updates: dict[str, dict[str, Any]] | None = None,
             publish_now: frozenset[str] = frozenset()) -> dict[str, RoomState]:
        """Advance the seq of these rooms (with any column updates), build their snapshots, publish after commit.

        ``publish_now``: rooms whose snapshot must go out in its place, before a call event with the
        same seq; the others may be folded into the group commit's newest snapshot of the room.
        """
        ctx = self.ctx
        room_updates = room_updates or {}
        states: dict[str, RoomState] = {}
        day = ctx.today(now)
        self.ordering.apply(tx, day, now, tickets_changed or set())
        lanes = self.ordering.lanes_for(tx.conn, [ctx.room(r) for r in sorted(room_ids)], day, now)
        for room_id in sorted(room_ids):
            updates = room_updates.get(room_id)
            row: Record
            if updates is None:
                row = ctx.sql(tx.conn, _U_ROOM_SEQ, {"rid": room_id, "now": now}).one()
            elif set(updates) == {"current_ticket_id", "current_call_id", "others_since_priority"}:
                row = ctx.sql(tx.conn, _U_ROOM_CALLED, {
                    "rid": room_id, "now": now, "cur": updates["current_ticket_id"], "call": updates["current_call_id"],
                    "counter": updates["others_since_priority"]}).one()
            elif set(updates) == {"current_ticket_id", "current_call_id"}:
                row = ctx.sql(tx.conn, _U_ROOM_CURRENT, {"rid": room_id, "now": now,
                                                         "cur": updates["current_ticket_id"],
                                                         "call": updates["current_call_id"]}).one()
            else:
                values = dict(updates, seq=rooms.c.seq + 1, updated_at=now)
                row = tx.conn.execute(update(rooms).where(rooms.c.room_id == room_id).values(**values)
                                      .returning(*_RETURNED)).mappings().one()
            states[room_id] = self.snapshot(tx.conn, ctx.room(room_id), row, now, lanes[room_id])
        changed = set(tickets_changed or ())
        for room_id, state in states.items():
            self._publish(tx, state, now=room_id in publish_now)
        tx.after_commit(partial(ctx.notify, set(room_ids), changed))
        return states

    def _publish(self, tx: Tx, state: RoomState, *, now: bool) -> None:
        """Publish a room's snapshot after the commit. A snapshot that only changed the waiting list is
        staged, and each group commit (one writer, hooks in commit order) sends the newest staged one per
        room once: under load most snapshots are superseded within milliseconds."""
        publisher = self.ctx.publisher
        if publisher is None:
            return
        if now:
            def send() -> None:
                self._staged.pop(state.room, None)  # older than this one
                publisher.publish_state(state)
            tx.after_commit(send)
            return
        tx.after_commit(partial(self._staged.__setitem__, state.room, state))
        tx.after_commit_last("room-states", self._send_staged)

    def _send_staged(self) -> None:
        staged, self._staged = self._staged, {}
        for state in staged.values():
            self.ctx.publisher.publish_state(state)  # type: ignore[union-attr]

    def republish_all(self) -> None:
        """Publish every room's current snapshot with its stored seq (server start, broker reconnect)."""
        ctx = self.ctx
        if ctx.publisher is None:
            return
        now = ctx.clock()
        # Under the writer lock: a change committed meanwhile cannot be overtaken by this older snapshot.
        with ctx.store.writer_lock():
            with self.ordering.reading() as conn:
                rows = {r["room_id"]: r for r in conn.execute(select(rooms)).mappings()}
                states = [self.snapshot(conn, room, rows[room.id], now) for room in ctx.hospital.rooms
                          if room.id in rows]
            for state in states:
                ctx.publisher.publish_state(state)

    def room_state(self, room_id: str) -> RoomState:
        """The room's snapshot now (the same model as the retained MQTT message)."""
        room = self.ctx.room(room_id)
        with self.ordering.reading() as conn:
            row = conn.execute(select(rooms).where(rooms.c.room_id == room_id)).mappings().one()
            return self.snapshot(conn, room, row, self.ctx.clock())
