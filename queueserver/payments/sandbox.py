"""``SandboxPaymentProvider``: a payment provider that takes no money, for the demo and the tests.

Shaped like WeChat Pay / Alipay: every order is keyed by the kiosk's ``payment_id`` (the
merchant order number) and can be queried, closed and refunded; a daily statement CSV lists
what was paid and refunded, for reconciliation (``queueserver.payments.reconcile``).

QR orders wait until someone confirms them: the patient's phone page (``/pay/{payment_id}``,
the QR code's target) or the admin API (``POST /api/v1/payments/{id}/confirm``). Orders
expire after ``qr_timeout`` seconds. Payment codes ("micropay") are charged at once; a code
ending in ``0000`` is declined like an empty balance. Insurance cards listed in
``declined_cards`` are refused like a blocked card. Thread-safe; state is in memory (a sandbox
has nothing to lose).
"""
from __future__ import annotations

import csv
import io
import secrets
import threading
from dataclasses import dataclass, field, replace
from datetime import date, datetime, timedelta, timezone
from decimal import Decimal
from zoneinfo import ZoneInfo

from queueserver.payments.port import (OrderInfo, OrderState, PaymentDeclinedError, QrCharge, QrState, Refund,
                                       payment_code_channel)

STATEMENT_HEADER = ("trade_time", "payment_id", "provider_ref", "channel", "type", "amount", "refund_id")


@dataclass
class _Order:
    info: OrderInfo
    charge: QrCharge | None = None
    pay_token: str = ""
    refunds: dict[str, Refund] = field(default_factory=dict)
    refunded_at: datetime | None = None


class SandboxPaymentProvider:
    def __init__(self, *, public_url: str = "http://127.0.0.1:8000", qr_timeout: float = 120.0,
                 declined_cards: frozenset[str] = frozenset({"YB0000"}),
                 statement_tz: ZoneInfo = ZoneInfo("Asia/Shanghai")) -> None:
        self.public_url = public_url.rstrip("/")
        self.qr_timeout = qr_timeout
        self.declined_cards = declined_cards
        self.statement_tz = statement_tz  # the services cut statements at midnight Beijing time
        self._orders: dict[str, _Order] = {}
        self._lock = threading.Lock()

    # -- QR orders (the kiosk shows a code) ---------------------------------------------------------
    def create_qr(self, payment_id: str, amount: Decimal, description: str) -> QrCharge:
        with self._lock:
            order = self._orders.get(payment_id)
            if order is None:
                token = secrets.token_urlsafe(12)
                ref = f"sandbox-qr-{secrets.token_hex(4)}"
                charge = QrCharge(payment_id, f"{self.public_url}/pay/{payment_id}?t={token}",
                                  datetime.now(timezone.utc) + timedelta(seconds=self.qr_timeout), ref)
                order = self._orders[payment_id] = _Order(OrderInfo(payment_id, "pending", amount, "qr", ref),
                                                          charge, token)
            assert order.charge is not None
            return order.charge

    def _expire(self, order: _Order) -> None:
        if order.info.state == "pending" and order.charge and datetime.now(timezone.utc) >= order.charge.expires_at:
            self._set(order, "failed")

    @staticmethod
    def _set(order: _Order, state: OrderState) -> None:
        paid_at = datetime.now(timezone.utc) if state == "paid" else order.info.paid_at
        order.info = replace(order.info, state=state, paid_at=paid_at)

    @staticmethod
    def _qr_state(order: _Order) -> QrState:
        return "paid" if order.info.state in ("paid", "refunded") else order.info.state  # type: ignore[return-value]

    def qr_state(self, payment_id: str) -> QrState:
        with self._lock:
            order = self._orders.get(payment_id)
            if order is None:
                return "failed"  # unknown (e.g. the server restarted): no money was taken in a sandbox
            self._expire(order)
            return self._qr_state(order)

    def cancel_qr(self, payment_id: str) -> QrState:
        with self._lock:
            order = self._orders.get(payment_id)
            if order is None:
                return "failed"
            self._expire(order)
            if order.info.state == "pending":
                self._set(order, "failed")
            return self._qr_state(order)

    def confirm(self, payment_id: str, token: str | None = None) -> QrState:
        """The phone paid (``token`` from the QR code's URL is checked when given)."""
        with self._lock:
            order = self._orders.get(payment_id)
            if order is None or (token is not None and not secrets.compare_digest(token, order.pay_token)):
                return "failed"
            self._expire(order)
            if order.info.state == "pending":
                self._set(order, "paid")
            return self._qr_state(order)

    def order_amount(self, payment_id: str) -> Decimal | None:
        with self._lock:
            order = self._orders.get(payment_id)
            return order.info.amount if order else None

    # -- cards and payment codes (charged at once) ----------------------------------------------------
    def charge_insurance(self, payment_id: str, card_number: str, amount: Decimal) -> str:
        if card_number.upper() in self.declined_cards:
            raise PaymentDeclinedError("The insurance card was declined.")
        ref = f"sandbox-ins-{payment_id[-8:]}"
        with self._lock:
            order = self._orders.setdefault(payment_id, _Order(OrderInfo(payment_id, "pending", amount, "insurance", ref)))
            if order.info.state == "pending":
                self._set(order, "paid")
        return ref

    def charge_payment_code(self, payment_id: str, code: str, amount: Decimal, description: str) -> str:
        channel = payment_code_channel(code)  # NotAPaymentCodeError before anything is recorded
        with self._lock:
            order = self._orders.get(payment_id)
            if order is not None and order.info.state in ("paid", "refunded"):
                return order.info.provider_ref  # a retry: charged once
            if code.strip().endswith("0000"):
                self._orders[payment_id] = _Order(OrderInfo(payment_id, "failed", amount, channel, ""))
                raise PaymentDeclinedError("The payment was declined (insufficient balance).")
            prefix = "wx" if channel == "wechat" else "ali"
            ref = f"sandbox-{prefix}-{secrets.token_hex(6)}"
            order = self._orders[payment_id] = _Order(OrderInfo(payment_id, "pending", amount, channel, ref))
            self._set(order, "paid")
            return ref

    # -- order query, close, refund, statement ------------------------------------------------------
    def query_order(self, payment_id: str) -> OrderInfo | None:
        with self._lock:
            order = self._orders.get(payment_id)
            if order is None:
                return None
            self._expire(order)
            return order.info

    def close_order(self, payment_id: str) -> OrderState:
        with self._lock:
            order = self._orders.get(payment_id)
            if order is None:
                return "failed"
            self._expire(order)
            if order.info.state == "pending":
                self._set(order, "failed")
            return order.info.state

    def refund(self, payment_id: str, refund_id: str) -> Refund:
        with self._lock:
            order = self._orders.get(payment_id)
            if order is None or order.info.state not in ("paid", "refunded"):
                raise PaymentDeclinedError(f"Payment {payment_id} is not paid: nothing to refund.")
            if refund_id in order.refunds:
                return order.refunds[refund_id]  # a retried refund: the first answer, refunded once
            if order.info.state == "refunded":
                raise PaymentDeclinedError(f"Payment {payment_id} was already refunded.")
            refund = Refund(refund_id, payment_id, order.info.amount, f"sandbox-rf-{secrets.token_hex(6)}")
            order.refunds[refund_id] = refund
            order.refunded_at = datetime.now(timezone.utc)
            order.info = replace(order.info, state="refunded", refunded=order.info.amount)
            return refund

    def statement(self, day: date) -> str:
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(STATEMENT_HEADER)
        with self._lock:
            orders = list(self._orders.values())
        rows = []
        for order in orders:
            info = order.info
            if info.paid_at is not None and info.paid_at.astimezone(self.statement_tz).date() == day:
                rows.append((info.paid_at, info.payment_id, info.provider_ref, info.channel, "payment",
                             f"{info.amount:.2f}", ""))
            for refund in order.refunds.values():
                if order.refunded_at is not None and order.refunded_at.astimezone(self.statement_tz).date() == day:
                    rows.append((order.refunded_at, info.payment_id, refund.provider_ref, info.channel, "refund",
                                 f"{refund.amount:.2f}", refund.refund_id))
        for when, *rest in sorted(rows, key=lambda r: r[0]):
            writer.writerow((when.astimezone(self.statement_tz).strftime("%Y-%m-%d %H:%M:%S"), *rest))
        return out.getvalue()
