"""``PaymentProvider``: how the server takes money other than at the kiosk's own card terminal.

Three kinds of payment go through a provider: a dynamic QR code the patient pays from a phone
(WeChat Pay / Alipay / UnionPay style: create an order, show its code, learn when it is paid),
the patient's own payment code read by the kiosk's scanner ("micropay": 付款码, charged at
once), and the personal account behind an insurance card. Orders can be queried, closed and
refunded by ``payment_id`` and the provider issues a daily statement for reconciliation. Every call is keyed by the kiosk's
``payment_id`` and must be idempotent on it: a retried create returns the same order.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from typing import Literal, Protocol, runtime_checkable

from protocol.errors import ClinicflowError

QrState = Literal["pending", "paid", "failed"]
OrderState = Literal["pending", "paid", "failed", "refunded"]
Channel = Literal["wechat", "alipay"]


class PaymentDeclinedError(ClinicflowError, RuntimeError):
    """The provider refused the payment (card blocked, insufficient balance); nothing was taken."""


class NotAPaymentCodeError(ClinicflowError, ValueError):
    """The scanned text is not a WeChat Pay or Alipay payment code (nothing was sent to the provider)."""


def payment_code_channel(code: str) -> Channel:
    """Which service a payment code belongs to, by the services' published code formats.

    WeChat Pay: 18 digits starting 10-15. Alipay: 16-24 digits starting 25-30.
    Raises ``NotAPaymentCodeError`` for anything else (e.g. an appointment QR code).
    """
    code = code.strip()
    if code.isdigit() and code.isascii():
        head = int(code[:2])
        if len(code) == 18 and 10 <= head <= 15:
            return "wechat"
        if 16 <= len(code) <= 24 and 25 <= head <= 30:
            return "alipay"
    raise NotAPaymentCodeError("This is not a WeChat Pay or Alipay payment code.")


@dataclass(frozen=True)
class OrderInfo:
    """What the provider knows of one order (``query_order``), as its order query answers."""

    payment_id: str
    state: OrderState
    amount: Decimal
    channel: str  # wechat, alipay, qr, insurance
    provider_ref: str
    paid_at: datetime | None = None
    refunded: Decimal = Decimal("0.00")


@dataclass(frozen=True)
class Refund:
    refund_id: str
    payment_id: str
    amount: Decimal
    provider_ref: str


@dataclass(frozen=True)
class QrCharge:
    payment_id: str
    qr_payload: str  # what the phone scans
    expires_at: datetime
    provider_ref: str


@runtime_checkable
class PaymentProvider(Protocol):
    def create_qr(self, payment_id: str, amount: Decimal, description: str) -> QrCharge:
        """Open a QR order (idempotent on payment_id)."""

    def qr_state(self, payment_id: str) -> QrState:
        """pending until the phone paid (paid) or the order expired/was cancelled (failed)."""

    def cancel_qr(self, payment_id: str) -> QrState:
        """Close the order unless already paid; returns the final state."""

    def charge_insurance(self, payment_id: str, card_number: str, amount: Decimal) -> str:
        """Take ``amount`` from the insurance card's personal account; returns the provider reference."""

    def charge_payment_code(self, payment_id: str, code: str, amount: Decimal, description: str) -> str:
        """Charge the patient's scanned payment code at once; returns the provider reference.

        Idempotent on ``payment_id`` (a retry returns the first reference and charges nothing
        more). Raises ``NotAPaymentCodeError`` or ``PaymentDeclinedError``.
        """

    def query_order(self, payment_id: str) -> OrderInfo | None:
        """The provider's view of an order, or None if it never heard of ``payment_id``."""

    def close_order(self, payment_id: str) -> OrderState:
        """Close an unpaid order so it can no longer be paid; returns the final state."""

    def refund(self, payment_id: str, refund_id: str) -> Refund:
        """Refund a paid order in full (idempotent on ``refund_id``)."""

    def statement(self, day: date) -> str:
        """The daily statement (对账单) as CSV: one row per paid or refunded order that day."""
