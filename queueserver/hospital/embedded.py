"""``EmbeddedHospitalBackend``: the default ``HospitalBackend``, a small hospital kept in SQLite.

Used by the demo and the tests, and by a site that has no HIS to connect yet. Tables are
prefixed ``his_`` so the backend can share one SQLite file with the queue server's own
tables, or live in a file of its own. One connection guarded by a lock keeps every method
thread-safe (uvicorn calls it from a thread pool); WAL with ``synchronous=FULL`` makes a
recorded payment survive a power cut once the call has returned.

Seed the demo hospital with :func:`queueserver.hospital.seed.seed_demo`.
"""
from __future__ import annotations

import hashlib
import json
import sqlite3
import threading
from collections.abc import Callable, Sequence
from datetime import date, datetime, time, timedelta, timezone
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

from protocol.errors import ConflictError, NotFoundError
from queueserver.hospital.desk_records import ChannelCounts
from queueserver.hospital.einvoice import ElectronicInvoice
from queueserver.hospital.einvoice import ensure_schema as ensure_einvoice_schema
from queueserver.hospital.port import (
    Appointment,
    Bill,
    BillItem,
    LabReport,
    Patient,
    PaymentRecord,
)

if TYPE_CHECKING:  # booking is an optional capability (queueserver.hospital.booking)
    from queueserver.hospital.booking import Booking, DepartmentHours, Slot

_SCHEMA = """
CREATE TABLE IF NOT EXISTS his_patients (
    patient_id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    birth_date TEXT NOT NULL,
    phone TEXT,
    id_last4 TEXT,
    pregnant INTEGER NOT NULL DEFAULT 0,
    disabled INTEGER NOT NULL DEFAULT 0,
    insured INTEGER NOT NULL DEFAULT 1,
    pay_later_eligible INTEGER NOT NULL DEFAULT 0,
    language TEXT NOT NULL DEFAULT 'zh'
);
CREATE INDEX IF NOT EXISTS his_patients_phone ON his_patients(phone);
CREATE TABLE IF NOT EXISTS his_cards (
    card_number TEXT PRIMARY KEY,
    patient_id TEXT NOT NULL REFERENCES his_patients(patient_id),
    kind TEXT NOT NULL DEFAULT 'id'
);
CREATE TABLE IF NOT EXISTS his_appointments (
    appointment_no TEXT PRIMARY KEY,
    patient_id TEXT NOT NULL REFERENCES his_patients(patient_id),
    department TEXT NOT NULL,
    slot_start TEXT NOT NULL,
    slot_end TEXT NOT NULL,
    clinician TEXT,
    room TEXT,
    status TEXT NOT NULL DEFAULT 'booked'
);
CREATE INDEX IF NOT EXISTS his_appointments_patient ON his_appointments(patient_id);
CREATE TABLE IF NOT EXISTS his_bills (
    bill_id TEXT PRIMARY KEY,
    patient_id TEXT NOT NULL REFERENCES his_patients(patient_id),
    status TEXT NOT NULL DEFAULT 'outstanding',
    payment_id TEXT
);
CREATE TABLE IF NOT EXISTS his_bill_items (
    bill_id TEXT NOT NULL REFERENCES his_bills(bill_id),
    seq INTEGER NOT NULL,
    description TEXT NOT NULL,
    amount TEXT NOT NULL,
    insurance_covered TEXT NOT NULL,
    PRIMARY KEY (bill_id, seq)
);
CREATE TABLE IF NOT EXISTS his_payments (
    payment_id TEXT PRIMARY KEY,
    bill_ids TEXT NOT NULL,
    method TEXT NOT NULL,
    amount TEXT NOT NULL,
    status TEXT NOT NULL,
    paid_at TEXT,
    provider_ref TEXT
);
CREATE TABLE IF NOT EXISTS his_desk_payments (  -- bills paid at the staffed cash desk (dashboard's kiosk share)
    payment_id TEXT PRIMARY KEY,
    bill_ids TEXT NOT NULL,
    amount TEXT NOT NULL,
    paid_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS his_reports (
    report_id TEXT PRIMARY KEY,
    patient_id TEXT NOT NULL REFERENCES his_patients(patient_id),
    title TEXT NOT NULL,
    ready INTEGER NOT NULL,
    ready_at TEXT,
    pdf_path TEXT,
    prints INTEGER NOT NULL DEFAULT 0,
    extra TEXT NOT NULL DEFAULT '{}'
);
"""

PAYMENT_METHODS = frozenset({"insurance_card", "qr", "payment_code", "bank_card", "pay_later"})
PAYMENT_STATUSES = frozenset({"pending", "paid", "failed", "deferred"})
_FINAL = frozenset({"paid", "failed", "deferred"})
DEMO_VERIFY_BASE = "https://einvoice.sandbox.invalid"  # until configure_einvoice names the queue server
DEMO_INVOICE_CODE = "3106{yy:02d}01"  # demo 票据代码: region 31, outpatient bills, year, batch (not a real code)


def _dt(text: str | None) -> datetime | None:
    return datetime.fromisoformat(text) if text else None


def _iso(value: datetime | None) -> str | None:
    if value is None:
        return None
    if value.tzinfo is None:  # a naive datetime here is a bug in the caller; refuse to guess
        raise ValueError("datetimes given to the hospital backend must be timezone-aware")
    return value.isoformat()


class EmbeddedHospitalBackend:
    """SQLite implementation of :class:`~queueserver.hospital.port.HospitalBackend`.

    ``db_path`` may be ``":memory:"`` for a throw-away hospital. ``timezone`` is the
    hospital's local zone: "today" for :meth:`appointments_for_patient` is a local day.
    """

    def __init__(self, db_path: str | Path, *, timezone_name: str = "Asia/Shanghai") -> None:
        self.db_path = str(db_path)
        self.tz = ZoneInfo(timezone_name)
        if self.db_path != ":memory:":
            Path(self.db_path).parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.RLock()
        self._db = sqlite3.connect(self.db_path, check_same_thread=False, isolation_level=None)
        self._db.row_factory = sqlite3.Row
        with self._lock:
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=FULL")
            self._db.execute("PRAGMA busy_timeout=5000")
            self._db.execute("PRAGMA foreign_keys=ON")
            self._db.executescript(_SCHEMA)
            ensure_einvoice_schema(self._db)  # the optional e-invoice capability's own tables
        self.einvoice_verify_base = DEMO_VERIFY_BASE

    # -- lifecycle -------------------------------------------------------------------------------
    def close(self) -> None:
        """Close the database; idempotent."""
        with self._lock:
            try:
                self._db.close()
            except sqlite3.ProgrammingError:
                pass

    def __enter__(self) -> "EmbeddedHospitalBackend":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _tx(self):
        """A write transaction (``BEGIN IMMEDIATE`` so concurrent writers queue, not fail)."""
        backend = self

        class _Tx:
            def __enter__(self_inner):
                backend._lock.acquire()
                backend._db.execute("BEGIN IMMEDIATE")
                return backend._db

            def __exit__(self_inner, exc_type, exc, tb):
                try:
                    backend._db.execute("ROLLBACK" if exc_type else "COMMIT")
                finally:
                    backend._lock.release()
                return False

        return _Tx()

    def _query(self, sql: str, args: tuple = ()) -> list[sqlite3.Row]:
        with self._lock:
            return self._db.execute(sql, args).fetchall()

    # -- writing the hospital (seed, admin tools) ---------------------------------------------
    def is_empty(self) -> bool:
        return not self._query("SELECT 1 FROM his_patients LIMIT 1")

    def clear(self) -> None:
        """Delete every patient, appointment, bill, payment and report (re-seeding)."""
        with self._tx() as db:
            for table in ("his_einvoices", "his_bill_items", "his_payments", "his_desk_payments", "his_bills", "his_reports", "his_appointments",
                          "his_cards", "his_patients"):
                db.execute(f"DELETE FROM {table}")

    def add_patient(self, patient: Patient, *, card_kinds: dict[str, str] | None = None) -> None:
        """Insert or replace a patient and their cards (``card_kinds``: card number -> "id"/"insurance")."""
        kinds = card_kinds or {}
        with self._tx() as db:
            db.execute(
                "INSERT INTO his_patients VALUES (?,?,?,?,?,?,?,?,?,?) ON CONFLICT(patient_id) DO UPDATE SET "
                "name=excluded.name, birth_date=excluded.birth_date, phone=excluded.phone, "
                "id_last4=excluded.id_last4, pregnant=excluded.pregnant, disabled=excluded.disabled, "
                "insured=excluded.insured, pay_later_eligible=excluded.pay_later_eligible, "
                "language=excluded.language",
                (patient.patient_id, patient.name, patient.birth_date.isoformat(), patient.phone,
                 patient.id_last4, int(patient.pregnant), int(patient.disabled), int(patient.insured),
                 int(patient.pay_later_eligible), patient.language),
            )
            db.execute("DELETE FROM his_cards WHERE patient_id = ?", (patient.patient_id,))
            for number in patient.card_numbers:
                db.execute("INSERT OR REPLACE INTO his_cards VALUES (?,?,?)",
                           (number, patient.patient_id, kinds.get(number, "id")))

    def add_appointment(self, appt: Appointment) -> None:
        with self._tx() as db:
            db.execute(
                "INSERT OR REPLACE INTO his_appointments VALUES (?,?,?,?,?,?,?,?)",
                (appt.appointment_no.upper(), appt.patient_id, appt.department, _iso(appt.slot_start),
                 _iso(appt.slot_end), appt.clinician, appt.room, appt.status),
            )

    def add_bill(self, bill: Bill) -> None:
        with self._tx() as db:
            db.execute("INSERT INTO his_bills (bill_id, patient_id, status) VALUES (?,?,?) "
                       "ON CONFLICT(bill_id) DO UPDATE SET patient_id=excluded.patient_id, status=excluded.status",
                       (bill.bill_id, bill.patient_id, bill.status))
            db.execute("DELETE FROM his_bill_items WHERE bill_id = ?", (bill.bill_id,))
            for seq, item in enumerate(bill.items):
                db.execute("INSERT INTO his_bill_items VALUES (?,?,?,?,?)",
                           (bill.bill_id, seq, json.dumps(item.description, ensure_ascii=False),
                            str(item.amount), str(item.insurance_covered)))

    def add_report(self, report: LabReport) -> None:
        with self._tx() as db:
            db.execute(
                "INSERT OR REPLACE INTO his_reports VALUES (?,?,?,?,?,?,?,?)",
                (report.report_id, report.patient_id, json.dumps(report.title, ensure_ascii=False),
                 int(report.ready), _iso(report.ready_at), str(report.pdf_path) if report.pdf_path else None,
                 report.prints, json.dumps(report.extra, ensure_ascii=False)),
            )

    def set_report_ready(self, report_id: str, pdf_path: Path) -> LabReport:
        """Mark a report finished (what the lab system does when results are signed off)."""
        with self._tx() as db:
            cur = db.execute("UPDATE his_reports SET ready = 1, pdf_path = ? WHERE report_id = ?",
                             (str(pdf_path), report_id))
            if cur.rowcount == 0:
                raise NotFoundError(f"There is no report {report_id}.")
        report = self.get_report(report_id)
        assert report is not None
        return report

    # -- patients ----------------------------------------------------------------------------------
    def _patient(self, row: sqlite3.Row | None) -> Patient | None:
        if row is None:
            return None
        cards = tuple(r["card_number"] for r in self._query(
            "SELECT card_number FROM his_cards WHERE patient_id = ? ORDER BY card_number", (row["patient_id"],)))
        return Patient(
            patient_id=row["patient_id"], name=row["name"], birth_date=date.fromisoformat(row["birth_date"]),
            phone=row["phone"], id_last4=row["id_last4"], card_numbers=cards, pregnant=bool(row["pregnant"]),
            disabled=bool(row["disabled"]), insured=bool(row["insured"]),
            pay_later_eligible=bool(row["pay_later_eligible"]), language=row["language"],
        )

    def get_patient(self, patient_id: str) -> Patient | None:
        rows = self._query("SELECT * FROM his_patients WHERE patient_id = ?", (patient_id,))
        return self._patient(rows[0] if rows else None)

    def find_patient_by_card(self, card_number: str) -> Patient | None:
        rows = self._query("SELECT patient_id FROM his_cards WHERE card_number = ?", (card_number.strip().upper(),))
        return self.get_patient(rows[0]["patient_id"]) if rows else None

    def find_patient_by_phone(self, phone: str, id_last4: str) -> Patient | None:
        # Both must match: a phone number alone is not enough to show someone's bills.
        rows = self._query("SELECT * FROM his_patients WHERE phone = ? AND upper(id_last4) = ?",
                           (phone.strip(), id_last4.strip().upper()))
        return self._patient(rows[0]) if len(rows) == 1 else None

    # -- appointments ------------------------------------------------------------------------------
    @staticmethod
    def _appointment(row: sqlite3.Row) -> Appointment:
        return Appointment(
            appointment_no=row["appointment_no"], patient_id=row["patient_id"], department=row["department"],
            slot_start=datetime.fromisoformat(row["slot_start"]), slot_end=datetime.fromisoformat(row["slot_end"]),
            clinician=row["clinician"], room=row["room"], status=row["status"],
        )

    def find_appointment(self, appointment_no: str) -> Appointment | None:
        rows = self._query("SELECT * FROM his_appointments WHERE appointment_no = ?",
                           (appointment_no.strip().upper(),))
        return self._appointment(rows[0]) if rows else None

    def appointments_for_patient(self, patient_id: str, day: date) -> list[Appointment]:
        start = datetime.combine(day, time(0), self.tz)
        end = start + timedelta(days=1)
        rows = self._query("SELECT * FROM his_appointments WHERE patient_id = ?", (patient_id,))
        found = [self._appointment(r) for r in rows]
        # Compare as instants: slots may have been stored with any UTC offset.
        return sorted((a for a in found if start <= a.slot_start < end), key=lambda a: a.slot_start)

    def mark_checked_in(self, appointment_no: str) -> None:
        with self._tx() as db:
            cur = db.execute("UPDATE his_appointments SET status = 'checked_in' WHERE appointment_no = ? "
                             "AND status != 'cancelled'", (appointment_no.strip().upper(),))
            if cur.rowcount == 0:
                exists = db.execute("SELECT status FROM his_appointments WHERE appointment_no = ?",
                                    (appointment_no.strip().upper(),)).fetchone()
                if exists is None:
                    raise NotFoundError(f"There is no appointment {appointment_no}.")
                raise ConflictError(f"Appointment {appointment_no} was cancelled.")

    def mark_checked_in_many(self, appointment_nos: Sequence[str]) -> None:
        with self._tx() as db:  # one commit for a whole group of check-ins
            db.executemany("UPDATE his_appointments SET status = 'checked_in' WHERE appointment_no = ? "
                           "AND status != 'cancelled'", [(no.strip().upper(),) for no in appointment_nos])

    # -- bills and payments ------------------------------------------------------------------------
    def _bill(self, row: sqlite3.Row) -> Bill:
        items = tuple(
            BillItem(description=json.loads(r["description"]), amount=Decimal(r["amount"]),
                     insurance_covered=Decimal(r["insurance_covered"]))
            for r in self._query("SELECT * FROM his_bill_items WHERE bill_id = ? ORDER BY seq", (row["bill_id"],))
        )
        return Bill(bill_id=row["bill_id"], patient_id=row["patient_id"], items=items, status=row["status"])

    def get_bill(self, bill_id: str) -> Bill | None:
        rows = self._query("SELECT * FROM his_bills WHERE bill_id = ?", (bill_id,))
        return self._bill(rows[0]) if rows else None

    def outstanding_bills(self, patient_id: str) -> list[Bill]:
        rows = self._query("SELECT * FROM his_bills WHERE patient_id = ? AND status = 'outstanding' "
                           "ORDER BY bill_id", (patient_id,))
        return [self._bill(r) for r in rows]

    @staticmethod
    def _payment(row: sqlite3.Row) -> PaymentRecord:
        return PaymentRecord(
            payment_id=row["payment_id"], bill_ids=tuple(json.loads(row["bill_ids"])), method=row["method"],
            amount=Decimal(row["amount"]), status=row["status"], paid_at=_dt(row["paid_at"]),
            provider_ref=row["provider_ref"],
        )

    def get_payment(self, payment_id: str) -> PaymentRecord | None:
        rows = self._query("SELECT * FROM his_payments WHERE payment_id = ?", (payment_id,))
        return self._payment(rows[0]) if rows else None

    def record_payment(self, payment: PaymentRecord) -> PaymentRecord:
        """Record a payment (or its new status) for some bills; idempotent on ``payment_id``.

        A payment moves ``pending`` -> ``paid``/``failed``/``deferred`` once; recording it
        again returns what is stored and changes nothing, so a retried request never settles
        a bill twice. Raises ``NotFoundError`` for an unknown bill, ``ConflictError`` when a
        bill is already settled by another payment or the amount is not the self-pay total.
        """
        if payment.method not in PAYMENT_METHODS:
            raise ValueError(f"Unknown payment method {payment.method!r}.")
        if payment.status not in PAYMENT_STATUSES:
            raise ValueError(f"Unknown payment status {payment.status!r}.")
        if not payment.bill_ids:
            raise ValueError("A payment must name at least one bill.")
        with self._tx() as db:
            row = db.execute("SELECT * FROM his_payments WHERE payment_id = ?", (payment.payment_id,)).fetchone()
            if row is not None:
                stored = self._payment(row)
                if stored.status in _FINAL or payment.status == "pending" or stored.status == payment.status:
                    return stored  # a retry: same answer as the first time
                if set(stored.bill_ids) != set(payment.bill_ids) or stored.amount != payment.amount:
                    raise ConflictError(f"Payment {payment.payment_id} was started for other bills or another amount.")
            total = Decimal("0")
            for bill_id in payment.bill_ids:
                bill_row = db.execute("SELECT * FROM his_bills WHERE bill_id = ?", (bill_id,)).fetchone()
                if bill_row is None:
                    raise NotFoundError(f"There is no bill {bill_id}.")
                if bill_row["status"] != "outstanding" and bill_row["payment_id"] != payment.payment_id:
                    raise ConflictError(f"Bill {bill_id} is already {bill_row['status']}.")
                total += sum((Decimal(r["amount"]) - Decimal(r["insurance_covered"]) for r in db.execute(
                    "SELECT amount, insurance_covered FROM his_bill_items WHERE bill_id = ?", (bill_id,))),
                    Decimal("0"))
            if payment.amount != total:
                raise ConflictError(f"The amount {payment.amount} does not match the self-pay total {total}.")
            paid_at = payment.paid_at
            if payment.status == "paid" and paid_at is None:
                paid_at = datetime.now(timezone.utc)
            db.execute(
                "INSERT OR REPLACE INTO his_payments VALUES (?,?,?,?,?,?,?)",
                (payment.payment_id, json.dumps(list(payment.bill_ids)), payment.method, str(payment.amount),
                 payment.status, _iso(paid_at), payment.provider_ref),
            )
            if payment.status in ("paid", "deferred"):
                for bill_id in payment.bill_ids:
                    db.execute("UPDATE his_bills SET status = ?, payment_id = ? WHERE bill_id = ?",
                               (payment.status, payment.payment_id, bill_id))
            row = db.execute("SELECT * FROM his_payments WHERE payment_id = ?", (payment.payment_id,)).fetchone()
            return self._payment(row)

    # -- reports -----------------------------------------------------------------------------------
    @staticmethod
    def _report(row: sqlite3.Row) -> LabReport:
        return LabReport(
            report_id=row["report_id"], patient_id=row["patient_id"], title=json.loads(row["title"]),
            ready=bool(row["ready"]), ready_at=_dt(row["ready_at"]),
            pdf_path=Path(row["pdf_path"]) if row["pdf_path"] else None, prints=row["prints"],
            extra=json.loads(row["extra"]),
        )

    def get_report(self, report_id: str) -> LabReport | None:
        rows = self._query("SELECT * FROM his_reports WHERE report_id = ?", (report_id,))
        return self._report(rows[0]) if rows else None

    def reports_for_patient(self, patient_id: str) -> list[LabReport]:
        rows = self._query("SELECT * FROM his_reports WHERE patient_id = ? ORDER BY report_id", (patient_id,))
        return [self._report(r) for r in rows]

    def record_report_print(self, report_id: str) -> LabReport:
        """Count one print of a ready report (the reprint limit is the kiosk API's setting, not the HIS's)."""
        with self._tx() as db:
            row = db.execute("SELECT ready FROM his_reports WHERE report_id = ?", (report_id,)).fetchone()
            if row is None:
                raise NotFoundError(f"There is no report {report_id}.")
            if not row["ready"]:
                raise ConflictError(f"Report {report_id} is not ready yet.")
            db.execute("UPDATE his_reports SET prints = prints + 1 WHERE report_id = ?", (report_id,))
        report = self.get_report(report_id)
        assert report is not None
        return report

    # -- where bills were paid (queueserver.hospital.desk_records.PaymentChannels) ----------------
    def record_desk_payment(self, payment_id: str, bill_ids: Sequence[str], amount: Decimal, paid_at: datetime) -> None:
        """A payment taken at the staffed cash desk: settles its bills; idempotent on ``payment_id``."""
        with self._tx() as db:
            if db.execute("SELECT 1 FROM his_desk_payments WHERE payment_id = ?", (payment_id,)).fetchone():
                return
            for bill_id in bill_ids:
                row = db.execute("SELECT status FROM his_bills WHERE bill_id = ?", (bill_id,)).fetchone()
                if row is None:
                    raise NotFoundError(f"There is no bill {bill_id}.")
                if row["status"] != "outstanding":
                    raise ConflictError(f"Bill {bill_id} is already {row['status']}.")
            db.execute("INSERT INTO his_desk_payments VALUES (?,?,?,?)",
                       (payment_id, json.dumps(list(bill_ids)), str(amount), _iso(paid_at)))
            for bill_id in bill_ids:
                db.execute("UPDATE his_bills SET status = 'paid', payment_id = ? WHERE bill_id = ?", (payment_id, bill_id))

    def payments_by_channel(self, first: date, last: date, tz: ZoneInfo) -> ChannelCounts:
        """Paid kiosk payments (``his_payments``) and desk payments whose local day is in ``first``..``last``."""
        def count(sql: str) -> int:  # paid_at keeps the offset it was given: compare as local days
            return sum(1 for r in self._query(sql) if first <= datetime.fromisoformat(r[0]).astimezone(tz).date() <= last)

        return ChannelCounts(kiosk=count("SELECT paid_at FROM his_payments WHERE status = 'paid' AND paid_at IS NOT NULL"),
                             desk=count("SELECT paid_at FROM his_desk_payments"))

    # -- booking (optional capability, queueserver.hospital.booking) -----------------------------
    # Kept in one block with its own tables (created on first use) so the core backend stays as it was.
    def configure_booking(self, hours: Sequence["DepartmentHours"], *, offers_sms: bool,
                          clock: "Callable[[], datetime] | None" = None) -> None:
        """Departments that take bookings (from the hospital file) and whether reminders go out by SMS."""
        from queueserver.hospital.booking import OutboxReminderSender, ensure_schema

        with self._lock:
            ensure_schema(self._db)
        self._booking_hours = {h.department: h for h in hours}
        self.reminders = OutboxReminderSender(self._db) if offers_sms else None
        self._booking_clock = clock or (lambda: datetime.now(self.tz))

    def _hours(self, department: str) -> "DepartmentHours":
        hours = getattr(self, "_booking_hours", {}).get(department)
        if hours is None:
            raise NotFoundError(f"The department {department!r} takes no bookings.")
        return hours  # type: ignore[no-any-return]

    def _booking(self, appointment_no: str) -> "Booking":
        from queueserver.hospital.booking import Booking

        appt = self.find_appointment(appointment_no)
        if appt is None:
            raise NotFoundError(f"There is no appointment {appointment_no}.")
        rows = self._query("SELECT * FROM his_bookings WHERE appointment_no = ?", (appt.appointment_no,))
        return Booking(appt, rows[0]["booked_by"] if rows else None, rows[0]["relation"] if rows else None)

    def free_slots(self, department: str, day: date) -> list["Slot"]:
        """The department's slots of ``day`` still free and not yet started."""
        from queueserver.hospital.booking import day_slots

        hours = getattr(self, "_booking_hours", {}).get(department)
        if hours is None:
            return []  # "not found" is an empty list, like every other look-up of the port
        now = self._booking_clock()
        taken = {r["slot_start"] for r in self._query(
            "SELECT slot_start FROM his_appointments WHERE department = ? AND status != 'cancelled'", (department,))}
        taken_at = {datetime.fromisoformat(t) for t in taken}
        return [s for s in day_slots(hours, day, self.tz) if s.start > now and s.start not in taken_at]

    def _check_free(self, db: sqlite3.Connection, slot: "Slot", ignore_no: str | None = None) -> None:
        from queueserver.hospital.booking import SlotInPastError, SlotTakenError, day_slots

        hours = self._hours(slot.department)
        if slot.start <= self._booking_clock():
            raise SlotInPastError("This time has already passed; please choose a later one.")
        if slot not in day_slots(hours, slot.start.astimezone(self.tz).date(), self.tz):
            raise NotFoundError(f"{slot.slot_id} is not one of the department's slots.")
        for row in db.execute("SELECT appointment_no, slot_start FROM his_appointments WHERE department = ? AND "
                              "status != 'cancelled'", (slot.department,)):
            if datetime.fromisoformat(row["slot_start"]) == slot.start and row["appointment_no"] != ignore_no:
                raise SlotTakenError("Someone else has just booked this time; please choose another one.")

    def _remind(self, db: sqlite3.Connection, appt: Appointment) -> None:
        from queueserver.hospital.booking import Reminder, reminder_text

        patient = self.get_patient(appt.patient_id)
        if self.reminders is None or patient is None or not patient.phone:
            return  # the hospital offers no SMS, or there is no number to send to
        text = reminder_text(appt, self._hours(appt.department), self.tz, patient.language)
        self.reminders.queue(Reminder(patient.phone, text, appt.appointment_no, appt.slot_start - timedelta(days=1)))

    def book(self, patient_id: str, slot: "Slot", *, request_id: str, booked_by: str | None = None,
             relation: str | None = None) -> "Booking":
        """Book a free future slot; a retried ``request_id`` returns the first booking and books nothing."""
        with self._tx() as db:
            done = db.execute("SELECT appointment_no FROM his_bookings WHERE request_id = ?", (request_id,)).fetchone()
            if done is None:
                if db.execute("SELECT 1 FROM his_patients WHERE patient_id = ?", (patient_id,)).fetchone() is None:
                    raise NotFoundError(f"There is no patient {patient_id}.")
                self._check_free(db, slot)
                count = db.execute("SELECT count(*) FROM his_bookings").fetchone()[0]
                no = f"BK{count + 1:05d}"
                appt = Appointment(no, patient_id, slot.department, slot.start, slot.end)
                db.execute("INSERT INTO his_appointments VALUES (?,?,?,?,?,?,?,?)",
                           (no, patient_id, slot.department, _iso(slot.start), _iso(slot.end), None, None, "booked"))
                db.execute("INSERT INTO his_bookings VALUES (?,?,?,?)", (no, request_id, booked_by, relation))
                self._remind(db, appt)
                appointment_no = no
            else:
                appointment_no = done["appointment_no"]
        return self._booking(appointment_no)

    def _own_booked(self, appointment_no: str, patient_id: str) -> "Booking":
        booking = self._booking(appointment_no)
        if patient_id not in (booking.appointment.patient_id, booking.booked_by):
            raise NotFoundError(f"There is no appointment {appointment_no} for this patient.")
        if booking.appointment.status != "booked":
            raise ConflictError(f"Appointment {appointment_no} is {booking.appointment.status.replace('_', ' ')}.")
        return booking

    def reschedule(self, appointment_no: str, slot: "Slot", *, patient_id: str) -> "Booking":
        """Move a booked appointment (of the patient, or booked by them) to another free slot."""
        booking = self._own_booked(appointment_no, patient_id)
        with self._tx() as db:
            self._check_free(db, slot, ignore_no=booking.appointment.appointment_no)
            db.execute("UPDATE his_appointments SET department = ?, slot_start = ?, slot_end = ? "
                       "WHERE appointment_no = ?", (slot.department, _iso(slot.start), _iso(slot.end),
                                                    booking.appointment.appointment_no))
            self._remind(db, self._booking(appointment_no).appointment)
        return self._booking(appointment_no)

    def cancel(self, appointment_no: str, *, patient_id: str) -> "Booking":
        """Cancel a booked appointment; cancelling a cancelled one again returns it unchanged."""
        booking = self._booking(appointment_no)
        if booking.appointment.status == "cancelled" and patient_id in (booking.appointment.patient_id,
                                                                         booking.booked_by):
            return booking
        self._own_booked(appointment_no, patient_id)
        with self._tx() as db:
            db.execute("UPDATE his_appointments SET status = 'cancelled' WHERE appointment_no = ?",
                       (booking.appointment.appointment_no,))
        return self._booking(appointment_no)

    def bookings_for_patient(self, patient_id: str) -> list["Booking"]:
        """Future booked appointments of the patient and those they booked for someone else."""
        now = self._booking_clock()
        rows = self._query("SELECT a.appointment_no FROM his_appointments a LEFT JOIN his_bookings b "
                           "ON a.appointment_no = b.appointment_no WHERE (a.patient_id = ? OR b.booked_by = ?) "
                           "AND a.status = 'booked'", (patient_id, patient_id))
        found = [self._booking(r["appointment_no"]) for r in rows]
        return sorted((b for b in found if b.appointment.slot_end > now), key=lambda b: b.appointment.slot_start)

    # -- electronic invoices (optional capability, queueserver.hospital.einvoice) ---------------
    # The demo stands in for the finance bureau's e-bill platform: it issues at once, or after
    # ``set_einvoice_delay`` seconds (a slow platform), and its verification URLs open the queue
    # server's own demo check page (``configure_einvoice``).
    def configure_einvoice(self, verify_base: str) -> None:
        """Where the demo's verification URLs point (the queue server's public URL)."""
        self.einvoice_verify_base = verify_base.rstrip("/")

    def set_einvoice_delay(self, seconds: float) -> None:
        """Demo: the platform answers ``seconds`` after a request (0: at once; pending ones due now are issued
        on their next read). Kept in the database, so every process of the server sees it."""
        with self._tx() as db:
            db.execute("INSERT INTO his_einvoice_platform VALUES ('delay_s', ?) ON CONFLICT(key) DO UPDATE SET "
                       "value = excluded.value", (str(float(seconds)),))

    @staticmethod
    def _einvoice(row: sqlite3.Row) -> ElectronicInvoice:
        return ElectronicInvoice(
            payment_id=row["payment_id"], patient_id=row["patient_id"], bill_ids=tuple(json.loads(row["bill_ids"])),
            total=Decimal(row["total"]), insurance_part=Decimal(row["insurance_part"]), self_pay=Decimal(row["self_pay"]),
            status=row["status"], requested_at=datetime.fromisoformat(row["requested_at"]),
            invoice_code=row["invoice_code"], invoice_number=row["invoice_number"], check_code=row["check_code"],
            issued_at=_dt(row["issued_at"]), verify_url=row["verify_url"])

    def _platform_answers(self, db: sqlite3.Connection, row: sqlite3.Row) -> sqlite3.Row:
        """Issue a pending invoice whose time has come (the demo platform's answer)."""
        if row["status"] != "pending":
            return row
        setting = db.execute("SELECT value FROM his_einvoice_platform WHERE key = 'delay_s'").fetchone()
        now = datetime.now(timezone.utc)
        if now < datetime.fromisoformat(row["requested_at"]) + timedelta(seconds=float(setting[0]) if setting else 0.0):
            return row
        seq = (db.execute("SELECT max(seq) FROM his_einvoices").fetchone()[0] or 0) + 1
        code = DEMO_INVOICE_CODE.format(yy=now.astimezone(self.tz).year % 100)
        number = f"{seq:010d}"
        check = hashlib.sha256(f"{row['payment_id']}:{seq}".encode()).hexdigest()[:6].upper()
        url = f"{self.einvoice_verify_base}/einvoice/{code}/{number}?c={check}"
        db.execute("UPDATE his_einvoices SET status = 'issued', seq = ?, invoice_code = ?, invoice_number = ?, "
                   "check_code = ?, issued_at = ?, verify_url = ? WHERE payment_id = ?",
                   (seq, code, number, check, _iso(now), url, row["payment_id"]))
        return db.execute("SELECT * FROM his_einvoices WHERE payment_id = ?", (row["payment_id"],)).fetchone()

    def issue_invoice(self, payment_id: str) -> ElectronicInvoice:
        """The e-invoice of a paid payment, requested from the (demo) platform on the first call; idempotent."""
        with self._tx() as db:
            row = db.execute("SELECT * FROM his_einvoices WHERE payment_id = ?", (payment_id,)).fetchone()
            if row is None:
                pay = db.execute("SELECT * FROM his_payments WHERE payment_id = ?", (payment_id,)).fetchone()
                if pay is None:
                    raise NotFoundError(f"There is no payment {payment_id}.")
                if pay["status"] != "paid":
                    raise ConflictError(f"Payment {payment_id} is {pay['status']}: only a paid payment gets an invoice.")
                bill_ids = json.loads(pay["bill_ids"])
                total = insurance = Decimal("0")
                for bill_id in bill_ids:
                    for item in db.execute("SELECT amount, insurance_covered FROM his_bill_items WHERE bill_id = ?",
                                           (bill_id,)):
                        total += Decimal(item["amount"])
                        insurance += Decimal(item["insurance_covered"])
                patient = db.execute("SELECT patient_id FROM his_bills WHERE bill_id = ?", (bill_ids[0],)).fetchone()
                db.execute("INSERT INTO his_einvoices (payment_id, patient_id, bill_ids, total, insurance_part, self_pay, "
                           "status, requested_at) VALUES (?,?,?,?,?,?,'pending',?)",
                           (payment_id, patient["patient_id"], pay["bill_ids"], str(total), str(insurance),
                            pay["amount"], _iso(datetime.now(timezone.utc))))
                row = db.execute("SELECT * FROM his_einvoices WHERE payment_id = ?", (payment_id,)).fetchone()
            return self._einvoice(self._platform_answers(db, row))

    def invoices_for_patient(self, patient_id: str) -> list[ElectronicInvoice]:
        with self._tx() as db:
            rows = db.execute("SELECT * FROM his_einvoices WHERE patient_id = ? ORDER BY requested_at DESC",
                              (patient_id,)).fetchall()
            return [self._einvoice(self._platform_answers(db, r)) for r in rows]

    def find_invoice(self, invoice_code: str, invoice_number: str) -> ElectronicInvoice | None:
        """Demo check page: the issued invoice with this code and number (the caller compares the check code)."""
        rows = self._query("SELECT * FROM his_einvoices WHERE invoice_code = ? AND invoice_number = ? "
                           "AND status = 'issued'", (invoice_code, invoice_number))
        return self._einvoice(rows[0]) if rows else None
