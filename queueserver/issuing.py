"""``Issuing``: new tickets, for an appointment (check-in) or without one (walk-in).

A ticket's number comes from the department's counter for the day; the rooms that will show
it are locked first, then the counter, the same order as a call (no convoy, no deadlock).
After the commit the hospital backend is told of each check-in (on SQLite a group commit's
check-ins go in one HIS transaction).
"""
from __future__ import annotations

import logging
import secrets
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy import bindparam, insert, select
from sqlalchemy.engine import Connection

from protocol.privacy import mask_name
from queueserver.context import QueueContext, Record
from queueserver.errors import (
    AppointmentNotFound,
    AppointmentNotUsable,
    BadRequestError,
    DailyCapacityReached,
    DepartmentClosed,
    DepartmentNotFound,
    PatientNotFound,
)
from queueserver.idempotency import Writes
from queueserver.results import Issued
from queueserver.snapshots import Snapshots
from queueserver.store import Tx, counters, tickets
from queueserver.tickets import Tickets

log = logging.getLogger(__name__)

_Q_TICKET_OF_APPOINTMENT = select(tickets).where(tickets.c.day == bindparam("day"),
                                                 tickets.c.appointment_no == bindparam("no"))
_I_TICKET = insert(tickets).returning(*tickets.c)
_EMPTY_TICKET: dict[str, Any] = {c.name: None for c in tickets.columns}  # every column, for the prepared INSERT


def _counter_upsert(dialect_insert):  # type: ignore[no-untyped-def]
    stmt = dialect_insert(counters).values(department=bindparam("dept"), day=bindparam("day"), last=1)
    return stmt.on_conflict_do_update(index_elements=["department", "day"],
                                      set_={"last": counters.c.last + 1}).returning(counters.c.last)


class Issuing:
    """Check-in and walk-in tickets (see the module docstring)."""

    def __init__(self, ctx: QueueContext, snapshots: Snapshots, tickets_: Tickets, writes: Writes) -> None:
        self.ctx = ctx
        self.snapshots = snapshots
        self.tickets = tickets_
        self.writes = writes
        if ctx.store.is_sqlite:
            from sqlalchemy.dialects.sqlite import insert as dialect_insert
        else:
            from sqlalchemy.dialects.postgresql import insert as dialect_insert  # type: ignore[assignment]
        self._counter_stmt = _counter_upsert(dialect_insert)
        self._his_marks: list[str] = []  # check-ins committed or about to be, not yet told to the HIS

    def _next_number(self, conn: Connection, dept_id: str, day: str, *, capped: bool) -> tuple[int, str]:
        dept = self.ctx.hospital.department(dept_id)
        assert dept is not None
        n = self.ctx.sql(conn, self._counter_stmt, {"dept": dept_id, "day": day}).scalar_one()
        if capped and dept.daily_capacity is not None and n > dept.daily_capacity:  # appointments, emergencies: always
            raise DailyCapacityReached(f"{dept.name.get('en', dept_id)} has issued all {dept.daily_capacity} "
                                       "tickets for today.")
        return n, f"{dept.prefix}{n:03d}"

    def _check_open(self, dept_id: str, now: datetime) -> None:
        dept = self.ctx.hospital.department(dept_id)
        assert dept is not None
        local = now.astimezone(self.ctx.tz).time()
        if local < dept.opens or (dept.closes is not None and local >= dept.closes):
            closes = dept.closes.strftime("%H:%M") if dept.closes else "24:00"
            raise DepartmentClosed(f"{dept.name.get('en', dept_id)} is closed now; it is open from "
                                   f"{dept.opens.strftime('%H:%M')} to {closes}.")

    def _priority_words(self, patient, day: date) -> str | None:  # type: ignore[no-untyped-def]
        rules = self.ctx.rules
        groups = rules.priority_groups
        if patient is None:
            return None
        age = patient.age_on(day)
        if "elderly" in groups and age >= rules.elderly_age:
            return f"age {age}"
        if "pregnant" in groups and patient.pregnant:
            return "pregnant"
        if "disabled" in groups and patient.disabled:
            return "disabled"
        return None

    def _insert_ticket(self, tx: Tx, now: datetime, **values: Any) -> Record:
        day = self.ctx.today(now)
        capped = values.get("source") != "appointment" and not values.get("emergency")
        n, number = self._next_number(tx.conn, values["department"], day, capped=capped)
        ticket_id = secrets.token_urlsafe(12)
        row = dict(ticket_id=ticket_id, day=day, number_seq=n, number=number, issued_at=now, arrived_at=now,
                   status="waiting", recall_count=0, recalls_total=0, no_show_count=0, emergency=False,
                   is_returning=False, masked_name="", language="zh", room=None, priority=None)
        row.update(values)
        full = dict(_EMPTY_TICKET)
        full.update(row)
        return self.ctx.sql(tx.conn, _I_TICKET, full).one()

    def check_in(self, appointment_no: str, *, idem_key: str | None = None, fingerprint: str = "") -> Issued:
        """Check in an appointment: a new ticket, or the ticket it already has today (``created`` False)."""
        ctx = self.ctx
        appt_no = appointment_no.strip().upper()
        appt = ctx.backend.find_appointment(appt_no)
        if appt is None:
            raise AppointmentNotFound(f"There is no appointment {appt_no}. Please check the number on your slip "
                                      "or ask at the desk.")
        if appt.status == "cancelled":
            raise AppointmentNotUsable(f"Appointment {appt_no} was cancelled. Please ask at the desk.")
        dept = ctx.hospital.department(appt.department)
        if dept is None:
            raise AppointmentNotUsable(f"Appointment {appt_no} is for {appt.department}, which this site does "
                                       "not run.")
        patient = ctx.backend.get_patient(appt.patient_id)

        def op(tx: Tx, now: datetime) -> Issued:
            day = ctx.today(now)
            existing = ctx.sql(tx.conn, _Q_TICKET_OF_APPOINTMENT, {"day": day, "no": appt_no}).first()
            if existing is not None:
                return Issued(self.tickets.out(tx.conn, existing, now, already=True), created=False)
            local_slot = appt.slot_start.astimezone(ctx.tz)
            if local_slot.date().isoformat() != day:
                raise AppointmentNotUsable(f"Appointment {appt_no} is on {local_slot:%Y-%m-%d}, not today.")
            opens = appt.slot_start - timedelta(minutes=ctx.rules.checkin_opens_before_min)
            if now < opens:
                raise AppointmentNotUsable(f"Check-in for your {local_slot:%H:%M} appointment opens at "
                                           f"{opens.astimezone(ctx.tz):%H:%M}.")
            # A booked room this site does not have, or that does not serve the department, is a
            # booking error: the patient still gets a ticket, queued for the department.
            booked = ctx.hospital.room(appt.room) if appt.room else None
            room_id = booked.id if booked is not None and appt.department in booked.departments else None
            if appt.room and room_id is None:
                log.warning("appointment %s booked into room %s, which does not serve %s: queued for the department",
                            appt_no, appt.room, appt.department)
            affected = {room_id} if room_id else set(ctx.rooms_of_dept(appt.department))
            row = self._insert_ticket(
                tx, now, department=appt.department, room=room_id, source="appointment", appointment_no=appt_no,
                patient_id=appt.patient_id, masked_name=mask_name(patient.name if patient else ""),
                language=patient.language if patient else "zh", priority=self._priority_words(patient, now.astimezone(ctx.tz).date()),
                emergency=dept.emergency, slot_start=appt.slot_start, slot_end=appt.slot_end,
            )
            self.snapshots.bump(tx, affected, now, tickets_changed={row["ticket_id"]: row})
            self._mark_checked_in(tx, appt_no)
            return Issued(self.tickets.out(tx.conn, row, now), created=True)

        return self.writes.run(op, idem_key=idem_key, fingerprint=fingerprint)

    def walk_in(self, department: str, *, priority: str | None = None, emergency: bool = False,
                language: str = "zh", source: str = "walk_in", name: str | None = None,
                patient_id: str | None = None, idem_key: str | None = None, fingerprint: str = "") -> Issued:
        """Issue a ticket without an appointment (kiosk registration or staff at a desk).

        With ``patient_id`` (a patient the caller has identified, e.g. the kiosk's patient session)
        the ticket is the patient's as a check-in's is: patient id, masked name, language and the
        priority words from the patient's age and needs; ``priority``, ``language`` and ``name``
        then only fill what the patient record does not give. Without it the ticket is anonymous.
        """
        ctx = self.ctx
        dept = ctx.hospital.department(department)
        if dept is None:
            raise DepartmentNotFound(f"There is no department {department!r}.")
        if priority is not None and priority not in ctx.rules.priority_groups:
            raise BadRequestError(f"Priority group {priority!r} is not one of "
                                  f"{', '.join(ctx.rules.priority_groups)}.")
        patient = ctx.backend.get_patient(patient_id) if patient_id is not None else None
        if patient_id is not None and patient is None:
            raise PatientNotFound("The hospital system does not know this patient. Please ask at the desk.")

        def op(tx: Tx, now: datetime) -> Issued:
            if not (emergency or dept.emergency):
                self._check_open(department, now)
            words = self._priority_words(patient, now.astimezone(ctx.tz).date()) or {
                "elderly": f"age {ctx.rules.elderly_age}+", "pregnant": "pregnant",
                "disabled": "disabled"}.get(priority or "")
            row = self._insert_ticket(tx, now, department=department, source=source, priority=words,
                                      emergency=emergency or dept.emergency,
                                      language=patient.language if patient else language,
                                      patient_id=patient.patient_id if patient else None,
                                      masked_name=mask_name(patient.name if patient else name or ""))
            self.snapshots.bump(tx, set(ctx.rooms_of_dept(department)), now, tickets_changed={row["ticket_id"]: row})
            return Issued(self.tickets.out(tx.conn, row, now), created=True)

        return self.writes.run(op, idem_key=idem_key, fingerprint=fingerprint)

    # ------------------------------------------------------------ the HIS's check-in marks
    def _mark_checked_in(self, tx: Tx, appt_no: str) -> None:
        """Tell the HIS after the commit; a group commit's check-ins go in one HIS transaction."""
        self._his_marks.append(appt_no)  # only ever touched under the store's writer lock

        def forget() -> None:
            if appt_no in self._his_marks:
                self._his_marks.remove(appt_no)

        tx.on_rollback(forget)
        tx.after_commit(self._flush_his_marks)

    def _flush_his_marks(self) -> None:
        marks, self._his_marks = self._his_marks, []
        if marks:  # empty: an earlier hook of the same group commit sent them
            self._send_his_marks(marks)

    def _send_his_marks(self, marks: list[str]) -> None:
        try:
            self.ctx.backend.mark_checked_in_many(marks)
        except Exception:  # the tickets are ours and committed; the HIS flag is informational
            log.exception("could not mark %s checked in at the hospital backend", ", ".join(marks))
