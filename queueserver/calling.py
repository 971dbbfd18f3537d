"""``Calling``: what a clinician does in a room: call next or a chosen ticket, recall, no-show, start, finish, pause.

Each operation runs as one write (``queueserver.idempotency``) and returns what happened: the
``CallOut`` of a call, the ``TicketOut`` of the ticket it moved, the ``RoomState`` of a room
it paused or resumed.
"""
from __future__ import annotations

import secrets
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import bindparam, func, insert, or_, update

from protocol.announce import announcement_texts
from protocol.api import CallOut, TicketOut
from protocol.payloads import CallEvent, CallKind, RoomState
from queueserver import rules as R
from queueserver.call_guard import CallNextGuard
from queueserver.context import QueueContext, Record, waiting
from queueserver.errors import (
    BadRequestError,
    CalledElsewhere,
    NoCurrentPatient,
    NothingWaiting,
    NotQueuedHere,
    RecallLimitReached,
    RecallTooSoon,
    RoomAlreadyInStatus,
    RoomClosed,
    TicketStateConflict,
)
from queueserver.hospital_file import Room
from queueserver.idempotency import Writes
from queueserver.ordering import Ordering
from queueserver.snapshots import Snapshots
from queueserver.store import Tx, UTCDateTime, calls, service_times, tickets
from queueserver.tickets import Tickets

_U_CALLED = update(tickets).where(tickets.c.ticket_id == bindparam("tid"), tickets.c.status == "waiting").values(
    status="called", called_at=bindparam("now"),
    first_called_at=func.coalesce(tickets.c.first_called_at, bindparam("first", type_=UTCDateTime())),
    call_room=bindparam("b_room"), call_reason=bindparam("reason"), recall_count=0, not_before=None
).returning(*tickets.c)
_U_DONE = (update(tickets).where(tickets.c.ticket_id == bindparam("tid"),
                                 or_(tickets.c.status == "called", tickets.c.status == "serving"))
           .values(status="done", finished_at=bindparam("now"))
           .returning(tickets.c.department, tickets.c.service_started_at, tickets.c.called_at))
_I_SERVICE_TIME = insert(service_times).values(department=bindparam("department"), minutes=bindparam("minutes"),
                                               at=bindparam("at"))  # the id is the database's
_I_CALL = insert(calls)


def _new_call_id() -> str:
    return "c" + secrets.token_hex(8)


class Calling:
    """Room operations (see the module docstring)."""

    def __init__(self, ctx: QueueContext, ordering: Ordering, snapshots: Snapshots, tickets_: Tickets,
                 writes: Writes) -> None:
        self.ctx = ctx
        self.ordering = ordering
        self.snapshots = snapshots
        self.tickets = tickets_
        self.writes = writes
        self.guard = CallNextGuard()

    # ------------------------------------------------------------ shared steps
    def _finish_current(self, tx: Tx, room_row: Record, now: datetime) -> str | None:
        """Close the room's current ticket (called or serving) as done; returns its id."""
        ctx = self.ctx
        tid = room_row["current_ticket_id"]
        if not tid:
            return None
        t = ctx.sql(tx.conn, _U_DONE, {"tid": tid, "now": now}).first()  # only if called or serving
        if t is None:
            return None
        began = t["service_started_at"] or t["called_at"]
        if began is not None:
            ctx.sql(tx.conn, _I_SERVICE_TIME, dict(department=t["department"], at=now,
                                                   minutes=max(0.0, (now - began).total_seconds() / 60)))
            ctx.forget_service_minutes(t["department"])
        return tid

    def _call(self, tx: Tx, now: datetime, room: Room, placed: R.Placed, counter: int,
              *, kind: CallKind = CallKind.CALL) -> CallOut:
        ctx = self.ctx
        tid = placed.ticket.ticket_id
        row = ctx.sql(tx.conn, _U_CALLED, {"tid": tid, "now": now, "first": now, "b_room": room.id,
                                           "reason": placed.reason}).first()
        if row is None:  # the calling order said waiting and the row does not: never call it twice
            raise CalledElsewhere(f"Ticket {placed.ticket.number} was called by someone else just now; try again.")
        call_id = _new_call_id()
        sharing = set(ctx.rooms_sharing(room))
        states = self.snapshots.bump(tx, sharing, now, tickets_changed={tid: None}, publish_now=frozenset({room.id}),
                                     room_updates={room.id: dict(current_ticket_id=tid, current_call_id=call_id,
                                                                 others_since_priority=counter)})
        seq = states[room.id].seq
        ctx.sql(tx.conn, _I_CALL, dict(call_id=call_id, ticket_id=tid, room=room.id, kind=kind.value,
                                       reason=placed.reason, at=now, seq=seq, day=ctx.today(now)))
        event = CallEvent(id=call_id, seq=seq, ts=now, site=ctx.site, room=room.id, room_name=dict(room.name),
                          room_where=room.where(), department=row["department"], ticket=row["number"], kind=kind,
                          masked_name=row["masked_name"], recall_count=0,
                          announce=announcement_texts(row["number"], room.id, room.name, where=room.where()))
        self._announce(tx, event)
        return CallOut(call_id=call_id, kind=kind.value, room=room.id, ticket=self.tickets.out(tx.conn, row, now),
                       reason=placed.reason)

    def _announce(self, tx: Tx, event: CallEvent) -> None:
        publisher = self.ctx.publisher
        if publisher is not None:
            tx.after_commit(lambda: publisher.publish_call(event))

    def _open_room(self, tx: Tx, room_id: str) -> tuple[Room, Record]:
        room = self.ctx.room(room_id)
        row = self.ctx.room_rows(tx.conn, [room_id])[room_id]
        if row["status"] != "open":
            raise RoomClosed(f"{room.name.get('en', room_id).capitalize()} is {row['status']}: "
                             "resume it before calling patients.")
        return room, row

    def _current(self, tx: Tx, room_id: str, *, statuses: tuple[str, ...]) -> tuple[Room, Record, Record]:
        ctx = self.ctx
        room = ctx.room(room_id)
        row = ctx.room_rows(tx.conn, [room_id])[room_id]
        label = room.name.get("en", room_id)
        if not row["current_ticket_id"]:
            raise NoCurrentPatient(f"No patient has been called to {label}.")
        t = ctx.ticket_row(tx.conn, row["current_ticket_id"])
        if t["status"] not in statuses:
            raise TicketStateConflict(f"Ticket {t['number']} in {label} is {t['status']}; "
                                      f"this needs a ticket that is {' or '.join(statuses)}.")
        return room, row, t

    # ------------------------------------------------------------ operations
    def call_next(self, room_id: str, *, by: str | None = None, confirm: bool = False, idem_key: str | None = None,
                  fingerprint: str = "") -> CallOut:
        """Finish the room's current patient and call the next one by the rules, with the reason.

        ``by`` (the caller's name) calling next again within ``call_next_confirm_s`` of their last call
        in the room is ``CallNextTooSoon`` unless ``confirm`` (``queueserver.call_guard``)."""
        ctx = self.ctx

        def op(tx: Tx, now: datetime) -> CallOut:
            room, row = self._open_room(tx, room_id)
            lanes = self.ordering.lanes_for(tx.conn, [room], ctx.today(now), now)[room.id]
            placed = lanes.first(counter=row["others_since_priority"], now=now)
            if placed is None:
                raise NothingWaiting(f"Nobody is waiting for {room.name.get('en', room_id)}.")
            self.guard.check(room_id, by, now, window_s=ctx.rules.call_next_confirm_s, confirm=confirm)
            self._finish_current(tx, row, now)
            out = self._call(tx, now, room, placed, R.counter_after(placed, row["others_since_priority"]))
            self.guard.called(room_id, by, out.ticket.number, now)
            return out

        return self.writes.run(op, idem_key=idem_key, fingerprint=fingerprint)

    def call_ticket(self, room_id: str, ticket_id: str, *, by: str | None = None, idem_key: str | None = None,
                    fingerprint: str = "") -> CallOut:
        """Call one chosen waiting ticket out of order (the reason says so, and who the rules would have called)."""
        ctx = self.ctx

        def op(tx: Tx, now: datetime) -> CallOut:
            room, row = self._open_room(tx, room_id)
            t = ctx.ticket_row(tx.conn, ticket_id)
            if t["status"] != "waiting":
                raise TicketStateConflict(f"Ticket {t['number']} is {t['status']}, not waiting.")
            if not (t["room"] == room_id or (t["room"] is None and t["department"] in room.departments)):
                raise NotQueuedHere(f"Ticket {t['number']} is not queued for {room.name.get('en', room_id)}; "
                                    "transfer it first.")
            lanes = self.ordering.lanes_for(tx.conn, [room], ctx.today(now), now)[room.id]
            rule_next = lanes.first(counter=row["others_since_priority"], now=now)
            if rule_next is not None and rule_next.ticket.ticket_id == ticket_id:
                placed = rule_next
            else:
                note = f" (next by the rules: {rule_next.ticket.number})" if rule_next else ""
                placed = R.Placed(waiting(t), "chosen", f"chosen by the clinician{note}")
            self._finish_current(tx, row, now)
            out = self._call(tx, now, room, placed, R.counter_after(placed, row["others_since_priority"]))
            self.guard.called(room_id, by, out.ticket.number, now)
            return out

        return self.writes.run(op, idem_key=idem_key, fingerprint=fingerprint)

    def recall(self, room_id: str, *, by: str | None = None, idem_key: str | None = None,
               fingerprint: str = "") -> CallOut:
        """Call the room's current ticket again (limited in number and spacing)."""
        ctx = self.ctx

        def op(tx: Tx, now: datetime) -> CallOut:
            rules = ctx.rules
            room, row, t = self._current(tx, room_id, statuses=("called",))
            if t["recall_count"] >= rules.max_recalls:
                raise RecallLimitReached(f"Ticket {t['number']} was already called again {t['recall_count']} "
                                         "times; mark it as a no-show instead.")
            since = (now - t["called_at"]).total_seconds()
            if since < rules.recall_min_interval_s:
                wait = int(rules.recall_min_interval_s - since + 0.999)
                raise RecallTooSoon(f"Wait {wait} s more before calling {t['number']} again.")
            count = t["recall_count"] + 1
            reason = f"recall {count} of {rules.max_recalls}"
            tx.conn.execute(update(tickets).where(tickets.c.ticket_id == t["ticket_id"]).values(
                recall_count=count, recalls_total=t["recalls_total"] + 1, called_at=now))
            call_id = _new_call_id()
            states = self.snapshots.bump(tx, {room_id}, now, tickets_changed={t["ticket_id"]: None},
                                         publish_now=frozenset({room_id}),
                                         room_updates={room_id: dict(current_call_id=call_id)})
            seq = states[room_id].seq
            tx.conn.execute(insert(calls).values(call_id=call_id, ticket_id=t["ticket_id"], room=room_id,
                                                 kind="recall", reason=reason, at=now, seq=seq, day=ctx.today(now)))
            self._announce(tx, CallEvent(
                id=call_id, seq=seq, ts=now, site=ctx.site, room=room_id, room_name=dict(room.name),
                room_where=room.where(), department=t["department"], ticket=t["number"], kind=CallKind.RECALL, masked_name=t["masked_name"],
                recall_count=count, announce=announcement_texts(t["number"], room_id, room.name, recall=True,
                                                                     where=room.where())))
            self.guard.called(room_id, by, t["number"], now)
            return CallOut(call_id=call_id, kind="recall", room=room_id,
                           ticket=self.tickets.out_of(tx.conn, t["ticket_id"], now), reason=reason)

        return self.writes.run(op, idem_key=idem_key, fingerprint=fingerprint)

    def no_show(self, room_id: str, *, idem_key: str | None = None, fingerprint: str = "") -> TicketOut:
        """The called patient did not come: back in the queue after a skip, or cancelled after N no-shows."""
        ctx = self.ctx

        def op(tx: Tx, now: datetime) -> TicketOut:
            room, row, t = self._current(tx, room_id, statuses=("called",))
            count = t["no_show_count"] + 1
            if count >= ctx.rules.no_show_cancel_after:
                values: dict[str, Any] = dict(status="no_show", no_show_count=count, finished_at=now,
                                              cancel_reason=f"did not come after {count} calls")
            else:
                values = dict(status="waiting", no_show_count=count, call_room=None,
                              not_before=now + timedelta(minutes=ctx.rules.no_show_skip_min))
            tx.conn.execute(update(tickets).where(tickets.c.ticket_id == t["ticket_id"]).values(**values))
            self.snapshots.bump(tx, set(ctx.rooms_sharing(room)), now, tickets_changed={t["ticket_id"]},
                                room_updates={room_id: dict(current_ticket_id=None, current_call_id=None)})
            return self.tickets.out_of(tx.conn, t["ticket_id"], now)

        return self.writes.run(op, idem_key=idem_key, fingerprint=fingerprint)

    def start_service(self, room_id: str, *, idem_key: str | None = None, fingerprint: str = "") -> TicketOut:
        """The called patient has arrived in the room."""
        def op(tx: Tx, now: datetime) -> TicketOut:
            room, row, t = self._current(tx, room_id, statuses=("called",))
            tx.conn.execute(update(tickets).where(tickets.c.ticket_id == t["ticket_id"]).values(
                status="serving", service_started_at=now))
            self.snapshots.bump(tx, {room_id}, now, tickets_changed={t["ticket_id"]: None})  # serving: not waiting
            return self.tickets.out_of(tx.conn, t["ticket_id"], now)

        return self.writes.run(op, idem_key=idem_key, fingerprint=fingerprint)

    def finish(self, room_id: str, *, idem_key: str | None = None, fingerprint: str = "") -> TicketOut:
        """The room's current patient is done."""
        def op(tx: Tx, now: datetime) -> TicketOut:
            room, row, t = self._current(tx, room_id, statuses=("called", "serving"))
            self._finish_current(tx, row, now)
            self.snapshots.bump(tx, {room_id}, now, tickets_changed={t["ticket_id"]: None},  # done: not waiting
                                room_updates={room_id: dict(current_ticket_id=None, current_call_id=None)})
            return self.tickets.out_of(tx.conn, t["ticket_id"], now)

        return self.writes.run(op, idem_key=idem_key, fingerprint=fingerprint)

    def set_room_status(self, room_id: str, status: str, *, idem_key: str | None = None,
                        fingerprint: str = "") -> RoomState:
        """Pause, resume (open) or close a room."""
        ctx = self.ctx
        if status not in ("open", "paused", "closed"):
            raise BadRequestError("status must be open, paused or closed.")
        ctx.room(room_id)

        def op(tx: Tx, now: datetime) -> RoomState:
            row = ctx.room_rows(tx.conn, [room_id])[room_id]
            if row["status"] == status:
                raise RoomAlreadyInStatus(f"{ctx.room_label(room_id).capitalize()} is already {status}.")
            states = self.snapshots.bump(tx, {room_id}, now, room_updates={room_id: dict(status=status)})
            ctx.forget_estimates()
            return states[room_id]

        return self.writes.run(op, idem_key=idem_key, fingerprint=fingerprint)
