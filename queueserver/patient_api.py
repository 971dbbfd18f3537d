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
    POST   /api/v1/patient/payments                  start/record a payment (idempotent on payment_id)
    GET    /api/v1/payments/{id}                     a payment's state (kiosk reconciliation, QR polling)
    POST   /api/v1/payments/{id}/cancel              withdraw a pending QR payment
    POST   /api/v1/payments/{id}/confirm             sandbox: the QR order was paid (admin)
    POST   /api/v1/payments/{id}/reconcile           a card payment approved before a kiosk crash
    GET    /pay/{id}?t=..., POST /pay/{id}           sandbox phone page behind the QR code
    GET    /api/v1/patient/reports                   reports, ready or not (with when), reprints left
    GET    /api/v1/patient/reports/{id}/pdf          the PDF (refused past the reprint limit)
    POST   /api/v1/patient/reports/{id}/prints       record one finished print
    POST   /api/v1/help-requests                     "call staff" -> Alert (MQTT) + staff list
    GET    /api/v1/help-requests                     open help requests (staff pages)

Patient calls need ``X-Patient-Session`` from identify: the kiosk token alone never reads
anyone's bills or reports. Sessions live in memory and expire after ``session_ttl`` seconds
without use (a server restart ends them; the kiosk identifies again).
"""
from __future__ import annotations

import html
import logging
import secrets
import threading
import time
import uuid
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from typing import Any, Callable, Protocol
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
from queueserver.hospital.port import HospitalBackend, Patient, PaymentRecord
from queueserver.payments.port import PaymentDeclinedError, PaymentProvider

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
    elderly_age: int = 65
    walk_in_slot_min: int = 30
    walk_in_slots: int = 4  # slots offered from now on
    walk_in_capacity: int = 6  # patients per walk-in slot
    departments: dict[str, dict[str, str]] = field(default_factory=lambda: dict(DEMO_DEPARTMENTS))
    icons: dict[str, str] = field(default_factory=lambda: {"internal": "stethoscope", "surgery": "bandage",
                                                           "pediatrics": "child", "emergency": "ambulance"})
    directions: dict[str, str] = field(default_factory=lambda: {
        "zh": "人工服务窗口：门诊大厅一楼 1 号窗口", "en": "Staffed desk: window 1, outpatient hall, ground floor"})


class _Sessions:
    """Patient sessions: random id -> patient id, sliding expiry."""

    def __init__(self, ttl: float) -> None:
        self.ttl = ttl
        self._by_id: dict[str, tuple[str, float]] = {}
        self._lock = threading.Lock()

    def open(self, patient_id: str) -> str:
        sid = secrets.token_urlsafe(24)
        with self._lock:
            now = time.monotonic()
            self._by_id = {k: v for k, v in self._by_id.items() if v[1] > now}
            self._by_id[sid] = (patient_id, now + self.ttl)
        return sid

    def patient_id(self, sid: str | None) -> str | None:
        if not sid:
            return None
        with self._lock:
            entry = self._by_id.get(sid)
            now = time.monotonic()
            if entry is None or entry[1] <= now:
                self._by_id.pop(sid, None)
                return None
            self._by_id[sid] = (entry[0], now + self.ttl)
            return entry[0]

    def close(self, sid: str) -> None:
        with self._lock:
            self._by_id.pop(sid, None)


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
        return dependency

    return require


def build_patient_router(*, hospital: HospitalBackend, tickets: TicketIssuer | None, payments: PaymentProvider,
                         require: Callable[..., Callable[..., Any]], alert: Callable[[Alert], None] | None = None,
                         settings: PatientApiSettings | None = None,
                         now: Callable[[], datetime] | None = None) -> APIRouter:
    """The patient API router. ``require(*roles)`` builds an auth dependency (the app's token check);
    ``alert`` publishes an Alert (MQTT); ``now`` is injectable for tests."""
    cfg = settings or PatientApiSettings()
    tz = ZoneInfo(cfg.timezone)
    clock = now or (lambda: datetime.now(tz))
    sessions = _Sessions(cfg.session_ttl)
    help_requests: list[dict[str, Any]] = []
    help_lock = threading.Lock()
    idem: dict[str, Any] = {}  # idempotency key -> answer (walk-ins, help, prints)
    idem_lock = threading.Lock()
    router = APIRouter()
    kiosk = Depends(require("kiosk", "admin"))
    admin = Depends(require("admin"))

    def patient_of(x_patient_session: str | None = Header(None)) -> Patient:
        pid = sessions.patient_id(x_patient_session)
        patient = hospital.get_patient(pid) if pid else None
        if patient is None:
            raise HTTPException(401, "Your session has ended. Please identify yourself again.")
        return patient

    def remember(key: str | None, compute: Callable[[], Any]) -> Any:
        if not key:
            return compute()
        with idem_lock:
            if key in idem:
                return idem[key]
        result = compute()
        with idem_lock:
            return idem.setdefault(key, result)

    # -- identification ---------------------------------------------------------------------------
    @router.post("/api/v1/patient/identify", response_model=PatientOut, dependencies=[kiosk])
    def identify(body: IdentifyRequest) -> PatientOut:
        appointment_no = None
        if body.method == "qr":
            if not body.appointment_no:
                raise HTTPException(422, "Scanning needs an appointment number.")
            appt = hospital.find_appointment(body.appointment_no)
            patient = hospital.get_patient(appt.patient_id) if appt else None
            appointment_no = appt.appointment_no if appt else None
        elif body.method == "card":
            if not body.card_number:
                raise HTTPException(422, "Card identification needs a card number.")
            patient = hospital.find_patient_by_card(body.card_number)
        else:
            if not body.phone or not body.id_last4:
                raise HTTPException(422, "Phone identification needs the phone number and the last four ID characters.")
            patient = hospital.find_patient_by_phone(body.phone, body.id_last4)
        if patient is None:
            raise HTTPException(404, "No patient matches. Check the details or ask at the desk.")
        age = patient.age_on(clock().date())
        priority = tuple(name for name, on in (("elderly", age >= cfg.elderly_age), ("pregnant", patient.pregnant),
                                               ("disabled", patient.disabled)) if on)
        return PatientOut(session=sessions.open(patient.patient_id), masked_name=mask_name(patient.name), age=age,
                          language=patient.language, priority=priority, offer_accessibility=age >= cfg.elderly_age,
                          insured=patient.insured, pay_later_eligible=patient.pay_later_eligible and cfg.pay_later_enabled,
                          appointment_no=appointment_no)

    @router.delete("/api/v1/patient/session", status_code=204, dependencies=[kiosk])
    def end_session(x_patient_session: str | None = Header(None)) -> Response:
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
                 idempotency_key: str | None = Header(None)) -> TicketOut:
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
        return remember(f"reg:{idempotency_key}" if idempotency_key else None, issue)

    # -- bills and payments -------------------------------------------------------------------------
    def methods_for(patient: Patient) -> tuple[str, ...]:
        found = ["qr", "bank_card"]
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
        return PaymentOut(payment_id=rec.payment_id, status=rec.status, method=rec.method, amount=_money(rec.amount),
                          bill_ids=rec.bill_ids, qr_payload=qr, expires_at=expires, provider_ref=rec.provider_ref,
                          detail=detail)

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
        # bank_card: the kiosk's terminal already approved; record it with the terminal's reference.
        if not body.terminal_ref:
            raise HTTPException(422, "A bank card payment needs the terminal's approval reference.")
        return payment_out(record(replace(base, status="paid", provider_ref=body.terminal_ref)))

    def settle_qr(rec: PaymentRecord) -> PaymentRecord:
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
        if rec.status == "pending":
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
    def reconcile(payment_id: str, body: PaymentRequest) -> PaymentOut:
        if body.payment_id != payment_id or body.method != "bank_card" or not body.terminal_ref:
            raise HTTPException(422, "Only an approved bank card payment can be reconciled.")
        return payment_out(record(PaymentRecord(payment_id=payment_id, bill_ids=body.bill_ids, method="bank_card",
                                                amount=body.amount, status="paid", provider_ref=body.terminal_ref)))

    @router.get("/pay/{payment_id}", response_class=HTMLResponse, include_in_schema=False)
    def pay_page(payment_id: str, t: str = "") -> HTMLResponse:
        rec = hospital.get_payment(payment_id)
        if rec is None or rec.method != "qr":
            return HTMLResponse("<p>Unknown payment.</p>", status_code=404)
        rec = settle_qr(rec)
        pid, tok = html.escape(payment_id), html.escape(t)
        body = (f"<h1>clinicflow sandbox payment</h1><p>Amount: ¥{_money(rec.amount)}</p><p>Status: {rec.status}</p>"
                + (f'<form method="post" action="/pay/{pid}?t={tok}">'
                   f'<button type="submit">Pay ¥{_money(rec.amount)} (sandbox)</button></form>' if rec.status == "pending" else ""))
        return HTMLResponse(f"<!doctype html><meta name=viewport content='width=device-width'><title>Pay {pid}</title>{body}")

    @router.post("/pay/{payment_id}", response_class=HTMLResponse, include_in_schema=False)
    def pay_page_confirm(payment_id: str, t: str = "") -> HTMLResponse:
        rec = hospital.get_payment(payment_id)
        if rec is None or rec.method != "qr" or not hasattr(payments, "confirm"):
            return HTMLResponse("<p>Unknown payment.</p>", status_code=404)
        payments.confirm(payment_id, token=t)
        rec = settle_qr(rec)
        return HTMLResponse(f"<!doctype html><p>Status: {rec.status}</p>")

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
                       idempotency_key: str | None = Header(None)) -> ReportOut:
        report = own_report(patient, report_id)
        if report.prints >= cfg.max_report_prints:
            raise HTTPException(409, "The reprint limit for this report is reached.")

        def count() -> ReportOut:
            try:
                return report_out(hospital.record_report_print(report_id))
            except ConflictError as exc:
                raise HTTPException(409, str(exc)) from exc
        return remember(f"print:{idempotency_key}" if idempotency_key else None, count)

    # -- help -------------------------------------------------------------------------------------
    @router.post("/api/v1/help-requests", response_model=HelpOut, status_code=201, dependencies=[kiosk])
    def call_staff(body: HelpRequest, idempotency_key: str | None = Header(None)) -> HelpOut:
        def create() -> HelpOut:
            out = HelpOut(help_id=uuid.uuid4().hex[:16], created_at=datetime.now(timezone.utc), directions=cfg.directions)
            with help_lock:
                help_requests.append({"help_id": out.help_id, "created_at": out.created_at.isoformat(),
                                      "device": body.device, "reason": body.reason, "department": body.department})
                del help_requests[:-200]
            if alert is not None:
                kind = "red_flag" if body.reason == "red_flag" else "help"
                alert(Alert(id=out.help_id, ts=out.created_at, kind=kind, device=body.device, department=body.department,
                            message=f"Kiosk {body.device} asks for staff ({body.reason})"))
            return out
        return remember(f"help:{idempotency_key}" if idempotency_key else None, create)

    @router.get("/api/v1/help-requests", dependencies=[Depends(require("admin", "clinician"))])
    def list_help() -> dict[str, Any]:
        with help_lock:
            return {"help_requests": list(reversed(help_requests))}

    router.sessions = sessions  # type: ignore[attr-defined]  # tests and the app may end sessions
    return router


class ServiceTickets:
    """``TicketIssuer`` over the queue server's ``QueueService`` (walk-in tickets with the patient's priority)."""

    def __init__(self, service: Any) -> None:
        self.service = service

    def issue_walk_in(self, *, department: str, patient: Patient, slot_start: datetime | None,
                      emergency: bool, idempotency_key: str | None) -> TicketOut:
        today = datetime.now(self.service.tz).date()
        groups = self.service.rules.priority_groups
        priority = next((g for g, on in (("elderly", patient.age_on(today) >= self.service.rules.elderly_age),
                                         ("pregnant", patient.pregnant), ("disabled", patient.disabled))
                         if on and g in groups), None)
        issued = self.service.walk_in(department, priority=priority, emergency=emergency,
                                      language=patient.language, source="walk_in", name=patient.name,
                                      idem_key=f"kiosk-registration:{idempotency_key}" if idempotency_key else None,
                                      fingerprint=f"{department}:{patient.patient_id}")
        return issued.ticket  # type: ignore[no-any-return]


def patient_router(service: Any, tokens: Any, *, payments: PaymentProvider | None = None,
                   settings: PatientApiSettings | None = None) -> APIRouter:
    """The patient API for the queue server's app: ``app.include_router(patient_router(service, tokens))``.

    Takes the hospital backend, departments, timezone and check-in rules from ``service``
    (a ``QueueService``), roles from ``tokens`` (a ``TokenBook``), alerts go out through the
    service's MQTT publisher; payments default to the sandbox provider.
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
            return who.role
        return dependency

    def alert(a: Alert) -> None:
        publisher = getattr(service, "publisher", None)
        if publisher is not None:
            try:
                publisher.publish_alert(a)
            except Exception:  # the help request is stored; MQTT trouble must not fail the kiosk's call
                log.exception("could not publish alert %s", a.id)

    return build_patient_router(hospital=service.backend, tickets=ServiceTickets(service),
                                payments=payments or SandboxPaymentProvider(public_url=service.public_url),
                                require=require, alert=alert, settings=cfg, now=lambda: datetime.now(service.tz))
