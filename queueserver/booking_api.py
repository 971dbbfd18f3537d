"""Booking API: future appointments from the kiosk and the phone status page.

Endpoints (the credential is a patient session, from the kiosk's identify or from
``POST /api/v1/phone/identify`` on the phone page; no device token is needed)::

    POST   /api/v1/phone/identify                      phone + last 4 of the ID -> session (throttled)
    GET    /api/v1/booking/departments                 departments that take bookings, days offered
    GET    /api/v1/booking/slots?department=&day=      free slots of a day
    GET    /api/v1/booking/appointments                the patient's future bookings (and those they made for others)
    POST   /api/v1/booking/appointments                book (idempotent on request_id; a relative names the patient)
    PUT    /api/v1/booking/appointments/{no}           move to another slot
    DELETE /api/v1/booking/appointments/{no}           cancel

Relative booking (亲属代预约): the relative identifies themselves, then names the patient by ID
card number, or phone + last 4 of the patient's ID; the appointment records ``booked_by``. An
elderly patient's on-site priority comes from the queue rules' ``elderly`` group (age from the
hospital backend) when they check in, whoever booked.

Domain errors (``SlotTakenError`` ...) propagate to the app's handler (409/404).
"""
from __future__ import annotations

from datetime import date, datetime, timedelta
from typing import Any

from fastapi import APIRouter, Depends, Header, HTTPException, Request
from pydantic import BaseModel, ConfigDict, Field

from protocol.privacy import mask_name
from queueserver.hospital.booking import Booking, BookingBackend, DepartmentHours, Slot
from queueserver.hospital.port import HospitalBackend, Patient
from queueserver.patient_state import StoredSessions
from queueserver.throttle import FailureThrottle

SESSION_NEEDED: dict[int | str, dict[str, Any]] = {401: {"description": "no patient session, or it expired: identify again"}}
BOOKING_DAYS = 7  # days ahead offered, from tomorrow... today's later slots included


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid")


class PhoneIdentifyIn(_In):
    phone: str = Field(min_length=5, max_length=20, pattern=r"^\+?[0-9]+$")
    id_last4: str = Field(min_length=4, max_length=4, pattern=r"^[0-9Xx]{4}$")


class PhoneSessionOut(BaseModel):
    session: str
    masked_name: str


class ForPatientIn(_In):
    card_number: str | None = Field(None, min_length=4, max_length=30)
    phone: str | None = Field(None, min_length=5, max_length=20, pattern=r"^\+?[0-9]+$")
    id_last4: str | None = Field(None, min_length=4, max_length=4, pattern=r"^[0-9Xx]{4}$")


class BookIn(_In):
    slot_id: str = Field(min_length=10, max_length=80)
    request_id: str = Field(min_length=8, max_length=64)
    for_patient: ForPatientIn | None = None
    relation: str | None = Field(None, max_length=20)


class MoveIn(_In):
    slot_id: str = Field(min_length=10, max_length=80)


class SlotOut(BaseModel):
    slot_id: str
    start: datetime
    end: datetime


class BookingOut(BaseModel):
    appointment_no: str
    department: str
    department_name: dict[str, str]
    start: datetime
    end: datetime
    status: str
    patient_masked_name: str
    booked_by_relative: bool  # booked by someone else for this patient, or by this patient for a relative


class PhoneIdentity:
    """Phone-page identification (phone + last 4), throttled like the kiosk's identify."""

    def __init__(self, hospital: HospitalBackend, sessions: StoredSessions, *, phone_limit: int = 5,
                 address_limit: int = 10, window_s: float = 600.0) -> None:
        self.hospital, self.sessions = hospital, sessions
        self.by_phone = FailureThrottle(limit=phone_limit, window_s=window_s)
        self.by_address = FailureThrottle(limit=address_limit, window_s=window_s)

    def identify(self, phone: str, id_last4: str, address: str) -> PhoneSessionOut:
        wait = max(filter(None, (self.by_phone.retry_after(phone), self.by_address.retry_after(address))),
                   default=None)
        if wait is not None:
            raise HTTPException(429, f"Too many attempts that did not match. Please try again in "
                                     f"{max(1, round(wait / 60))} minute(s).",
                                headers={"Retry-After": str(int(wait + 0.999))})
        patient = self.hospital.find_patient_by_phone(phone, id_last4)
        if patient is None:
            self.by_phone.failed(phone)
            self.by_address.failed(address)
            raise HTTPException(404, "No patient matches this phone number and ID digits.")
        self.by_phone.forget(phone)
        return PhoneSessionOut(session=self.sessions.open(patient.patient_id), masked_name=mask_name(patient.name))

    def patient(self, session: str | None) -> Patient:
        pid = self.sessions.patient_id(session)
        patient = self.hospital.get_patient(pid) if pid else None
        if patient is None:
            raise HTTPException(401, "Please identify yourself first (phone number and last 4 of your ID).")
        return patient


def phone_identity(service: Any, store: Any, ttl: float = 600.0) -> PhoneIdentity:
    """The identity helper for the app's booking and results routers (sessions in the queue store)."""
    return PhoneIdentity(service.backend, StoredSessions(store, ttl))


def department_hours(hospital_file: Any) -> list[DepartmentHours]:
    """Bookable departments of the hospital file (emergency takes no bookings)."""
    return [DepartmentHours(d.id, dict(d.name), d.booking_opens or d.opens, d.booking_closes or d.closes, d.slot_minutes)
            for d in hospital_file.departments if not d.emergency]


def booking_router(service: Any, ident: PhoneIdentity, *, offers_sms: bool | None = None) -> APIRouter:
    """The booking routes; an empty router when the hospital backend cannot book.

    ``offers_sms``: whether reminders go out by SMS; default from the hospital file's site
    (``sms_reminders``, absent: no SMS)."""
    router = APIRouter(tags=["booking"])
    backend = service.backend
    if not isinstance(backend, BookingBackend):
        return router
    hours = department_hours(service.hospital)
    names = {h.department: h.name for h in hours}
    minutes = {h.department: h.booking_minutes for h in hours}
    sms = offers_sms if offers_sms is not None else bool(getattr(service.hospital.site, "sms_reminders", False))
    configure = getattr(backend, "configure_booking", None)
    if configure is not None:
        configure(hours, offers_sms=sms, clock=lambda: datetime.now(service.tz))

    def me(x_patient_session: str | None = Header(None, max_length=64)) -> Patient:
        return ident.patient(x_patient_session)

    def out(b: Booking, viewer: Patient) -> BookingOut:
        a = b.appointment
        patient = backend_patient(a.patient_id)
        return BookingOut(appointment_no=a.appointment_no, department=a.department,
                          department_name=names.get(a.department, {"zh": a.department}), start=a.slot_start,
                          end=a.slot_end, status=a.status, patient_masked_name=mask_name(patient.name),
                          booked_by_relative=b.booked_by is not None and b.booked_by != a.patient_id)

    def backend_patient(pid: str) -> Patient:
        p = service.backend.get_patient(pid)
        if p is None:
            raise HTTPException(404, "That patient is no longer known to the hospital.")
        return p  # type: ignore[no-any-return]

    def slot_of(slot_id: str) -> Slot:
        department = slot_id.partition("@")[0]
        if department not in minutes:
            raise HTTPException(404, f"The department {department!r} takes no bookings.")
        try:
            return Slot.parse(slot_id, minutes[department])
        except ValueError as exc:
            raise HTTPException(422, f"{slot_id!r} is not a slot; choose one from the list of free slots.") from exc

    @router.post("/api/v1/phone/identify", response_model=PhoneSessionOut,
                 responses={404: {"description": "no patient matches"}, 429: {"description": "too many failed attempts"}})
    def identify(body: PhoneIdentifyIn, request: Request) -> PhoneSessionOut:
        return ident.identify(body.phone, body.id_last4, request.client.host if request.client else "unknown")

    @router.get("/api/v1/booking/departments")
    def departments() -> dict:
        today = datetime.now(service.tz).date()
        return {"departments": [{"id": h.department, "name": h.name, "slot_minutes": h.booking_minutes}
                                for h in hours], "timezone": service.hospital.site.timezone,
                "days": [(today + timedelta(days=i)).isoformat() for i in range(BOOKING_DAYS)]}

    @router.get("/api/v1/booking/slots", response_model=list[SlotOut])
    def slots(department: str, day: date) -> list[SlotOut]:
        if department not in minutes:
            raise HTTPException(404, f"The department {department!r} takes no bookings.")
        return [SlotOut(slot_id=s.slot_id, start=s.start, end=s.end) for s in backend.free_slots(department, day)]

    @router.get("/api/v1/booking/appointments", response_model=list[BookingOut], responses=SESSION_NEEDED)
    def mine(patient: Patient = Depends(me)) -> list[BookingOut]:
        return [out(b, patient) for b in backend.bookings_for_patient(patient.patient_id)]

    @router.post("/api/v1/booking/appointments", response_model=BookingOut, status_code=201, responses=SESSION_NEEDED)
    def book(body: BookIn, patient: Patient = Depends(me)) -> BookingOut:
        target, booked_by = patient, None
        who = body.for_patient
        if who is not None:
            if who.card_number:
                found = service.backend.find_patient_by_card(who.card_number)
            elif who.phone and who.id_last4:
                found = service.backend.find_patient_by_phone(who.phone, who.id_last4)
            else:
                raise HTTPException(422, "Name the patient by ID card number, or phone and last 4 of their ID.")
            if found is None:
                ident.by_address.failed(f"relative:{patient.patient_id}")  # the relative's guesses count too
                raise HTTPException(404, "No patient matches these details.")
            if found.patient_id != patient.patient_id:
                target, booked_by = found, patient.patient_id
        booking = backend.book(target.patient_id, slot_of(body.slot_id), request_id=f"{patient.patient_id}:"
                               f"{body.request_id}", booked_by=booked_by, relation=body.relation)
        return out(booking, patient)

    @router.put("/api/v1/booking/appointments/{appointment_no}", response_model=BookingOut, responses=SESSION_NEEDED)
    def move(appointment_no: str, body: MoveIn, patient: Patient = Depends(me)) -> BookingOut:
        return out(backend.reschedule(appointment_no, slot_of(body.slot_id), patient_id=patient.patient_id), patient)

    @router.delete("/api/v1/booking/appointments/{appointment_no}", response_model=BookingOut, responses=SESSION_NEEDED)
    def cancel(appointment_no: str, patient: Patient = Depends(me)) -> BookingOut:
        return out(backend.cancel(appointment_no, patient_id=patient.patient_id), patient)

    return router
