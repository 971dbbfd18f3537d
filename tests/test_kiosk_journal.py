"""A kiosk that crashes or loses power in the middle of a payment never loses it and never charges twice."""
from __future__ import annotations

from decimal import Decimal

import pytest

from hardware.payment_terminal import FakePaymentTerminal
from hardware.ticket_printer import FakeTicketPrinter
from kiosk.clock import ManualClock
from kiosk.payment_journal import PaymentInFlightError, PaymentJournal, reconcile
from kiosk.server_client import KioskServerClient, ServerUnavailableError
from kiosk.viewmodels import KioskViewModel


class PowerCutAfterApproval:
    """The bank card terminal approves, and at that instant the server goes away (the kiosk then 'crashes')."""

    def __init__(self, terminal: FakePaymentTerminal, cut) -> None:
        self.terminal, self.cut = terminal, cut

    def sale(self, **kw):
        result = self.terminal.sale(**kw)
        self.cut()
        return result

    def cancel(self) -> None:
        self.terminal.cancel()

    def query(self, txn_id):
        return self.terminal.query(txn_id)


def _kiosk(server, journal, terminal):
    client = KioskServerClient(server.base_url, token=server.tokens["kiosk"], timeout=3)
    return KioskViewModel(client=client, printer=FakeTicketPrinter(), terminal=terminal, journal=journal,
                          clock=ManualClock(), language="en"), client


def test_card_approved_then_crash_is_recorded_once_after_restart(queue_server, tmp_path):
    path = tmp_path / "journal.sqlite3"
    terminal = FakePaymentTerminal()
    vm, client = _kiosk(queue_server, PaymentJournal(path), PowerCutAfterApproval(terminal, queue_server.kill))
    vm.home.choose("payment")
    vm.on_card("YB1006")
    vm.decline_accessibility()  # 68: the large text / voice offer comes first
    vm.payment.choose("bank_card")
    assert vm.payment.state == "failed" and "not pay twice" in vm.payment.result
    pid = vm.payment._payment_id
    del vm  # the kiosk process is gone; only its journal file is left

    queue_server.start()
    journal = PaymentJournal(path)  # the kiosk starts again
    assert [e.state for e in journal.open_entries()] == ["terminal_approved"]
    results = reconcile(journal, client, terminal)
    assert [(r.before, r.after) for r in results] == [("terminal_approved", "receipt_missed")]
    record = client.payment(pid)
    assert record.status == "paid" and record.method == "bank_card" and record.amount == Decimal("10.00")
    assert reconcile(journal, client, terminal) == []  # nothing left to settle
    assert len(terminal.sales) == 1  # the card was charged once
    vm2, _ = _kiosk(queue_server, journal, terminal)
    vm2.home.choose("payment")
    vm2.on_card("YB1006")
    vm2.decline_accessibility()
    assert vm2.payment.state == "nothing"  # the bill is settled: nobody can pay it again


def test_reconciliation_waits_while_the_server_is_away(queue_server, tmp_path):
    journal = PaymentJournal(tmp_path / "journal.sqlite3")
    journal.start("kfeedfacefeedfacefeedfacefeedfac", ("B1006",), "bank_card", Decimal("10.00"))
    journal.update("kfeedfacefeedfacefeedfacefeedfac", "terminal_approved", terminal_ref="FAKE0001")
    queue_server.kill()
    client = KioskServerClient(queue_server.base_url, token=queue_server.tokens["kiosk"], timeout=2)
    with pytest.raises(ServerUnavailableError):
        reconcile(journal, client)
    assert [e.state for e in journal.open_entries()] == ["terminal_approved"]  # kept for the next try
    queue_server.start()
    assert reconcile(journal, client)[0].after == "receipt_missed"
    assert client.payment("kfeedfacefeedfacefeedfacefeedfac").status == "paid"


def test_pending_qr_at_crash_is_cancelled_and_unsent_payment_abandoned(queue_server, tmp_path):
    path = tmp_path / "journal.sqlite3"
    vm, client = _kiosk(queue_server, PaymentJournal(path), FakePaymentTerminal())
    vm.home.choose("payment")
    vm.on_card("YB1001")
    vm.payment.choose("qr")
    qr_id = vm.payment._payment_id
    assert vm.payment.state == "qr"
    journal = PaymentJournal(path)
    # A second entry that was journalled but never reached the server (power cut before the request).
    journal.start("kdeadbeefdeadbeefdeadbeefdeadbe", ("B1008",), "qr", Decimal("65.00"))
    outcome = {r.payment_id: r.after for r in reconcile(journal, client)}
    assert outcome == {qr_id: "cancelled", "kdeadbeefdeadbeefdeadbeefdeadbe": "abandoned"}
    assert client.payment(qr_id).status == "failed"  # the QR code can no longer be paid
    assert client.payment("kdeadbeefdeadbeefdeadbeefdeadbe") is None


def test_a_second_payment_for_bills_in_flight_is_refused(tmp_path):
    journal = PaymentJournal(tmp_path / "journal.sqlite3")
    journal.start("kaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", ("B1", "B2"), "qr", Decimal("5"))
    with pytest.raises(PaymentInFlightError):
        journal.start("kbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb", ("B2",), "bank_card", Decimal("5"))
    journal.update("kaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", "failed")
    journal.start("kbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb", ("B2",), "bank_card", Decimal("5"))
    assert journal.purge(keep_days=0) == 1  # finished entries do not linger on the kiosk
