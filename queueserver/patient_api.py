"""Patient-facing API of the queue server, used by kiosks (and the sandbox phone payment page).

``build_patient_router(...)`` returns a FastAPI router; the server's app includes it and
passes in its parts (hospital backend, ticket issuer, payment provider, alert sink, auth).
Endpoints (models in ``protocol.api_patient``)::

    POST   /api/v1/patient/identify                  qr | card | phone+last4 -> PatientOut (session)
    DELETE /api/v1/patient/session                   end the session (kiosk went back to Home)
    GET    /api/v1/patient/appointments              today's, with early/on_time/late timing
    GET    /api/v1/patient/walk-in-departments       departments and free slots for walk-ins
    POST   /api/v1/patient/registrations             walk-in ticket (Idempotency-Key)
    GET    /api/v1/patient/bills                     itemised, insurance/self-pay split, methods
    POST   /api/v1/patient/payments                  start/record a payment (idempotent on payment_id); a paid
                                                     one carries its e-invoice where the backend issues them
    GET    /api/v1/payments/{id}                     a payment's state (kiosk reconciliation, QR polling)
    POST   /api/v1/payments/{id}/cancel              withdraw a pending QR (or unanswered payment-code) payment
    POST   /api/v1/payments/{id}/confirm             sandbox: the QR order was paid (admin)
    POST   /api/v1/payments/{id}/reconcile           a card payment approved before a kiosk crash
    GET    /pay/{id}?t=..., POST /pay/{id}           sandbox phone page behind the QR code
    GET    /api/v1/patient/reports                   reports, ready or not (with when), reprints left
    GET    /api/v1/patient/reports/{id}/pdf          the PDF (refused past the reprint limit)
    POST   /api/v1/patient/reports/{id}/prints       record one finished print
    POST   /api/v1/help-requests                     "call staff" -> a help item for the desk + Alert (MQTT)
    GET    /api/v1/help-requests/{id}                the kiosk hears back: acknowledged by whom, escalated

(The staff side of help requests is ``queueserver.helpdesk_api``.)

Patient calls need ``X-Patient-Session`` from identify: the kiosk token alone never reads
anyone's bills or reports. Sessions and idempotency answers are kept in the queue store
(``queueserver.patient_state``): they survive a restart and are shared by every worker
process and replica; a session expires after ``session_ttl`` seconds without use. Identification is throttled: failed attempts count
per kiosk (token and address) and per phone number in a sliding window (``identify_*`` settings);
over the limit the kiosk gets 429 with ``Retry-After`` and a sentence for the patient, and staff
get an Alert (kind ``help``) once per lock-out.
"""
from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from typing import Any, Callable, Protocol
from urllib.parse import quote
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Depends, Header, HTTPException, Request, Response
from fastapi.responses import HTMLResponse

from protocol.api import TicketOut
from protocol.api_patient import (
    AppointmentOut,
    AppointmentsOut,
    BillItemOut,
    BillOut,
    BillsOut,
    HelpOut,
    HelpRequest,
    IdentifyRequest,
    PatientOut,
    PaymentOut,
    PaymentRequest,
    ReconcileRequest,
    RegistrationRequest,
    ReportOut,
    ReportsOut,
    SlotOut,
    WalkInDepartmentOut,
    WalkInDepartmentsOut,
)
from protocol.errors import ConflictError, NotFoundError
from protocol.payloads import Alert
from protocol.privacy import mask_name
from queueserver.einvoice_api import InvoiceClerk
from queueserver.helpdesk import HelpDesk, HelpItem
from queueserver.hospital.port import HospitalBackend, Patient, PaymentRecord
from queueserver.patient_state import StoredAnswers, StoredSessions
from queueserver.page_security import html_page
from queueserver.payments.port import NotAPaymentCodeError, PaymentDeclinedError, PaymentProvider, payment_code_channel
from queueserver.throttle import FailureThrottle

log = logging.getLogger(__name__)

DEMO_DEPARTMENTS: dict[str, dict[str, str]] = {
    "internal": {"zh": "内科", "en": "Internal medicine"},
    "surgery": {"zh": "外科", "en": "Surgery"},
    "pediatrics": {"zh": "儿科", "en": "Paediatrics"},
    "emergency": {"zh": "急诊", "en": "Emergency"},
}


class TicketIssuer(Protocol):
    """What this router needs from the queue service: a walk-in ticket (idempotent on the key)."""

    def issue_walk_in(self, *, department: str, patient: Patient, slot_start: datetime | None,
                      emergency: bool, idempotency_key: str | None) -> TicketOut: ...


@dataclass
class PatientApiSettings:
    """Hospital settings for the patient API (from the hospital file)."""

    timezone: str = "Asia/Shanghai"
    session_ttl: float = 300.0
    checkin_opens_min: int = 60  # check-in opens this long before the slot
    late_grace_min: int = 15  # after the slot's start plus this, the patient is "late" (loses the slot's place)
    max_report_prints: int = 2  # first print plus one reprint
    pay_later_enabled: bool = True  # the hospital allows deferred payment for eligible patients
    payment_code_enabled: bool = True  # the scanner may read WeChat Pay / Alipay payment codes (micropay)
    einvoice_wait_s: float = 2.0  # longest wait for the backend's e-invoice before the receipt says "pending"
    elderly_age: int = 65
    walk_in_slot_min: int = 30
    walk_in_slots: int = 4  # slots offered from now on
    walk_in_capacity: int = 6  # patients per walk-in slot
    identify_window_s: float = 600.0  # failed identifications count for this long
    identify_kiosk_limit: int = 10  # failures per kiosk in the window before it must wait
    identify_phone_limit: int = 5  # failures per phone number in the window (any kiosk)
    departments: dict[str, dict[str, str]] = field(default_factory=lambda: dict(DEMO_DEPARTMENTS))
    icons: dict[str, str] = field(default_factory=lambda: {"internal": "stethoscope", "surgery": "bandage",
                                                           "pediatrics": "child", "emergency": "ambulance"})
    directions: dict[str, str] = field(default_factory=lambda: {
        "zh": "门诊大厅一楼 1 号窗口", "en": "window 1, outpatient hall, ground floor"})


def _money(value: Decimal) -> Decimal:
    return value.quantize(Decimal("0.01"))


def bearer_auth(tokens: dict[str, str]) -> Callable[..., Callable[[Request], str]]:
    """A minimal role check on ``Authorization: Bearer <token>`` (role -> token); the app may pass its own."""
    by_token = {tok: role for role, tok in tokens.items()}

    def require(*roles: str) -> Callable[[Request], str]:
        def dependency(request: Request) -> str:
            auth = request.headers.get("authorization", "")
            role = by_token.get(auth[7:]) if auth.lower().startswith("bearer ") else None
            if role is None:
                raise HTTPException(401, "A valid bearer token is required.")
            if role not in roles:
                raise HTTPException(403, f"The {role} role may not do this.")
            return role
        dependency.roles = roles  # type: ignore[attr-defined]  # read by queueserver.app.rights_table
        return dependency

    return require


def build_patient_router(*, hospital: HospitalBackend, tickets: TicketIssuer | None, payments: PaymentProvider,
                         require: Callable[..., Callable[..., Any]], sessions: StoredSessions, answers: StoredAnswers,
                         desk: HelpDesk, alert: Callable[[Alert], None] | None = None,
                         ticket_of: Callable[[str], tuple[str, str] | None] | None = None,
                         settings: PatientApiSettings | None = None,
                         now: Callable[[], datetime] | None = None) -> APIRouter:
    """The patient API router. ``require(*roles)`` builds an auth dependency (the app's token check);
    ``sessions``, ``answers`` and ``desk`` keep their state in the store; ``alert`` publishes an Alert
    (MQTT); ``ticket_of(patient_id)`` gives today's (ticket id, number) of a patient where known;
    ``now`` is injectable for tests."""
    cfg = settings or PatientApiSettings()
    tz = ZoneInfo(cfg.timezone)
    clock = now or (lambda: datetime.now(tz))
    router = APIRouter()
    kiosk = Depends(require("kiosk", "admin"))
    admin = Depends(require("admin"))
    by_kiosk = FailureThrottle(limit=cfg.identify_kiosk_limit, window_s=cfg.identify_window_s)
    by_phone = FailureThrottle(limit=cfg.identify_phone_limit, window_s=cfg.identify_window_s)
    clerk = InvoiceClerk(hospital, wait_s=cfg.einvoice_wait_s)  # e-invoices, where the backend issues them

    def patient_of(x_patient_session: str | None = Header(None, max_length=64)) -> Patient:
        pid = sessions.patient_id(x_patient_session)
        patient = hospital.get_patient(pid) if pid else None
        if patient is None:
            raise HTTPException(401, "Your session has ended. Please identify yourself again.")
        return patient

    # -- identification ---------------------------------------------------------------------------
    def too_many(wait: float) -> HTTPException:
        minutes = max(1, round(wait / 60))
        return HTTPException(429, f"Too many attempts that did not match. Please try again in {minutes} "
                                  "minute(s), or ask at the desk.", headers={"Retry-After": str(int(wait + 0.999))})

    def raise_alert(message: str) -> None:
        if alert is not None:
            alert(Alert(id=uuid.uuid4().hex[:16], ts=datetime.now(timezone.utc), kind="help", message=message[:200]))

    def check_throttle(kiosk_key: str, phone: str | None) -> None:
        wait = max(filter(None, (by_kiosk.retry_after(kiosk_key), by_phone.retry_after(phone) if phone else None)),
                   default=None)
        if wait is not None:
            raise too_many(wait)

    def identify_failed(kiosk_key: str, phone: str | None) -> None:
        minutes = round(cfg.identify_window_s / 60)
        if by_kiosk.failed(kiosk_key):
            log.warning("identification paused at %s: %d failures", kiosk_key, cfg.identify_kiosk_limit)
            raise_alert(f"Kiosk {kiosk_key}: {cfg.identify_kiosk_limit} failed identifications within {minutes} min; "
                        "identification is paused there. Someone may be guessing patients' details.")
        if phone and by_phone.failed(phone):
            raise_alert(f"{cfg.identify_phone_limit} failed identifications for phone ending {phone[-4:]} within "
                        f"{minutes} min; that number is paused.")

    @router.post("/api/v1/patient/identify", response_model=PatientOut, dependencies=[kiosk],
                 responses={429: {"description": "too many failed attempts: wait Retry-After seconds"}})
    def identify(body: IdentifyRequest, request: Request) -> PatientOut:
        who = getattr(request.state, "principal", None)
        kiosk_key = f"{getattr(who, 'name', 'kiosk')}@{request.client.host if request.client else 'unknown'}"
        phone = body.phone if body.method == "phone" else None
        check_throttle(kiosk_key, phone)
        appointment_no = None
        # The model checked that the method's fields are there; the `is not None` tests say so to mypy.
        if body.method == "qr" and body.appointment_no is not None:
            appt = hospital.find_appointment(body.appointment_no)
            patient = hospital.get_patient(appt.patient_id) if appt else None
            appointment_no = appt.appointment_no if appt else None
        elif body.method == "card" and body.card_number is not None:
            patient = hospital.find_patient_by_card(body.card_number)
        elif body.method == "phone" and body.phone is not None and body.id_last4 is not None:
            patient = hospital.find_patient_by_phone(body.phone, body.id_last4)
        else:  # not reached: IdentifyRequest refuses a method without its fields
            raise HTTPException(422, f"Identification by {body.method} needs its fields.")
        if patient is None:
            identify_failed(kiosk_key, phone)
            raise HTTPException(404, "No patient matches. Check the details or ask at the desk.")
        if phone:
            by_phone.forget(phone)
        age = patient.age_on(clock().date())
        priority = tuple(name for name, on in (("elderly", age >= cfg.elderly_age), ("pregnant", patient.pregnant),
                                               ("disabled", patient.disabled)) if on)
        return PatientOut(session=sessions.open(patient.patient_id), masked_name=mask_name(patient.name), age=age,
                          language=patient.language, priority=priority, offer_accessibility=age >= cfg.elderly_age,
                          insured=patient.insured, pay_later_eligible=patient.pay_later_eligible and cfg.pay_later_enabled,
                          appointment_no=appointment_no)

    @router.delete("/api/v1/patient/session", status_code=204, dependencies=[kiosk])
    def end_session(x_patient_session: str | None = Header(None, max_length=64)) -> Response:
        if x_patient_session:
            sessions.close(x_patient_session)
        return Response(status_code=204)

    # -- appointments -------------------------------------------------------------------------------
    @router.get("/api/v1/patient/appointments", response_model=AppointmentsOut, dependencies=[kiosk])
    def appointments(patient: Patient = Depends(patient_of)) -> AppointmentsOut:
        current = clock()
        out = []
        for a in hospital.appointments_for_patient(patient.patient_id, current.astimezone(tz).date()):
            opens = a.slot_start - timedelta(minutes=cfg.checkin_opens_min)
            late_after = a.slot_start + timedelta(minutes=cfg.late_grace_min)
            if a.status != "booked":
                timing = "closed"
            elif current < opens:
                timing = "early"
            elif current > late_after:
                timing = "late"
            else:
                timing = "on_time"
            out.append(AppointmentOut(appointment_no=a.appointment_no, department=a.department,
                                      department_name=cfg.departments.get(a.department, {"zh": a.department, "en": a.department}),
                                      slot_start=a.slot_start, slot_end=a.slot_end, clinician=a.clinician, status=a.status,
                                      timing=timing, checkin_opens_at=opens, late_after=late_after))
        return AppointmentsOut(appointments=tuple(out), now=current)

    # -- walk-in registration -----------------------------------------------------------------------
    @router.get("/api/v1/patient/walk-in-departments", response_model=WalkInDepartmentsOut, dependencies=[kiosk])
    def walk_in_departments() -> WalkInDepartmentsOut:
        current = clock().astimezone(tz)
        first = current.replace(minute=(current.minute // cfg.walk_in_slot_min) * cfg.walk_in_slot_min,
                                second=0, microsecond=0)
        step = timedelta(minutes=cfg.walk_in_slot_min)
        slots = tuple(SlotOut(start=first + i * step, end=first + (i + 1) * step, available=cfg.walk_in_capacity)
                      for i in range(cfg.walk_in_slots))
        return WalkInDepartmentsOut(departments=tuple(
            WalkInDepartmentOut(department=d, name=name, icon=cfg.icons.get(d, d), slots=() if d == "emergency" else slots)
            for d, name in cfg.departments.items()))

    @router.post("/api/v1/patient/registrations", response_model=TicketOut, status_code=201, dependencies=[kiosk])
    def register(body: RegistrationRequest, patient: Patient = Depends(patient_of),
                 idempotency_key: str | None = Header(None, min_length=1, max_length=100)) -> TicketOut:
        if body.department not in cfg.departments:
            raise HTTPException(404, f"There is no department {body.department!r}.")
        if tickets is None:
            raise HTTPException(409, "Walk-in registration is not available at this site.")
        if body.department == "emergency" or body.red_flag:
            # Staff triage emergencies: the kiosk sends the patient there and raises a red-flag help request.
            raise HTTPException(403, "Emergency tickets are issued by staff; go to the emergency department.")

        def issue() -> TicketOut:
            return tickets.issue_walk_in(department=body.department, patient=patient, slot_start=body.slot_start,
                                         emergency=False, idempotency_key=idempotency_key)
        # Domain errors (no such department, closed, capacity reached...) reach the app's one table.
        return answers.remember(f"reg:{idempotency_key}" if idempotency_key else None, TicketOut, issue)

    # -- bills and payments -------------------------------------------------------------------------
    def methods_for(patient: Patient) -> tuple[str, ...]:
        found = ["qr", "payment_code", "bank_card"] if cfg.payment_code_enabled else ["qr", "bank_card"]
        if patient.insured:
            found.insert(0, "insurance_card")
        if patient.pay_later_eligible and cfg.pay_later_enabled:
            found.append("pay_later")
        return tuple(found)

    @router.get("/api/v1/patient/bills", response_model=BillsOut, dependencies=[kiosk])
    def bills(patient: Patient = Depends(patient_of)) -> BillsOut:
        out = tuple(BillOut(bill_id=b.bill_id, total=b.total, insurance_part=b.insurance_part, self_pay=b.self_pay,
                            items=tuple(BillItemOut(description=i.description, amount=i.amount,
                                                    insurance_covered=i.insurance_covered,
                                                    self_pay=i.amount - i.insurance_covered) for i in b.items))
                    for b in hospital.outstanding_bills(patient.patient_id))
        zero = Decimal("0.00")
        return BillsOut(bills=out, total=sum((b.total for b in out), zero),
                        insurance_part=sum((b.insurance_part for b in out), zero),
                        self_pay=sum((b.self_pay for b in out), zero), methods=methods_for(patient))

    def payment_out(rec: PaymentRecord, detail: str = "") -> PaymentOut:
        qr = expires = None
        if rec.method == "qr" and rec.status == "pending":
            charge = payments.create_qr(rec.payment_id, rec.amount, "clinicflow bills")  # idempotent: same order
            qr, expires = charge.qr_payload, charge.expires_at
        invoice = clerk.invoice(rec.payment_id, _money(rec.amount)) if rec.status == "paid" else None
        return PaymentOut(payment_id=rec.payment_id, status=rec.status, method=rec.method, amount=_money(rec.amount),
                          bill_ids=rec.bill_ids, qr_payload=qr, expires_at=expires, provider_ref=rec.provider_ref,
                          detail=detail, invoice=invoice)

    def record(rec: PaymentRecord) -> PaymentRecord:
        try:
            return hospital.record_payment(rec)
        except NotFoundError as exc:
            raise HTTPException(404, str(exc)) from exc
        except ConflictError as exc:
            raise HTTPException(409, str(exc)) from exc
        except ValueError as exc:
            raise HTTPException(422, str(exc)) from exc

    def check_bills(patient: Patient, body: PaymentRequest) -> None:
        outstanding = {b.bill_id: b for b in hospital.outstanding_bills(patient.patient_id)}
        for bill_id in body.bill_ids:
            if bill_id not in outstanding:
                raise HTTPException(409, f"Bill {bill_id} is not outstanding for this patient (already paid?).")
        due = sum((outstanding[b].self_pay for b in body.bill_ids), Decimal("0"))
        if _money(due) != _money(body.amount):
            raise HTTPException(409, f"The amount changed: {_money(due)} is due now. Please look at the bills again.")

    @router.post("/api/v1/patient/payments", response_model=PaymentOut, dependencies=[kiosk])
    def pay(body: PaymentRequest, patient: Patient = Depends(patient_of)) -> PaymentOut:
        existing = hospital.get_payment(body.payment_id)
        if existing is not None and existing.status != "pending":
            return payment_out(existing)  # a retry: the first answer again, nothing charged twice
        check_bills(patient, body)
        base = PaymentRecord(payment_id=body.payment_id, bill_ids=body.bill_ids, method=body.method,
                             amount=body.amount, status="pending")
        if body.method == "qr":
            rec = record(base) if existing is None else existing
            return payment_out(rec)
        if body.method == "pay_later":
            if body.method not in methods_for(patient):
                raise HTTPException(403, "Paying later is not available for this patient.")
            return payment_out(record(replace(base, status="deferred")))
        if body.method == "insurance_card":
            if not patient.insured or not body.card_number:
                raise HTTPException(422, "Insert an insurance card to pay with it.")
            if hospital.find_patient_by_card(body.card_number) != patient:
                raise HTTPException(403, "This insurance card belongs to someone else.")
            record(base)  # pending first: a crash between charge and record is then visible
            try:
                ref = payments.charge_insurance(body.payment_id, body.card_number, body.amount)
            except PaymentDeclinedError as exc:
                failed = record(replace(base, status="failed"))
                return payment_out(failed, detail=str(exc))
            return payment_out(record(replace(base, status="paid", provider_ref=ref)))
        if body.method == "payment_code":
            return charge_payment_code(body, base, existing)
        # bank_card: the kiosk's terminal already approved; record it with the terminal's reference.
        if not body.terminal_ref:
            raise HTTPException(422, "A bank card payment needs the terminal's approval reference.")
        return payment_out(record(replace(base, status="paid", provider_ref=body.terminal_ref)))

    def charge_payment_code(body: PaymentRequest, base: PaymentRecord, existing: PaymentRecord | None) -> PaymentOut:
        """Micropay: the kiosk scanned the patient's payment code; charge it now (idempotent on payment_id)."""
        if not body.payment_code:
            raise HTTPException(422, "Show your WeChat Pay or Alipay payment code to the scanner to pay with it.")
        try:
            payment_code_channel(body.payment_code)
        except NotAPaymentCodeError as exc:
            raise HTTPException(422, str(exc)) from exc
        if existing is not None:  # pending: an earlier try may have charged before the server died
            settled = settle_provider(existing)
            if settled.status != "pending":
                return payment_out(settled)
        else:
            record(base)  # pending first: a crash between charge and record is then found by the order query
        try:
            ref = payments.charge_payment_code(body.payment_id, body.payment_code, body.amount, "clinicflow bills")
        except PaymentDeclinedError as exc:
            return payment_out(record(replace(base, status="failed")), detail=str(exc))
        return payment_out(record(replace(base, status="paid", provider_ref=ref)))

    def settle_provider(rec: PaymentRecord) -> PaymentRecord:
        """A pending payment-code payment: the provider's order query says what became of it."""
        if rec.method != "payment_code" or rec.status != "pending":
            return rec
        order = payments.query_order(rec.payment_id)
        if order is None or order.state == "pending":
            return rec
        status = "paid" if order.state in ("paid", "refunded") else "failed"
        return record(replace(rec, status=status, provider_ref=order.provider_ref or None))

    def settle_qr(rec: PaymentRecord) -> PaymentRecord:
        if rec.method == "payment_code":
            return settle_provider(rec)
        if rec.method != "qr" or rec.status != "pending":
            return rec
        state = payments.qr_state(rec.payment_id)
        if state == "pending":
            return rec
        return record(replace(rec, status=state))

    def get_record(payment_id: str) -> PaymentRecord:
        rec = hospital.get_payment(payment_id)
        if rec is None:
            raise HTTPException(404, f"There is no payment {payment_id}.")
        return rec

    @router.get("/api/v1/payments/{payment_id}", response_model=PaymentOut, dependencies=[kiosk])
    def payment_state(payment_id: str) -> PaymentOut:
        return payment_out(settle_qr(get_record(payment_id)))

    @router.post("/api/v1/payments/{payment_id}/cancel", response_model=PaymentOut, dependencies=[kiosk])
    def cancel(payment_id: str) -> PaymentOut:
        rec = get_record(payment_id)
        rec = settle_provider(rec)  # a payment code charged before a crash stays paid
        if rec.status == "pending":
            if rec.method == "payment_code":
                state = "paid" if payments.close_order(payment_id) in ("paid", "refunded") else "failed"
            else:
                state = payments.cancel_qr(payment_id) if rec.method == "qr" else "failed"
            rec = record(replace(rec, status=state))
        return payment_out(rec)

    @router.post("/api/v1/payments/{payment_id}/confirm", response_model=PaymentOut, dependencies=[admin])
    def confirm(payment_id: str) -> PaymentOut:
        rec = get_record(payment_id)
        if rec.method == "qr" and rec.status == "pending" and hasattr(payments, "confirm"):
            payments.confirm(payment_id)
        return payment_out(settle_qr(rec))

    @router.post("/api/v1/payments/{payment_id}/reconcile", response_model=PaymentOut, dependencies=[kiosk])
    def reconcile(payment_id: str, body: ReconcileRequest) -> PaymentOut:
        if body.payment_id != payment_id:
            raise HTTPException(409, f"The body is for payment {body.payment_id}, the address for {payment_id}.")
        return payment_out(record(PaymentRecord(payment_id=payment_id, bill_ids=body.bill_ids, method="bank_card",
                                                amount=body.amount, status="paid", provider_ref=body.terminal_ref)))

    @router.get("/pay/{payment_id}", response_class=HTMLResponse, include_in_schema=False)
    def pay_page(payment_id: str, t: str = "") -> HTMLResponse:
        rec = hospital.get_payment(payment_id)
        if rec is None or rec.method != "qr":
            return HTMLResponse("<p>Unknown payment.</p>", status_code=404)
        rec = settle_qr(rec)
        form = ('<form method="post" action="{action}"><button type="submit">Pay ¥{amount} (sandbox)</button></form>'
                if rec.status == "pending" else "")
        return html_page("<!doctype html><meta name=viewport content='width=device-width'><title>Pay {pid}</title>"
                         "<h1>clinicflow sandbox payment</h1><p>Amount: ¥{amount}</p><p>Status: {status}</p>" + form,
                         pid=payment_id, amount=_money(rec.amount), status=rec.status,
                         action=f"/pay/{quote(payment_id, safe='')}?t={quote(t, safe='')}")

    @router.post("/pay/{payment_id}", response_class=HTMLResponse, include_in_schema=False)
    def pay_page_confirm(payment_id: str, t: str = "") -> HTMLResponse:
        rec = hospital.get_payment(payment_id)
        if rec is None or rec.method != "qr" or not hasattr(payments, "confirm"):
            return HTMLResponse("<p>Unknown payment.</p>", status_code=404)
        payments.confirm(payment_id, token=t)
        rec = settle_qr(rec)
        return html_page("<!doctype html><p>Status: {status}</p>", status=rec.status)

    # -- reports ------------------------------------------------------------------------------------
    def report_out(r: Any) -> ReportOut:
        return ReportOut(report_id=r.report_id, title=r.title, ready=r.ready, ready_at=r.ready_at, prints=r.prints,
                         reprints_left=max(0, cfg.max_report_prints - r.prints) if r.ready else 0)

    def own_report(patient: Patient, report_id: str) -> Any:
        report = next((r for r in hospital.reports_for_patient(patient.patient_id) if r.report_id == report_id), None)
        if report is None:
            raise HTTPException(404, f"There is no report {report_id} for this patient.")
        return report

    @router.get("/api/v1/patient/reports", response_model=ReportsOut, dependencies=[kiosk])
    def reports(patient: Patient = Depends(patient_of)) -> ReportsOut:
        return ReportsOut(reports=tuple(report_out(r) for r in hospital.reports_for_patient(patient.patient_id)),
                          max_prints=cfg.max_report_prints)

    @router.get("/api/v1/patient/reports/{report_id}/pdf", dependencies=[kiosk])
    def report_pdf(report_id: str, patient: Patient = Depends(patient_of)) -> Response:
        report = own_report(patient, report_id)
        if not report.ready or report.pdf_path is None:
            raise HTTPException(409, "This report is not ready yet.")
        if report.prints >= cfg.max_report_prints:
            raise HTTPException(409, f"This report was already printed {report.prints} times; ask at the desk for another copy.")
        return Response(report.pdf_path.read_bytes(), media_type="application/pdf")

    @router.post("/api/v1/patient/reports/{report_id}/prints", response_model=ReportOut, dependencies=[kiosk])
    def report_printed(report_id: str, patient: Patient = Depends(patient_of),
                       idempotency_key: str | None = Header(None, min_length=1, max_length=100)) -> ReportOut:
        report = own_report(patient, report_id)
        if report.prints >= cfg.max_report_prints:
            raise HTTPException(409, "The reprint limit for this report is reached.")

        def count() -> ReportOut:
            try:
                return report_out(hospital.record_report_print(report_id))
            except ConflictError as exc:
                raise HTTPException(409, str(exc)) from exc
        return answers.remember(f"print:{idempotency_key}" if idempotency_key else None, ReportOut, count)

    # -- help -------------------------------------------------------------------------------------
    def help_out(item: HelpItem) -> HelpOut:
        return HelpOut(help_id=item.help_id, created_at=item.created_at, directions=cfg.directions,
                       status=item.status, acknowledged_by=item.acknowledged_by,
                       acknowledged_at=item.acknowledged_at, escalated=item.escalated_at is not None)

    @router.post("/api/v1/help-requests", response_model=HelpOut, status_code=201, dependencies=[kiosk])
    def call_staff(body: HelpRequest, idempotency_key: str | None = Header(None, min_length=1, max_length=100),
                   x_patient_session: str | None = Header(None)) -> HelpOut:
        pid = sessions.patient_id(x_patient_session)  # optional: the desk then sees the patient's ticket
        known = ticket_of(pid) if pid and ticket_of is not None else None
        kind = "red_flag" if body.reason == "red_flag" else "help"
        item, new = desk.raise_request(kind=kind, reason=body.reason, device=body.device, department=body.department,
                                       ticket_id=known[0] if known else None, ticket=known[1] if known else None,
                                       symptoms=body.symptoms, message=body.message,
                                       idem_key=f"help:{body.device}:{idempotency_key}" if idempotency_key else None)
        if new and alert is not None:
            alert(Alert(id=item.help_id, ts=item.created_at, kind=kind, device=body.device, department=body.department,
                        ticket=item.ticket, message=(f"Kiosk {body.device} asks for staff ({body.reason})"
                                                     + (f": {body.message}" if body.message else ""))[:200]))
        return help_out(item)

    @router.get("/api/v1/help-requests/{help_id}", response_model=HelpOut, dependencies=[kiosk])
    def help_state(help_id: str) -> HelpOut:
        """The kiosk asks whether someone is coming (the id from its request is the key)."""
        try:
            return help_out(desk.get(help_id))
        except NotFoundError as exc:
            raise HTTPException(404, str(exc)) from exc

    router.sessions = sessions  # type: ignore[attr-defined]  # tests and the app may end sessions
    return router


class ServiceTickets:
    """``TicketIssuer`` over the queue server's ``QueueService`` (walk-in tickets with the patient's priority)."""

    def __init__(self, service: Any) -> None:
        self.service = service

    def issue_walk_in(self, *, department: str, patient: Patient, slot_start: datetime | None,
                      emergency: bool, idempotency_key: str | None) -> TicketOut:
        # The patient comes from the kiosk's session (resolved by the router), never from the body: the
        # ticket then carries the patient (reports on the phone page, the desk's lookup) and the priority
        # words check-in gives (``Issuing._priority_words``).
        issued = self.service.walk_in(department, emergency=emergency, language=patient.language, source="walk_in",
                                      patient_id=patient.patient_id,
                                      idem_key=f"kiosk-registration:{idempotency_key}" if idempotency_key else None,
                                      fingerprint=f"{department}:{patient.patient_id}")
        return issued.ticket  # type: ignore[no-any-return]


def patient_router(service: Any, tokens: Any, *, store: Any, desk: HelpDesk, payments: PaymentProvider | None = None,
                   settings: PatientApiSettings | None = None) -> APIRouter:
    """The patient API for the queue server's app: ``app.include_router(patient_router(service, tokens))``.

    Takes the hospital backend, departments, timezone and check-in rules from ``service``
    (a ``QueueService``), roles from ``tokens`` (a ``TokenBook``), alerts go out through the
    service's MQTT publisher; payments default to the sandbox provider. Sessions and answers are
    kept in ``store`` (a ``Store``), help requests in ``desk``.
    """
    from queueserver.payments.sandbox import SandboxPaymentProvider

    hospital_file = service.hospital
    cfg = settings or PatientApiSettings()
    cfg.timezone = hospital_file.site.timezone
    cfg.checkin_opens_min = service.rules.checkin_opens_before_min
    cfg.late_grace_min = service.rules.late_grace_min
    cfg.elderly_age = service.rules.elderly_age
    cfg.departments = {d.id: dict(d.name) for d in hospital_file.departments}

    def require(*roles: str) -> Callable[[Request], str]:
        def dependency(request: Request) -> str:
            auth = request.headers.get("authorization", "")
            who = tokens.lookup(auth[7:].strip()) if auth.lower().startswith("bearer ") else None
            if who is None:
                raise HTTPException(401, "This needs a valid bearer token: send 'Authorization: Bearer <token>'.")
            if who.role not in roles:
                raise HTTPException(403, f"A {who.role} token cannot do this.")
            request.state.principal = who  # identify throttles per kiosk token and address
            return who.role
        dependency.roles = roles  # type: ignore[attr-defined]  # read by queueserver.app.rights_table
        return dependency

    def alert(a: Alert) -> None:
        publisher = getattr(service, "publisher", None)
        if publisher is not None:
            try:
                publisher.publish_alert(a)
            except Exception:  # the help request is stored; MQTT trouble must not fail the kiosk's call
                log.exception("could not publish alert %s", a.id)

    def ticket_of(patient_id: str) -> tuple[str, str] | None:
        from sqlalchemy import select

        from queueserver.store import tickets

        with store.read() as conn:
            row = conn.execute(select(tickets.c.ticket_id, tickets.c.number).where(
                tickets.c.patient_id == patient_id, tickets.c.day == desk.day(desk.clock()),
                tickets.c.status.in_(("waiting", "called", "serving"))).order_by(tickets.c.issued_at.desc())).first()
        return (row[0], row[1]) if row else None

    return build_patient_router(hospital=service.backend, tickets=ServiceTickets(service),
                                payments=payments or SandboxPaymentProvider(public_url=service.public_url),
                                require=require, sessions=StoredSessions(store, cfg.session_ttl),
                                answers=StoredAnswers(store), desk=desk, alert=alert, ticket_of=ticket_of,
                                settings=cfg, now=lambda: datetime.now(service.tz))
