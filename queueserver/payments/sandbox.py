"""``SandboxPaymentProvider``: a payment provider that takes no money, for the demo and the tests.

QR orders wait until someone confirms them: the patient's phone page (``/pay/{payment_id}``,
the QR code's target) or the admin API (``POST /api/v1/payments/{id}/confirm``). Orders
expire after ``qr_timeout`` seconds. Insurance cards listed in ``declined_cards`` are refused
like a blocked card. Thread-safe; state is in memory (a sandbox has nothing to lose).
"""
from __future__ import annotations

import secrets
import threading
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from decimal import Decimal

from queueserver.payments.port import PaymentDeclinedError, QrCharge, QrState


@dataclass
class _Order:
    charge: QrCharge
    amount: Decimal
    state: QrState
    pay_token: str


class SandboxPaymentProvider:
    def __init__(self, *, public_url: str = "http://127.0.0.1:8000", qr_timeout: float = 120.0,
                 declined_cards: frozenset[str] = frozenset({"YB0000"})) -> None:
        self.public_url = public_url.rstrip("/")
        self.qr_timeout = qr_timeout
        self.declined_cards = declined_cards
        self._orders: dict[str, _Order] = {}
        self._lock = threading.Lock()

    def create_qr(self, payment_id: str, amount: Decimal, description: str) -> QrCharge:
        with self._lock:
            order = self._orders.get(payment_id)
            if order is None:
                token = secrets.token_urlsafe(12)
                charge = QrCharge(payment_id, f"{self.public_url}/pay/{payment_id}?t={token}",
                                  datetime.now(timezone.utc) + timedelta(seconds=self.qr_timeout),
                                  f"sandbox-qr-{secrets.token_hex(4)}")
                order = self._orders[payment_id] = _Order(charge, amount, "pending", token)
            return order.charge

    def _expire(self, order: _Order) -> None:
        if order.state == "pending" and datetime.now(timezone.utc) >= order.charge.expires_at:
            order.state = "failed"

    def qr_state(self, payment_id: str) -> QrState:
        with self._lock:
            order = self._orders.get(payment_id)
            if order is None:
                return "failed"  # unknown (e.g. the server restarted): no money was taken in a sandbox
            self._expire(order)
            return order.state

    def cancel_qr(self, payment_id: str) -> QrState:
        with self._lock:
            order = self._orders.get(payment_id)
            if order is None:
                return "failed"
            self._expire(order)
            if order.state == "pending":
                order.state = "failed"
            return order.state

    def confirm(self, payment_id: str, token: str | None = None) -> QrState:
        """The phone paid (``token`` from the QR code's URL is checked when given)."""
        with self._lock:
            order = self._orders.get(payment_id)
            if order is None or (token is not None and not secrets.compare_digest(token, order.pay_token)):
                return "failed"
            self._expire(order)
            if order.state == "pending":
                order.state = "paid"
            return order.state

    def order_amount(self, payment_id: str) -> Decimal | None:
        with self._lock:
            order = self._orders.get(payment_id)
            return order.amount if order else None

    def charge_insurance(self, payment_id: str, card_number: str, amount: Decimal) -> str:
        if card_number.upper() in self.declined_cards:
            raise PaymentDeclinedError("The insurance card was declined.")
        return f"sandbox-ins-{payment_id[-8:]}"
