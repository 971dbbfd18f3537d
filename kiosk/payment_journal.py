"""``PaymentJournal``: the only patient data a kiosk keeps, the payments it has in flight (SQLite).

A payment is written here *before* anything is charged, with the ``payment_id`` that is
also its idempotency key on the server, and every step after that is recorded with a
synchronous commit. After a crash or power cut, :func:`reconcile` asks the server what
became of each unfinished payment and settles the journal:

=====================  ==========================================================================
journal state           meaning / what reconciliation does
=====================  ==========================================================================
``started``             written, request maybe sent: ask the server; unknown -> ``abandoned``
                        (nothing was charged), pending QR -> cancel it, paid -> ``paid``;
                        a pending payment code -> cancel, which the server settles by the
                        provider's order query (paid stays paid: never charged twice)
``terminal_approved``   the bank card terminal approved: the money is taken, so the server
                        must record it: re-send with the same id (idempotent)
``paid``/``deferred``   settled; receipt not yet printed: ``receipt_missed`` (staff reprint)
``failed``              nothing taken
=====================  ==========================================================================

Finished entries are deleted after ``keep_days`` (no patient data lingers on the kiosk).
The journal holds no names: bill ids, amount, method, and the terminal's reference.
"""
from __future__ import annotations

import json
import logging
import sqlite3
import threading
import time
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from kiosk.server_client import KioskServerClient

log = logging.getLogger(__name__)

OPEN_STATES = ("started", "terminal_approved", "paid", "deferred")
FINAL_STATES = ("done", "failed", "abandoned", "receipt_missed", "cancelled")


@dataclass(frozen=True)
class JournalEntry:
    payment_id: str
    bill_ids: tuple[str, ...]
    method: str
    amount: Decimal
    state: str
    terminal_ref: str | None
    updated: float


class PaymentJournal:
    """Durable record of payments in flight. Thread-safe; ``path`` may be ``":memory:"`` in tests."""

    def __init__(self, path: str | Path) -> None:
        self.path = str(path)
        if self.path != ":memory:":
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")  # a power cut after a charge must not lose the row
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS payments (payment_id TEXT PRIMARY KEY, bill_ids TEXT NOT NULL, "
            "method TEXT NOT NULL, amount TEXT NOT NULL, state TEXT NOT NULL, terminal_ref TEXT, "
            "created REAL NOT NULL, updated REAL NOT NULL)")

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def start(self, payment_id: str, bill_ids: tuple[str, ...], method: str, amount: Decimal) -> JournalEntry:
        """Record a payment about to begin. Refuses bills that already have a payment in flight."""
        with self._lock:
            for entry in self._open_locked():
                if set(entry.bill_ids) & set(bill_ids):
                    raise PaymentInFlightError(
                        f"bills {', '.join(sorted(set(entry.bill_ids) & set(bill_ids)))} already have a payment in flight")
            now = time.time()
            self._db.execute("INSERT INTO payments VALUES (?,?,?,?,?,?,?,?)",
                             (payment_id, json.dumps(list(bill_ids)), method, str(amount), "started", None, now, now))
        entry = self.get(payment_id)
        assert entry is not None
        return entry

    def update(self, payment_id: str, state: str, *, terminal_ref: str | None = None) -> None:
        with self._lock:
            if terminal_ref is not None:
                self._db.execute("UPDATE payments SET state=?, terminal_ref=?, updated=? WHERE payment_id=?",
                                 (state, terminal_ref, time.time(), payment_id))
            else:
                self._db.execute("UPDATE payments SET state=?, updated=? WHERE payment_id=?",
                                 (state, time.time(), payment_id))

    def get(self, payment_id: str) -> JournalEntry | None:
        with self._lock:
            row = self._db.execute("SELECT * FROM payments WHERE payment_id=?", (payment_id,)).fetchone()
        return self._entry(row) if row else None

    def open_entries(self) -> list[JournalEntry]:
        with self._lock:
            return self._open_locked()

    def _open_locked(self) -> list[JournalEntry]:
        marks = ",".join("?" * len(OPEN_STATES))
        rows = self._db.execute(f"SELECT * FROM payments WHERE state IN ({marks}) ORDER BY created", OPEN_STATES)
        return [self._entry(r) for r in rows.fetchall()]

    def purge(self, keep_days: float = 1.0) -> int:
        """Delete finished entries older than ``keep_days``."""
        marks = ",".join("?" * len(FINAL_STATES))
        with self._lock:
            cur = self._db.execute(f"DELETE FROM payments WHERE state IN ({marks}) AND updated < ?",
                                   (*FINAL_STATES, time.time() - keep_days * 86400))
            return cur.rowcount

    @staticmethod
    def _entry(row: tuple) -> JournalEntry:
        pid, bills, method, amount, state, ref, _created, updated = row
        return JournalEntry(pid, tuple(json.loads(bills)), method, Decimal(amount), state, ref, updated)


class PaymentInFlightError(RuntimeError):
    """A second payment for bills that already have one in flight (the kiosk never starts it)."""


@dataclass(frozen=True)
class Reconciled:
    payment_id: str
    before: str
    after: str


def reconcile(journal: PaymentJournal, client: "KioskServerClient", terminal: Any = None) -> list[Reconciled]:
    """Settle every unfinished journal entry with the server (call at start-up, then when the server is back).

    Raises ``ServerUnavailableError`` if the server cannot be asked; entries then stay open
    and the next call tries again. Never starts a charge: it only asks, cancels a pending
    QR code, or records (idempotently) a card payment the terminal approved. A bank card
    sale whose outcome the kiosk never learnt is looked up on the ``terminal`` (``query``).
    """
    from protocol.api_patient import PaymentRequest

    results = []
    for entry in journal.open_entries():
        after = entry.state
        if entry.state in ("paid", "deferred"):
            after = "receipt_missed"  # the patient left before the receipt; the server has the payment
        elif entry.state == "terminal_approved":
            record = client.reconcile_payment(PaymentRequest(
                payment_id=entry.payment_id, bill_ids=entry.bill_ids, method="bank_card", amount=entry.amount,
                terminal_ref=entry.terminal_ref))
            after = "receipt_missed" if record.status == "paid" else record.status
        else:  # started
            record = client.payment(entry.payment_id)
            sale = terminal.query(entry.payment_id) if (record is None and entry.method == "bank_card"
                                                         and terminal is not None) else None
            if sale is not None and sale.approved:  # charged, but the server never heard of it
                record = client.reconcile_payment(PaymentRequest(
                    payment_id=entry.payment_id, bill_ids=entry.bill_ids, method="bank_card", amount=entry.amount,
                    terminal_ref=sale.auth_code or sale.txn_id))
                after = "receipt_missed" if record.status == "paid" else record.status
            elif record is None:
                after = "abandoned"
            elif record.status == "pending":
                record = client.cancel_payment(entry.payment_id)
                after = "receipt_missed" if record.status == "paid" else "cancelled"
            elif record.status in ("paid", "deferred"):
                after = "receipt_missed"
            else:
                after = "failed"
        journal.update(entry.payment_id, after)
        log.warning("payment %s reconciled after restart: %s -> %s", entry.payment_id, entry.state, after)
        results.append(Reconciled(entry.payment_id, entry.state, after))
    return results
