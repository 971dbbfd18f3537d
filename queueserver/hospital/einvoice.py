"""``ElectronicInvoices``: an optional capability of a hospital backend that issues electronic bills (电子票据).

In China a hospital settles a payment in its HIS and the HIS has the medical electronic bill
(医疗收费电子票据) issued through the finance bureau's platform: a bill code (票据代码), a bill
number (票据号码), a check code (校验码), the amounts and a verification address the patient's
phone opens from the QR code. A backend that can do this implements this protocol beside
``HospitalBackend``; one that cannot simply does not, and the kiosk's receipt carries no invoice
lines (the desk hands out invoices as before) and the phone page shows no invoice section.

Issuing can be slow (the platform is outside the hospital): ``issue_invoice`` must not wait for
it. It returns at once, either the issued invoice or one with ``status == "pending"``, and the
invoice appears in ``invoices_for_patient`` when the platform has answered. Both calls are
idempotent and thread-safe like the rest of the port. HL7 FHIR R4 (see docs/hospital-backend.md):

    issue_invoice          the HIS's e-bill operation on the settled Invoice (no standard FHIR
                           operation: a custom ``Invoice/<id>/$issue-ebill`` or the HIS's own API)
    invoices_for_patient   Invoice?subject=<patient>&status=balanced, the e-bill code and number as
                           ``Invoice.identifier``; the verification address as a DocumentReference
                           whose ``context.related`` is the Invoice
"""
from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Literal, Protocol, runtime_checkable

InvoiceStatus = Literal["pending", "issued"]


@dataclass(frozen=True)
class ElectronicInvoice:
    """The electronic bill of one paid payment. While ``pending`` the code, number, check code,
    issue time and verification URL are empty: the platform has not answered yet."""

    payment_id: str
    patient_id: str
    bill_ids: tuple[str, ...]
    total: Decimal  # the bills' total (what the e-bill states as 合计)
    insurance_part: Decimal  # paid by the insurance fund (医保统筹支付)
    self_pay: Decimal  # what the patient paid
    status: InvoiceStatus
    requested_at: datetime
    invoice_code: str = ""  # 票据代码 (8 digits)
    invoice_number: str = ""  # 票据号码 (10 digits)
    check_code: str = ""  # 校验码 (6 characters)
    issued_at: datetime | None = None
    verify_url: str = ""  # what the receipt's QR code and the phone page's link open


@runtime_checkable
class ElectronicInvoices(Protocol):
    def issue_invoice(self, payment_id: str) -> ElectronicInvoice:
        """The electronic bill of a paid payment, issuing it if not yet asked for; returns at once,
        ``pending`` while the platform works. ``NotFoundError`` for an unknown payment,
        ``ConflictError`` for one that is not paid (a pay-later slip gets no invoice)."""
        ...

    def invoices_for_patient(self, patient_id: str) -> list[ElectronicInvoice]:
        """The patient's electronic bills, issued and pending, newest first."""
        ...


EINVOICE_SCHEMA = """
CREATE TABLE IF NOT EXISTS his_einvoices (
    payment_id TEXT PRIMARY KEY,
    patient_id TEXT NOT NULL,
    bill_ids TEXT NOT NULL,
    total TEXT NOT NULL,
    insurance_part TEXT NOT NULL,
    self_pay TEXT NOT NULL,
    status TEXT NOT NULL,
    requested_at TEXT NOT NULL,
    seq INTEGER UNIQUE,
    invoice_code TEXT NOT NULL DEFAULT '',
    invoice_number TEXT NOT NULL DEFAULT '',
    check_code TEXT NOT NULL DEFAULT '',
    issued_at TEXT,
    verify_url TEXT NOT NULL DEFAULT ''
);
CREATE INDEX IF NOT EXISTS his_einvoices_patient ON his_einvoices(patient_id);
CREATE TABLE IF NOT EXISTS his_einvoice_platform (  -- the demo's stand-in for the finance bureau's platform
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
"""


def ensure_schema(db: sqlite3.Connection) -> None:
    """Create the e-invoice tables of the embedded backend (idempotent; no queue-store migration)."""
    db.executescript(EINVOICE_SCHEMA)
