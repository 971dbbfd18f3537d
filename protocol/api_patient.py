"""HTTP models of the patient-facing kiosk API (``/api/v1/patient/...``, ``/api/v1/payments/...``).

A kiosk identifies a patient once (QR code, ID/insurance card, or phone + last four ID
digits) and gets a short-lived ``session`` it sends as ``X-Patient-Session`` with every
patient call; the kiosk token alone cannot read anyone's bills or reports. Names only
ever come back masked. Amounts are decimal strings (never floats) of at most eight digits and
two places; every field has bounds, so a hostile value is a 422 naming the field.
"""
from __future__ import annotations

import re
from datetime import datetime
from decimal import Decimal
from typing import Annotated, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, WithJsonSchema, model_validator

from protocol.api import AppointmentNo

MONEY_PATTERN = r"^[0-9]{1,8}(\.[0-9]{1,2})?$"

Digits = Annotated[str, Field(pattern=r"^[0-9]{6,15}$")]
CardNumber = Annotated[str, Field(pattern=r"^[0-9A-Za-z]{4,32}$")]
Last4 = Annotated[str, Field(pattern=r"^[0-9Xx]{4}$")]
PaymentId = Annotated[str, Field(pattern=r"^[A-Za-z0-9_-]{8,64}$")]
BillId = Annotated[str, Field(pattern=r"^[A-Za-z0-9_-]{1,64}$")]
Texts = dict[str, str]


def _money(value: object) -> Decimal:
    """An amount as the kiosk sends it: a decimal string (or Decimal), ASCII digits, at most 2 places.

    Python's Decimal would also take "1e999999", "NaN" or Arabic-Indic digits; none is money.
    """
    if isinstance(value, Decimal):
        if not value.is_finite() or value.adjusted() >= 8:
            raise ValueError("an amount has at most 8 digits before the point")
        value = format(value, "f")
    if not isinstance(value, str) or len(value) > 11 or not re.fullmatch(MONEY_PATTERN, value):
        raise ValueError("an amount is a decimal string such as \"12.50\": up to 8 digits and 2 places")
    return Decimal(value)


Money = Annotated[Decimal, BeforeValidator(_money),
                  WithJsonSchema({"type": "string", "pattern": MONEY_PATTERN, "examples": ["12.50"]}, mode="validation")]


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


IDENTIFY_NEEDS = {"qr": ("appointment_no",), "card": ("card_number",), "phone": ("phone", "id_last4")}


class IdentifyRequest(_Model):
    """The fields of one method: ``qr`` (appointment_no), ``card`` (card_number), ``phone`` (phone + id_last4)."""

    model_config = ConfigDict(frozen=True, extra="forbid", json_schema_extra={"oneOf": [
        {"properties": {"method": {"const": method}, **{f: {"type": "string"} for f in fields}},
         "required": ["method", *fields]} for method, fields in IDENTIFY_NEEDS.items()]})

    method: Literal["qr", "card", "phone"]
    appointment_no: AppointmentNo | None = None
    card_number: CardNumber | None = None
    phone: Digits | None = None
    id_last4: Last4 | None = None

    @model_validator(mode="after")
    def _fields_of_the_method(self) -> "IdentifyRequest":
        missing = [f for f in IDENTIFY_NEEDS[self.method] if getattr(self, f) is None]
        if missing:
            raise ValueError(f"identification by {self.method} needs {' and '.join(missing)}")
        return self


class PatientOut(_Model):
    session: str = Field(description="send as X-Patient-Session; expires after a few minutes of inactivity")
    masked_name: str
    age: int
    language: str
    priority: tuple[str, ...] = Field(default=(), description="elderly, pregnant, disabled")
    offer_accessibility: bool = Field(description="65 or over: the kiosk offers large text and voice")
    insured: bool
    pay_later_eligible: bool
    appointment_no: str | None = Field(None, description="the appointment whose QR code identified the patient")


class AppointmentOut(_Model):
    appointment_no: str
    department: str
    department_name: Texts
    slot_start: datetime
    slot_end: datetime
    clinician: str | None = None
    status: str = Field(description="booked, checked_in, cancelled")
    timing: Literal["early", "on_time", "late", "closed"] = Field(
        description="early: check-in opens at checkin_opens_at; late: past the slot (and grace); closed: checked in or cancelled")
    checkin_opens_at: datetime
    late_after: datetime


class AppointmentsOut(_Model):
    appointments: tuple[AppointmentOut, ...]
    now: datetime


class SlotOut(_Model):
    start: datetime
    end: datetime
    available: int


class WalkInDepartmentOut(_Model):
    department: str
    name: Texts
    icon: str = Field(description="icon name the kiosk draws")
    slots: tuple[SlotOut, ...] = ()


class WalkInDepartmentsOut(_Model):
    departments: tuple[WalkInDepartmentOut, ...]


class RegistrationRequest(_Model):
    department: Annotated[str, Field(pattern=r"^[a-z0-9_-]{1,32}$")]
    slot_start: datetime | None = None
    red_flag: Annotated[str, Field(pattern=r"^[A-Za-z0-9_.-]{1,64}$")] | None = Field(
        None, description="the symptom guide's red-flag rule id, if any")


class BillItemOut(_Model):
    description: Texts
    amount: Decimal
    insurance_covered: Decimal
    self_pay: Decimal


class BillOut(_Model):
    bill_id: str
    items: tuple[BillItemOut, ...]
    total: Decimal
    insurance_part: Decimal
    self_pay: Decimal


class BillsOut(_Model):
    bills: tuple[BillOut, ...]
    total: Decimal
    insurance_part: Decimal
    self_pay: Decimal
    methods: tuple[str, ...] = Field(description="payment methods this patient may use now")


class PaymentRequest(_Model):
    payment_id: PaymentId = Field(description="chosen by the kiosk and journalled before the request: the idempotency key")
    bill_ids: tuple[BillId, ...] = Field(min_length=1, max_length=50)
    method: Literal["insurance_card", "qr", "payment_code", "bank_card", "pay_later"]
    amount: Money = Field(description="the self-pay total the patient saw, e.g. \"65.95\"")
    card_number: CardNumber | None = Field(None, description="insurance card number (insurance_card)")
    payment_code: Annotated[str, Field(pattern=r"^[0-9]{16,24}$")] | None = Field(
        None, description="the patient's WeChat Pay / Alipay payment code read by the scanner (payment_code)")
    terminal_ref: Annotated[str, Field(pattern=r"^[\x21-\x7e]{1,64}$")] | None = Field(
        None, description="approval reference (bank_card): printable ASCII")


class ReconcileRequest(PaymentRequest):
    """``POST /api/v1/payments/{id}/reconcile``: a bank card payment the terminal approved before a kiosk crash."""

    method: Literal["bank_card"]
    terminal_ref: Annotated[str, Field(pattern=r"^[\x21-\x7e]{1,64}$", description="the terminal's approval reference")]


class InvoiceOut(_Model):
    """The electronic invoice (电子票据) of a paid payment, where the hospital issues them.

    ``pending``: the finance platform has not answered yet; the patient finds it on the phone page later."""

    status: Literal["pending", "issued"]
    invoice_code: str = Field("", description="票据代码, empty while pending")
    invoice_number: str = Field("", description="票据号码, empty while pending")
    check_code: str = Field("", description="校验码, empty while pending")
    total: Decimal | None = None
    self_pay: Decimal | None = None
    issued_at: datetime | None = None
    verify_url: str = Field("", description="the verification page: the receipt's QR code")


class PaymentOut(_Model):
    payment_id: str
    status: Literal["pending", "paid", "failed", "deferred"]
    method: str
    amount: Decimal
    bill_ids: tuple[str, ...]
    qr_payload: str | None = Field(None, description="QR payments: what the patient's phone scans")
    expires_at: datetime | None = None
    provider_ref: str | None = None
    detail: str = ""
    invoice: InvoiceOut | None = Field(None, description="paid payments where the hospital backend issues e-invoices")


class ReportOut(_Model):
    report_id: str
    title: Texts
    ready: bool
    ready_at: datetime | None = None
    prints: int
    reprints_left: int


class ReportsOut(_Model):
    reports: tuple[ReportOut, ...]
    max_prints: int


class HelpRequest(_Model):
    device: Annotated[str, Field(pattern=r"^[A-Za-z0-9_-]{1,64}$")]
    reason: Literal["help", "red_flag", "payment", "printer", "other"] = "help"
    department: Annotated[str, Field(pattern=r"^[a-z0-9_-]{1,32}$")] | None = None
    message: Annotated[str, Field(max_length=200)] = ""
    symptoms: tuple[Annotated[str, Field(pattern=r"^[a-z0-9_-]{1,32}$")], ...] = Field(
        default=(), max_length=10, description="red flags: the symptom ids the patient chose")


class HelpOut(_Model):
    help_id: str
    created_at: datetime
    directions: Texts = Field(description="where the manual window is")
    status: Literal["open", "acknowledged", "resolved"] = "open"
    acknowledged_by: str | None = None
    acknowledged_at: datetime | None = None
    escalated: bool = Field(False, description="nobody acknowledged within the escalation time")
