"""Electronic invoices (电子票据): on the kiosk's receipt and on the phone status page.

Only where the hospital backend implements ``queueserver.hospital.einvoice.ElectronicInvoices``;
elsewhere payments and receipts work as before, with no invoice lines.

* After a payment is recorded ``paid``, the patient API (``PaymentOut.invoice``) asks the backend
  for its invoice through an :class:`InvoiceClerk`, which waits at most ``wait_s`` seconds: a slow
  backend gives a ``pending`` invoice, never a receipt held up. Every later read of the payment
  asks again (the backend's call is idempotent).
* ``GET /api/v1/phone/invoices`` (phone session: phone + last 4 of the ID) lists the identified
  patient's invoices, pending ones included, with their verification links. Without the
  capability it answers ``{"available": false}`` to anyone, so the page shows no section.
* ``GET /einvoice/{code}/{number}?c=<check code>``: the demo backend's stand-in for the finance
  bureau's verification page (only where the backend has ``find_invoice``; a real adapter's
  verification URLs point at the platform itself).
"""
from __future__ import annotations

import html
import logging
import threading
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from string import Template
from typing import Any
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Header
from fastapi.responses import HTMLResponse
from pydantic import BaseModel

from protocol.api_patient import InvoiceOut
from protocol.errors import ConflictError, NotFoundError
from protocol.privacy import mask_name
from queueserver.booking_api import SESSION_NEEDED, PhoneIdentity
from queueserver.hospital.einvoice import ElectronicInvoice, ElectronicInvoices

log = logging.getLogger(__name__)


def invoice_out(inv: ElectronicInvoice) -> InvoiceOut:
    return InvoiceOut(status=inv.status, invoice_code=inv.invoice_code, invoice_number=inv.invoice_number,
                      check_code=inv.check_code, total=inv.total, self_pay=inv.self_pay, issued_at=inv.issued_at,
                      verify_url=inv.verify_url)


class InvoiceClerk:
    """Asks the backend for a paid payment's invoice without ever waiting more than ``wait_s`` seconds.

    A kiosk reads a payment many times (it polls while a QR code is shown): one question per payment is
    in flight at a time, on two threads at most, so a backend stuck on its platform ties up two threads,
    not one per read.
    """

    def __init__(self, backend: Any, wait_s: float = 2.0) -> None:
        self.backend = backend if isinstance(backend, ElectronicInvoices) else None
        self.wait_s = wait_s
        self._pool = ThreadPoolExecutor(max_workers=2, thread_name_prefix="einvoice")
        self._asking: dict[str, Future[ElectronicInvoice]] = {}
        self._lock = threading.RLock()  # a question already answered runs its done-callback in this thread

    @property
    def available(self) -> bool:
        return self.backend is not None

    def invoice(self, payment_id: str, amount: Decimal | None = None) -> InvoiceOut | None:
        """The invoice of a paid payment: issued, ``pending`` (slow or failing backend), or None (no capability,
        or the backend says the payment gets none)."""
        backend = self.backend
        if backend is None:
            return None
        with self._lock:
            asking = self._asking.get(payment_id)
            if asking is None:
                asking = self._asking[payment_id] = self._pool.submit(backend.issue_invoice, payment_id)
                asking.add_done_callback(lambda _done: self._forget(payment_id))
        try:
            return invoice_out(asking.result(timeout=self.wait_s))
        except TimeoutError:
            log.warning("e-invoice of %s: the hospital backend did not answer in %.1f s", payment_id, self.wait_s)
        except (NotFoundError, ConflictError):
            return None
        except Exception as exc:  # noqa: BLE001 - a failing platform: asked again on the next read
            log.warning("e-invoice of %s: the hospital backend failed: %s", payment_id, exc)
        return InvoiceOut(status="pending", self_pay=amount)

    def _forget(self, payment_id: str) -> None:
        with self._lock:
            self._asking.pop(payment_id, None)


class PhoneInvoiceOut(BaseModel):
    status: str  # pending, issued
    invoice_code: str
    invoice_number: str
    check_code: str
    total: Decimal
    insurance_part: Decimal
    self_pay: Decimal
    requested_at: datetime
    issued_at: datetime | None
    verify_url: str


class PhoneInvoicesOut(BaseModel):
    available: bool  # false: this hospital's backend issues no e-invoices (the page shows no section)
    identified: bool  # false: no session was sent (the list is empty; the page asks to identify)
    invoices: list[PhoneInvoiceOut]
    timezone: str


CHECK_PAGE = Path(__file__).parent / "pages" / "einvoice.html"  # $-fields: its hashed <style> stays as written


def einvoice_router(service: Any, ident: PhoneIdentity) -> APIRouter:
    """The phone page's invoice list and the demo check page (see the module docstring)."""
    router = APIRouter(tags=["einvoice"])
    backend = service.backend
    available = isinstance(backend, ElectronicInvoices)
    configure = getattr(backend, "configure_einvoice", None)
    if available and configure is not None:
        configure(str(getattr(service, "public_url", "")))  # the demo's verification URLs open this server

    @router.get("/api/v1/phone/invoices", response_model=PhoneInvoicesOut, responses=SESSION_NEEDED)
    def invoices(x_patient_session: str | None = Header(None, max_length=64)) -> PhoneInvoicesOut:
        tz = service.hospital.site.timezone
        if not available or not x_patient_session:
            return PhoneInvoicesOut(available=available, identified=False, invoices=[], timezone=tz)
        patient = ident.patient(x_patient_session)
        found = backend.invoices_for_patient(patient.patient_id)
        return PhoneInvoicesOut(available=True, identified=True, timezone=tz, invoices=[PhoneInvoiceOut(
            status=i.status, invoice_code=i.invoice_code, invoice_number=i.invoice_number, check_code=i.check_code,
            total=i.total, insurance_part=i.insurance_part, self_pay=i.self_pay, requested_at=i.requested_at,
            issued_at=i.issued_at, verify_url=i.verify_url) for i in found])

    find = getattr(backend, "find_invoice", None)
    if available and find is not None:
        page = Template(CHECK_PAGE.read_text(encoding="utf-8"))

        @router.get("/einvoice/{code}/{number}", response_class=HTMLResponse, include_in_schema=False)
        def check_page(code: str, number: str, c: str = "") -> HTMLResponse:
            inv = find(code, number)
            if inv is None or not c or c.upper() != inv.check_code:
                return HTMLResponse("<!doctype html><p>查无此票据 No e-invoice has this code, number and check code.</p>",
                                    status_code=404)
            patient = backend.get_patient(inv.patient_id)
            issued = inv.issued_at.astimezone(ZoneInfo(service.hospital.site.timezone)) if inv.issued_at else None
            names = service.hospital.site.name
            values = {"hospital": " ".join(dict.fromkeys(n for n in (names.get("zh"), names.get("en")) if n)),
                      "code": inv.invoice_code, "number": inv.invoice_number, "check": inv.check_code,
                      "payer": mask_name(patient.name) if patient else "",
                      "issued": f"{issued:%Y-%m-%d %H:%M}" if issued else "", "total": f"{inv.total:.2f}",
                      "insurance": f"{inv.insurance_part:.2f}", "paid": f"{inv.self_pay:.2f}"}
            return HTMLResponse(page.substitute({k: html.escape(v, quote=True) for k, v in values.items()}))

    return router
