"""Daily reconciliation (对账): the provider's statement against the payments the backend recorded.

The provider's statement (``PaymentProvider.statement(day)``, CSV as the services' daily bill
files) is the truth about money that moved; the hospital backend's ``PaymentRecord`` rows are
what the hospital believes. Staff need the differences, each with the order number to look up:

* ``not_recorded``: paid at the provider, but the backend has no paid record (e.g. the server
  died between the charge and the record) - the patient paid, the bill may still show as due;
* ``amount_differs``: both sides have it paid, with different amounts;
* ``not_at_provider``: the backend has a provider payment (QR, payment code, insurance) paid
  that the statement does not list - recorded as paid, but no money arrived.

Refund rows are netted out: a fully refunded payment is expected to be matched by the
backend no longer counting it (it is reported as ``refunded`` for staff to confirm).
"""
from __future__ import annotations

import csv
import io
from collections.abc import Iterable
from dataclasses import dataclass
from decimal import Decimal
from typing import Literal

from queueserver.hospital.port import PaymentRecord

# Methods whose money goes through the payment provider (bank cards go through the acquirer's own file).
PROVIDER_METHODS = frozenset({"qr", "payment_code", "insurance_card"})

MismatchKind = Literal["not_recorded", "amount_differs", "not_at_provider", "refunded"]


@dataclass(frozen=True)
class Mismatch:
    kind: MismatchKind
    payment_id: str
    provider_amount: Decimal | None
    recorded_amount: Decimal | None
    provider_ref: str = ""


def parse_statement(text: str) -> dict[str, tuple[Decimal, str, Decimal]]:
    """``payment_id -> (paid amount, provider_ref, refunded amount)`` from a statement CSV."""
    found: dict[str, tuple[Decimal, str, Decimal]] = {}
    for row in csv.DictReader(io.StringIO(text)):
        paid, ref, refunded = found.get(row["payment_id"], (Decimal("0.00"), "", Decimal("0.00")))
        amount = Decimal(row["amount"])
        if row["type"] == "payment":
            paid, ref = paid + amount, row["provider_ref"]
        elif row["type"] == "refund":
            refunded += amount
        else:
            raise ValueError(f"Unknown statement row type {row['type']!r} for {row['payment_id']}.")
        found[row["payment_id"]] = (paid, ref, refunded)
    return found


def reconcile_statement(statement: str, recorded: Iterable[PaymentRecord]) -> list[Mismatch]:
    """Every difference between one day's statement and the backend's records of that day, by order number."""
    provider = parse_statement(statement)
    records = {r.payment_id: r for r in recorded}
    out: list[Mismatch] = []
    for pid, (paid, ref, refunded) in sorted(provider.items()):
        rec = records.get(pid)
        if refunded and refunded >= paid:
            out.append(Mismatch("refunded", pid, paid, rec.amount if rec else None, ref))
        elif paid and (rec is None or rec.status != "paid"):
            out.append(Mismatch("not_recorded", pid, paid, rec.amount if rec else None, ref))
        elif paid and rec is not None and rec.amount != paid:
            out.append(Mismatch("amount_differs", pid, paid, rec.amount, ref))
    for pid, rec in sorted(records.items()):
        if rec.status == "paid" and rec.method in PROVIDER_METHODS and pid not in provider:
            out.append(Mismatch("not_at_provider", pid, None, rec.amount, rec.provider_ref or ""))
    return out
