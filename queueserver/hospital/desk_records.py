"""``PaymentChannels``: an optional capability of a hospital backend that knows where bills were paid.

The dashboard's "share of payments made at a kiosk" needs the payments made at the staffed cash
desk, which only the HIS records. A backend that can tell implements this protocol beside
``HospitalBackend``; one that cannot simply does not, and the dashboard says "not recorded"
instead of inventing a 0 % or 100 %. HL7 FHIR: ``PaymentReconciliation?created=ge<first>&created=lt<last>``,
split by ``PaymentReconciliation.processNote`` / the paying location (kiosk device or cashier).
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Protocol, runtime_checkable
from zoneinfo import ZoneInfo


@dataclass(frozen=True)
class ChannelCounts:
    """Paid payments in a range of days: at a clinicflow kiosk (or its phone QR page) and at a staffed desk."""

    kiosk: int
    desk: int

    @property
    def kiosk_share(self) -> float | None:
        total = self.kiosk + self.desk
        return round(self.kiosk / total, 3) if total else None


@runtime_checkable
class PaymentChannels(Protocol):
    def payments_by_channel(self, first: date, last: date, tz: ZoneInfo) -> ChannelCounts:
        """Payments paid on the days ``first``..``last`` (inclusive, in ``tz``), by where they were made."""
        ...
