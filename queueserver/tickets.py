"""``Tickets``: a ticket as the patient sees it (position, estimate), and moving tickets between queues.

``out`` builds the ``TicketOut`` every operation answers with; ``transfer``,
``return_with_results`` and ``cancel`` move one ticket; ``end_of_day`` closes every open one.
"""
from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import delete, select, update
from sqlalchemy.engine import Connection

from protocol.api import TicketOut
from queueserver.context import ACTIVE, QueueContext, Record
from queueserver.errors import BadRequestError, DepartmentNotFound, NotYourRoom, TicketStateConflict
from queueserver.idempotency import Writes
from queueserver.ordering import Ordering
from queueserver.results import DayClosed
from queueserver.snapshots import Snapshots
from queueserver.store import Tx, changes, idempotency, rooms, tickets
from queueserver import rules as R


class Tickets:
    """Ticket views and moves (see the module docstring)."""

    def __init__(self, ctx: QueueContext, ordering: Ordering, snapshots: Snapshots, writes: Writes) -> None:
        self.ctx = ctx
        self.ordering = ordering
        self.snapshots = snapshots
        self.writes = writes

    # ------------------------------------------------------------ views
    def position(self, conn: Connection, row: Record, now: datetime) -> tuple[int | None, int | None]:
        """(position, estimated minutes) of a waiting ticket in the room it will be called to."""
        ctx = self.ctx
        if row["status"] != "waiting":
            return None, None
        dept_rooms = ctx.hospital.rooms_for(row["department"])
        room = ctx.hospital.room(row["room"]) if row["room"] else (dept_rooms[0] if dept_rooms else None)
        if room is None:
            return None, None
        done = getattr(ctx.local, "bumped", None)  # rooms and lanes a bump produced in this same operation
        if done and room.id in done:
            counter, lanes = done[room.id]
        else:
            state = conn.execute(select(rooms.c.others_since_priority).where(rooms.c.room_id == room.id)).first()
            counter = state.others_since_priority if state else 0
            lanes = self.ordering.lanes_for(conn, [room], row["day"], now)[room.id]
        position = lanes.position(row["ticket_id"], counter=counter, now=now)
        if position is None:
            return None, None
        open_rooms = 1 if row["room"] else ctx.open_rooms(conn, [r.id for r in dept_rooms])
        return position, R.estimated_wait_min(position, open_rooms=open_rooms,
                                              service_min=ctx.service_minutes(conn, row["department"]))

    def out(self, conn: Connection, row: Record, now: datetime, *, already: bool = False) -> TicketOut:
        """The ticket as its patient sees it: where to go, position and estimated wait."""
        ctx = self.ctx
        position, wait = self.position(conn, row, now)
        room_id = row["call_room"] if row["status"] in ("called", "serving") else row["room"]
        if room_id is None:  # a department with a single room: the patient can already be told where to go
            only = ctx.hospital.rooms_for(row["department"])
            room_id = only[0].id if len(only) == 1 else None
        room = ctx.hospital.room(room_id) if room_id else None
        return TicketOut(
            ticket_id=row["ticket_id"], number=row["number"], department=row["department"],
            department_name=ctx.dept_name(row["department"]), room=room_id,
            room_name=dict(room.name) if room else {}, where=ctx.where(row["department"], room),
            where_map=ctx.where_map(row["department"], room),
            status=row["status"], position=position,
            estimated_wait_min=wait, issued_at=row["issued_at"], masked_name=row["masked_name"],
            status_url=f"{ctx.public_url}/status/{row['ticket_id']}", already_checked_in=already,
        )

    def out_of(self, conn: Connection, ticket_id: str, now: datetime) -> TicketOut:
        """``out`` of the ticket as this transaction now sees it."""
        return self.out(conn, self.ctx.ticket_row(conn, ticket_id), now)

    def ticket(self, ticket_id: str) -> TicketOut:
        with self.ordering.reading() as conn:
            return self.out_of(conn, ticket_id, self.ctx.clock())

    def ticket_detail(self, ticket_id: str) -> dict[str, Any]:
        """The patient page's view: the ticket plus whether the survey can be answered."""
        with self.ordering.reading() as conn:
            row = self.ctx.ticket_row(conn, ticket_id)
            out = self.out(conn, row, self.ctx.clock()).model_dump(mode="json")
        out["survey_open"] = row["status"] == "done" and row["survey_score"] is None
        out["survey_done"] = row["survey_score"] is not None
        return out

    # ------------------------------------------------------------ moves
    def clear_from_room(self, tx: Tx, t: Record) -> set[str]:
        """If a room has this ticket as its current one, clear it; returns the rooms touched."""
        touched = set()
        for r in tx.conn.execute(select(rooms.c.room_id).where(rooms.c.current_ticket_id == t["ticket_id"])):
            tx.conn.execute(update(rooms).where(rooms.c.room_id == r.room_id).values(current_ticket_id=None,
                                                                                     current_call_id=None))
            touched.add(r.room_id)
        return touched

    def _in_scope(self, t: Record, by_rooms: frozenset[str] | None) -> None:
        """A clinician scoped to ``by_rooms`` acts only on tickets of those rooms: queued for, or called to,
        one of them, or (not yet given a room) of a department one of them serves. Checked before the
        ticket's state, so another room's patient is not even described."""
        if by_rooms is None:
            return
        room = t["call_room"] or t["room"]
        if room in by_rooms:
            return
        if room is None and any(t["department"] in self.ctx.room(r).departments for r in by_rooms
                                if self.ctx.hospital.room(r) is not None):
            return
        raise NotYourRoom(f"Ticket {t['number']} is not in one of your rooms.")

    def transfer(self, ticket_id: str, *, department: str | None = None, room: str | None = None,
                 placement: str = "keep", by_rooms: frozenset[str] | None = None,
                 idem_key: str | None = None, fingerprint: str = "") -> TicketOut:
        """Move a ticket to another department or room keeping its number.

        ``placement``: ``front`` (near the front, like a patient returning with results),
        ``keep`` (its original place by arrival and slot) or ``back`` (as if it arrived now).
        ``by_rooms``: a clinician may only transfer tickets of their own rooms.
        """
        ctx = self.ctx
        if placement not in ("front", "keep", "back"):
            raise BadRequestError("placement must be front, keep or back.")
        if department is None and room is None:
            raise BadRequestError("Give a department or a room to transfer to.")
        if department is not None and ctx.hospital.department(department) is None:
            raise DepartmentNotFound(f"There is no department {department!r}.")
        if room is not None:
            target = ctx.room(room)
            if department is None:
                department = target.departments[0]
            elif department not in target.departments:
                raise BadRequestError(f"Room {room} does not serve {department}.")

        def op(tx: Tx, now: datetime) -> TicketOut:
            t = ctx.ticket_row(tx.conn, ticket_id)
            self._in_scope(t, by_rooms)
            if t["status"] in ("cancelled", "no_show"):
                raise TicketStateConflict(f"Ticket {t['number']} is {t['status']} and cannot be transferred.")
            old_rooms = set(ctx.rooms_of_dept(t["department"])) | ({t["room"]} if t["room"] else set())
            touched = self.clear_from_room(tx, t)
            from_where = ctx.room_label(t["call_room"]) if t["call_room"] else ctx.dept_name(t["department"]).get("en")
            values: dict[str, Any] = dict(status="waiting", department=department, room=room, call_room=None,
                                          not_before=None, recall_count=0, is_returning=False, front_reason=None)
            if placement == "front":
                values.update(is_returning=True, arrived_at=now, front_reason=f"transferred from {from_where}, "
                                                                               "placed near the front")
            elif placement == "back":
                values.update(arrived_at=now, slot_start=None, slot_end=None)
            tx.conn.execute(update(tickets).where(tickets.c.ticket_id == ticket_id).values(**values))
            new_rooms = {room} if room else set(ctx.rooms_of_dept(department))  # type: ignore[arg-type]
            self.snapshots.bump(tx, old_rooms | new_rooms | touched, now, tickets_changed={ticket_id})
            return self.out_of(tx.conn, ticket_id, now)

        return self.writes.run(op, idem_key=idem_key, fingerprint=fingerprint)

    def return_with_results(self, ticket_id: str, *, by_rooms: frozenset[str] | None = None,
                            idem_key: str | None = None, fingerprint: str = "") -> TicketOut:
        """A patient seen earlier today is back with test results: re-enter near the front of the same room.

        ``by_rooms``: a clinician may only re-queue patients of their own rooms."""
        ctx = self.ctx

        def op(tx: Tx, now: datetime) -> TicketOut:
            t = ctx.ticket_row(tx.conn, ticket_id)
            self._in_scope(t, by_rooms)
            if t["status"] != "done":
                raise TicketStateConflict(f"Ticket {t['number']} is {t['status']}; only a patient already seen can "
                                          "return with results.")
            room = t["call_room"] or t["room"]
            tx.conn.execute(update(tickets).where(tickets.c.ticket_id == ticket_id).values(
                status="waiting", is_returning=True, arrived_at=now, room=room, call_room=None, finished_at=None,
                front_reason="returning with test results", recall_count=0, not_before=None))
            affected = {room} if room else set(ctx.rooms_of_dept(t["department"]))
            self.snapshots.bump(tx, affected, now, tickets_changed={ticket_id})
            return self.out_of(tx.conn, ticket_id, now)

        return self.writes.run(op, idem_key=idem_key, fingerprint=fingerprint)

    def cancel(self, ticket_id: str, *, reason: str = "cancelled", by_rooms: frozenset[str] | None = None,
               idem_key: str | None = None, fingerprint: str = "") -> TicketOut:
        """Cancel a waiting, called or serving ticket (``by_rooms``: only of those rooms)."""
        ctx = self.ctx

        def op(tx: Tx, now: datetime) -> TicketOut:
            t = ctx.ticket_row(tx.conn, ticket_id)
            self._in_scope(t, by_rooms)
            if t["status"] not in ACTIVE:
                raise TicketStateConflict(f"Ticket {t['number']} is already {t['status']}.")
            touched = self.clear_from_room(tx, t)
            tx.conn.execute(update(tickets).where(tickets.c.ticket_id == ticket_id).values(
                status="cancelled", cancel_reason=reason, finished_at=now))
            affected = touched | ({t["room"]} if t["room"] else set(ctx.rooms_of_dept(t["department"])))
            self.snapshots.bump(tx, affected, now, tickets_changed={ticket_id})
            return self.out_of(tx.conn, ticket_id, now)

        return self.writes.run(op, idem_key=idem_key, fingerprint=fingerprint)

    def end_of_day(self, *, idem_key: str | None = None, fingerprint: str = "") -> DayClosed:
        """Close the day: every ticket still waiting or called is cancelled, serving ones are finished."""
        ctx = self.ctx

        def op(tx: Tx, now: datetime) -> DayClosed:
            waiting = tx.conn.execute(update(tickets).where(tickets.c.status.in_(("waiting", "called"))).values(
                status="cancelled", cancel_reason="end of day", finished_at=now)).rowcount
            serving = tx.conn.execute(update(tickets).where(tickets.c.status == "serving").values(
                status="done", finished_at=now)).rowcount
            tx.conn.execute(update(rooms).values(current_ticket_id=None, current_call_id=None))
            # Idempotency keys only protect retries of the last minutes; keep two days of them.
            tx.conn.execute(delete(idempotency).where(idempotency.c.created_at < now - timedelta(days=2)))
            tx.conn.execute(delete(changes))  # the day's change log: replaced by one "rebuild" entry
            self.ordering.changed_everything()  # many tickets at once: rebuilt from this transaction's view
            tx.on_rollback(self.ordering.drop)
            self.snapshots.bump(tx, {r.id for r in ctx.hospital.rooms}, now)
            return DayClosed(cancelled=waiting, finished=serving)

        return self.writes.run(op, idem_key=idem_key, fingerprint=fingerprint)
