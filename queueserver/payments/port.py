"""``PaymentProvider``: how the server takes money other than at the kiosk's own card terminal.

Two kinds of payment go through a provider: a dynamic QR code the patient pays from a phone
(WeChat Pay / Alipay / UnionPay style: create an order, show its code, learn when it is paid),
and the personal account behind an insurance card. Every call is keyed by the kiosk's
``payment_id`` and must be idempotent on it: a retried create returns the same order.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Literal, Protocol, runtime_checkable

from protocol.errors import ClinicflowError

QrState = Literal["pending", "paid", "failed"]


class PaymentDeclinedError(ClinicflowError, RuntimeError):
    """The provider refused the payment (card blocked, insufficient balance); nothing was taken."""


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
