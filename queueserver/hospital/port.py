"""``HospitalBackend``: the port between clinicflow and a hospital information system (HIS).

clinicflow never owns patients, appointments, bills or lab reports: the hospital's
HIS does. Everything the queue server needs from it goes through this one interface,
so a site adapts clinicflow to its HIS by writing one class. The embedded default
(``queueserver.hospital.embedded.EmbeddedHospitalBackend``) keeps a small demo
hospital in SQLite. A real adapter maps these calls onto, for example, HL7 FHIR R4:

    find_patient_by_card      Patient?identifier=<system>|<card number>
    find_patient_by_phone     Patient?telecom=<phone>, then check the last four ID digits
    get_patient               Patient/<id>
    find_appointment          Appointment?identifier=<appointment no>
    appointments_for_patient  Appointment?patient=<id>&date=<day>
    outstanding_bills         Invoice?subject=<id>&status=issued  (ChargeItem for lines)
    record_payment            PaymentReconciliation / PaymentNotice for the invoice
    reports_for_patient       DiagnosticReport?subject=<id> (presentedForm: the PDF)

Optional capabilities, each its own protocol a backend may implement as well: ``PaymentChannels``
(``desk_records.py``), ``BookingBackend`` (``booking.py``), ``ElectronicInvoices`` (``einvoice.py``).

Rules for implementations: methods are synchronous and thread-safe; "not found" is
``None`` or an empty list, never an exception; ``record_payment`` is idempotent on
``payment_id`` (a retried payment is recorded once). Values are plain frozen
dataclasses so the queue rules can use them without knowing where they came from.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Protocol, runtime_checkable


@dataclass(frozen=True)
class Patient:
    patient_id: str
    name: str  # full name: never leaves the server except masked
    birth_date: date
    phone: str | None = None
    id_last4: str | None = None  # last four characters of the national ID, for phone identification
    card_numbers: tuple[str, ...] = ()  # ID card and insurance card numbers
    pregnant: bool = False
    disabled: bool = False
    insured: bool = True
    pay_later_eligible: bool = False
    language: str = "zh"

    def age_on(self, day: date) -> int:
        years = day.year - self.birth_date.year
        return years - ((day.month, day.day) < (self.birth_date.month, self.birth_date.day))


@dataclass(frozen=True)
class Appointment:
    appointment_no: str  # as printed on the slip and in its QR code
    patient_id: str
    department: str  # department id, as in the hospital file (e.g. "internal")
    slot_start: datetime  # timezone-aware
    slot_end: datetime
    clinician: str | None = None
    room: str | None = None  # a room fixed by the booking, if any
    status: str = "booked"  # booked, checked_in, cancelled


@dataclass(frozen=True)
class BillItem:
    description: dict[str, str]  # per language
    amount: Decimal
    insurance_covered: Decimal


@dataclass(frozen=True)
class Bill:
    bill_id: str
    patient_id: str
    items: tuple[BillItem, ...]
    status: str = "outstanding"  # outstanding, paid, deferred

    @property
    def total(self) -> Decimal:
        return sum((i.amount for i in self.items), Decimal("0"))

    @property
    def insurance_part(self) -> Decimal:
        return sum((i.insurance_covered for i in self.items), Decimal("0"))

    @property
    def self_pay(self) -> Decimal:
        return self.total - self.insurance_part


@dataclass(frozen=True)
class PaymentRecord:
    payment_id: str  # idempotency key of the payment, chosen by the kiosk before it starts
    bill_ids: tuple[str, ...]
    method: str  # insurance_card, qr, payment_code, bank_card, pay_later
    amount: Decimal
    status: str  # pending, paid, failed, deferred
    paid_at: datetime | None = None
    provider_ref: str | None = None


@dataclass(frozen=True)
class LabReport:
    report_id: str
    patient_id: str
    title: dict[str, str]
    ready: bool
    ready_at: datetime | None = None  # when a report not yet ready is expected
    pdf_path: Path | None = None
    prints: int = 0
    extra: dict[str, str] = field(default_factory=dict)


@runtime_checkable
class HospitalBackend(Protocol):
    """What clinicflow needs from a hospital information system (see the module docstring)."""

    def get_patient(self, patient_id: str) -> Patient | None: ...

    def find_patient_by_card(self, card_number: str) -> Patient | None: ...

    def find_patient_by_phone(self, phone: str, id_last4: str) -> Patient | None: ...

    def find_appointment(self, appointment_no: str) -> Appointment | None: ...

    def appointments_for_patient(self, patient_id: str, day: date) -> list[Appointment]: ...

    def mark_checked_in(self, appointment_no: str) -> None: ...

    def mark_checked_in_many(self, appointment_nos: Sequence[str]) -> None:
        """Mark several appointments at once (one HIS transaction); unknown or cancelled ones are skipped."""
        ...

    def outstanding_bills(self, patient_id: str) -> list[Bill]: ...

    def record_payment(self, payment: PaymentRecord) -> PaymentRecord: ...

    def get_payment(self, payment_id: str) -> PaymentRecord | None: ...

    def reports_for_patient(self, patient_id: str) -> list[LabReport]: ...

    def record_report_print(self, report_id: str) -> LabReport: ...
