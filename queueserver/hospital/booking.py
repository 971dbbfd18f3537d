"""Booking future appointments: an optional capability of a ``HospitalBackend``.

A backend that can book implements :class:`BookingBackend` as well (check with
``isinstance(backend, BookingBackend)``); one that cannot is still a complete hospital
backend, and the kiosk and phone page simply offer no booking. FHIR R4 mapping for an
adapter (see docs/hospital-backend.md):

    free_slots            Slot?schedule.actor=<department>&start=ge<day>&status=free
    book                  POST Appointment (status booked, slot reference, participant = patient;
                          a relative booking adds the relative as a participant with type "booker")
    reschedule            PATCH Appointment.slot / start / end
    cancel                Appointment.status = cancelled
    bookings_for_patient  Appointment?patient=<id>&date=ge<today>&status=booked

The embedded demo backend keeps its bookings in its own tables (:func:`ensure_schema`) and
generates slots from the hospital file's department hours (``opens``, ``closes``,
``slot_minutes``, between 15 and 30 minutes for booking).

Reminders go through a :class:`ReminderSender` (an SMS gateway at a real site); the demo's
:class:`OutboxReminderSender` keeps them in a table so tests and staff can read what was sent.
"""
from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from typing import Protocol, runtime_checkable
from zoneinfo import ZoneInfo

from protocol.errors import ConflictError, NotFoundError
from queueserver.hospital.port import Appointment

MIN_SLOT_MIN, MAX_SLOT_MIN = 15, 30


class SlotTakenError(ConflictError):
    """The slot was booked by someone else meanwhile (HTTP 409)."""


class SlotInPastError(ConflictError):
    """The slot has already started (HTTP 409): a future appointment only."""


@dataclass(frozen=True)
class Slot:
    """One bookable slot of a department (timezone-aware start and end)."""

    department: str
    start: datetime
    end: datetime

    @property
    def slot_id(self) -> str:
        """Stable text id for a slot, used by the kiosk and the phone page (``internal@2026-12-04T09:00+08:00``)."""
        return f"{self.department}@{self.start.isoformat(timespec='minutes')}"

    @classmethod
    def parse(cls, slot_id: str, minutes: int) -> "Slot":
        """The slot named by ``slot_id`` (``ValueError`` if it is not one)."""
        department, _, start_text = slot_id.partition("@")
        start = datetime.fromisoformat(start_text)
        if not department or start.tzinfo is None:
            raise ValueError(f"{slot_id!r} is not a slot id")
        return cls(department, start, start + timedelta(minutes=minutes))


@dataclass(frozen=True)
class Booking:
    """A booked appointment with who booked it (``booked_by``: the relative's patient id, or None)."""

    appointment: Appointment
    booked_by: str | None = None
    relation: str | None = None  # e.g. "child", as the relative said


@dataclass(frozen=True)
class Reminder:
    """One reminder text queued for a patient's phone."""

    phone: str
    text: str
    appointment_no: str
    send_at: datetime


class ReminderSender(Protocol):
    """The SMS port: queue a reminder (a real adapter hands it to the hospital's SMS gateway)."""

    def queue(self, reminder: Reminder) -> None: ...


@runtime_checkable
class BookingBackend(Protocol):
    """What booking needs from the HIS (see the module docstring)."""

    def free_slots(self, department: str, day: date) -> list[Slot]: ...

    def book(self, patient_id: str, slot: Slot, *, request_id: str, booked_by: str | None = None,
             relation: str | None = None) -> Booking:
        """Book ``slot``; idempotent on ``request_id``; ``SlotTakenError``/``SlotInPastError``."""
        ...

    def reschedule(self, appointment_no: str, slot: Slot, *, patient_id: str) -> Booking: ...

    def cancel(self, appointment_no: str, *, patient_id: str) -> Booking: ...

    def bookings_for_patient(self, patient_id: str) -> list[Booking]: ...


BOOKING_SCHEMA = """
CREATE TABLE IF NOT EXISTS his_bookings (
    appointment_no TEXT PRIMARY KEY REFERENCES his_appointments(appointment_no),
    request_id TEXT NOT NULL UNIQUE,
    booked_by TEXT,
    relation TEXT
);
CREATE TABLE IF NOT EXISTS his_sms_outbox (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    phone TEXT NOT NULL,
    text TEXT NOT NULL,
    appointment_no TEXT NOT NULL,
    send_at TEXT NOT NULL
);
"""


def ensure_schema(db: sqlite3.Connection) -> None:
    """Create the booking tables of the embedded backend (idempotent)."""
    db.executescript(BOOKING_SCHEMA)


class OutboxReminderSender:
    """Demo SMS gateway: reminders are kept in ``his_sms_outbox`` (read with :meth:`sent`)."""

    def __init__(self, db: sqlite3.Connection) -> None:
        self.db = db

    def queue(self, reminder: Reminder) -> None:
        self.db.execute("INSERT INTO his_sms_outbox (phone, text, appointment_no, send_at) VALUES (?,?,?,?)",
                        (reminder.phone, reminder.text, reminder.appointment_no, reminder.send_at.isoformat()))

    def sent(self, phone: str | None = None) -> list[Reminder]:
        rows = self.db.execute("SELECT * FROM his_sms_outbox ORDER BY seq").fetchall()
        return [Reminder(r["phone"], r["text"], r["appointment_no"], datetime.fromisoformat(r["send_at"]))
                for r in rows if phone is None or r["phone"] == phone]


@dataclass(frozen=True)
class DepartmentHours:
    """What slot generation needs of a department in the hospital file."""

    department: str
    name: dict[str, str]
    opens: time
    closes: time | None
    slot_minutes: int
    room_hint: dict[str, str] | None = None  # "where": a room or area name per language, for reminders

    @property
    def booking_minutes(self) -> int:
        """The slot length for booking: the department's, held to 15-30 minutes."""
        return min(MAX_SLOT_MIN, max(MIN_SLOT_MIN, self.slot_minutes))


def day_slots(hours: DepartmentHours, day: date, tz: ZoneInfo) -> list[Slot]:
    """Every slot of ``day`` between the department's opening and closing (local time)."""
    step = timedelta(minutes=hours.booking_minutes)
    start = datetime.combine(day, hours.opens, tz)
    end = datetime.combine(day, hours.closes, tz) if hours.closes else datetime.combine(day + timedelta(days=1),
                                                                                        time(0), tz)
    slots = []
    while start + step <= end:
        slots.append(Slot(hours.department, start, start + step))
        start += step
    return slots


def reminder_text(appt: Appointment, hours: DepartmentHours, tz: ZoneInfo, language: str) -> str:
    """The SMS text: when and where (department, and room if the booking fixed one)."""
    when = appt.slot_start.astimezone(tz)
    place = hours.name.get(language) or hours.name.get("zh") or hours.department
    if hours.room_hint:
        place += " " + (hours.room_hint.get(language) or next(iter(hours.room_hint.values())))
    if language == "en":
        return (f"Reminder: your appointment {appt.appointment_no} is on {when:%Y-%m-%d} at {when:%H:%M}, "
                f"{place}. Please check in at a kiosk up to 60 minutes before.")
    return (f"【就诊提醒】您的预约 {appt.appointment_no}：{when:%Y-%m-%d} {when:%H:%M}，{place}。"
            "请提前到自助机签到。")


__all__ = ["BookingBackend", "Booking", "DepartmentHours", "NotFoundError", "OutboxReminderSender", "Reminder",
           "ReminderSender", "Slot", "SlotInPastError", "SlotTakenError", "day_slots", "ensure_schema",
           "reminder_text"]
