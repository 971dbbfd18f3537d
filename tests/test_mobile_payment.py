"""WeChat Pay / Alipay payment codes read by the kiosk's scanner, and the sandbox shaped like the real services.

Flows go through the kiosk view-models against a real queue server (subprocess, SQLite,
Mosquitto); the provider's order query, close, refund, statement and the daily
reconciliation are tested on the sandbox provider itself.
"""
from __future__ import annotations

import csv
import io
from datetime import datetime, timezone
from decimal import Decimal
from zoneinfo import ZoneInfo

import httpx
import pytest

from hardware.escpos_preview import parse
from hardware.payment_terminal import FakePaymentTerminal
from hardware.ticket_printer import FakeTicketPrinter
from kiosk.clock import ManualClock
from kiosk.payment_journal import PaymentJournal, reconcile
from kiosk.server_client import KioskServerClient, ServerUnavailableError
from kiosk.viewmodels import KioskSettings, KioskViewModel
from queueserver.hospital.embedded import EmbeddedHospitalBackend
from queueserver.hospital.port import PaymentRecord
from queueserver.payments import NotAPaymentCodeError, PaymentDeclinedError, SandboxPaymentProvider, payment_code_channel
from queueserver.payments.reconcile import reconcile_statement
from tests.hardware_sims import decode_qr
from tests.phone_page import identify_on_phone_page, open_phone_page

WECHAT = "134567890123456789"  # 18 digits, 10-15: WeChat Pay
ALIPAY = "2845678901234567"  # 16 digits, 25-30: Alipay
ALIPAY_EMPTY = "287654321098760000"  # the sandbox declines codes ending 0000 (no balance)
BEIJING = ZoneInfo("Asia/Shanghai")  # the payment services cut their statements at midnight Beijing time


# -- the sandbox provider --------------------------------------------------------------------------
def test_payment_codes_are_told_apart_like_the_real_services():
    assert payment_code_channel(WECHAT) == "wechat" and payment_code_channel(ALIPAY) == "alipay"
    assert payment_code_channel("301234567890123456789012") == "alipay"  # 24 digits
    for not_a_code in ("AP1003", "164567890123456789", "13456789012345678", "2445678901234567", "1345678901234567x"):
        with pytest.raises(NotAPaymentCodeError):
            payment_code_channel(not_a_code)


def test_payment_code_charge_is_idempotent_and_queryable():
    sandbox = SandboxPaymentProvider()
    ref = sandbox.charge_payment_code("k1", WECHAT, Decimal("65.95"), "bills")
    assert sandbox.charge_payment_code("k1", WECHAT, Decimal("65.95"), "bills") == ref  # a retry charges nothing more
    order = sandbox.query_order("k1")
    assert order is not None and (order.state, order.amount, order.channel) == ("paid", Decimal("65.95"), "wechat")
    assert sandbox.query_order("never-sent") is None
    with pytest.raises(PaymentDeclinedError):
        sandbox.charge_payment_code("k2", ALIPAY_EMPTY, Decimal("10.00"), "bills")
    assert sandbox.query_order("k2").state == "failed"
    with pytest.raises(NotAPaymentCodeError):
        sandbox.charge_payment_code("k3", "AP1003", Decimal("10.00"), "bills")
    assert sandbox.query_order("k3") is None  # nothing reached the provider


def test_close_stops_a_qr_order_and_refund_is_full_and_idempotent():
    sandbox = SandboxPaymentProvider()
    sandbox.create_qr("q1", Decimal("54.00"), "bills")
    assert sandbox.close_order("q1") == "failed" and sandbox.confirm("q1") == "failed"  # closed: cannot be paid
    sandbox.charge_payment_code("k1", ALIPAY, Decimal("54.00"), "bills")
    assert sandbox.close_order("k1") == "paid"  # a paid order is not closed
    refund = sandbox.refund("k1", "r1")
    assert refund.amount == Decimal("54.00") and sandbox.refund("k1", "r1") == refund
    assert sandbox.query_order("k1").state == "refunded"
    with pytest.raises(PaymentDeclinedError):
        sandbox.refund("k1", "r2")  # refunded once only
    with pytest.raises(PaymentDeclinedError):
        sandbox.refund("q1", "r3")  # never paid


def test_statement_and_reconciliation_list_what_does_not_match():
    sandbox = SandboxPaymentProvider()
    sandbox.charge_payment_code("ok", WECHAT, Decimal("10.00"), "bills")
    sandbox.charge_payment_code("lost", ALIPAY, Decimal("20.00"), "bills")  # the server died before recording it
    sandbox.charge_payment_code("wrong", WECHAT, Decimal("30.00"), "bills")
    sandbox.charge_payment_code("back", ALIPAY, Decimal("40.00"), "bills")
    sandbox.refund("back", "rf-back")
    day = sandbox.query_order("ok").paid_at.astimezone(BEIJING).date()  # the statement of the day it was paid
    text = sandbox.statement(day)
    rows = list(csv.DictReader(io.StringIO(text)))
    assert sorted((r["payment_id"], r["type"], r["amount"]) for r in rows) == [
        ("back", "payment", "40.00"), ("back", "refund", "40.00"), ("lost", "payment", "20.00"),
        ("ok", "payment", "10.00"), ("wrong", "payment", "30.00")]
    assert sandbox.statement(day.replace(year=day.year - 1)).count("\n") == 1  # header only

    def rec(pid: str, amount: str, method: str = "payment_code", status: str = "paid") -> PaymentRecord:
        return PaymentRecord(pid, ("B1",), method, Decimal(amount), status, datetime.now(timezone.utc), "ref")

    recorded = [rec("ok", "10.00"), rec("lost", "20.00", status="pending"), rec("wrong", "3.00"),
                rec("back", "40.00"), rec("ghost", "5.00", method="qr"), rec("card", "7.00", method="bank_card")]
    found = {(m.kind, m.payment_id) for m in reconcile_statement(text, recorded)}
    assert found == {("not_recorded", "lost"), ("amount_differs", "wrong"), ("refunded", "back"),
                     ("not_at_provider", "ghost")}  # bank cards settle through the acquirer, not here


# -- through the kiosk -------------------------------------------------------------------------------
def _kiosk(server, journal=None, client=None):
    client = client or KioskServerClient(server.base_url, token=server.tokens["kiosk"], timeout=3)
    printer = FakeTicketPrinter()
    vm = KioskViewModel(client=client, printer=printer, terminal=FakePaymentTerminal(),
                        journal=journal or PaymentJournal(":memory:"), clock=ManualClock(), language="en",
                        settings=KioskSettings(device_id="kiosk-mobile-pay", idle_timeout=60))
    return vm, printer


def test_wechat_payment_code_pays_in_two_touches_after_identification(module_queue_server, artifacts_dir):
    vm, printer = _kiosk(module_queue_server)
    vm.home.choose("payment")
    vm.on_card("YB1001")
    assert vm.payment.state == "bills"
    assert "payment_code" in vm.payment.methods and "Cash is paid at window 1" in vm.payment.prompt
    assert "WeChat/Alipay" in vm.payment.method_label("qr")  # the kiosk-shows-a-QR way stays
    mark = vm.touches
    vm.payment.choose("payment_code")
    assert vm.payment.state == "scan_code" and "payment code under the scanner" in vm.payment.prompt
    vm.on_scan(WECHAT)
    assert vm.payment.state == "paid", vm.payment.result
    pid = vm.payment.payment.payment_id
    assert vm.payment.payment.method == "payment_code" and vm.payment.payment.amount == Decimal("65.95")
    assert "Method: WeChat Pay\n" in printer.last_text  # the receipt says which app paid
    invoice = vm.payment.payment.invoice  # the demo backend issues the e-invoice at once
    assert invoice.status == "issued" and invoice.total == Decimal("211.50")
    assert "Your e-invoice is on the receipt" in vm.payment.result
    assert (f"E-invoice code: {invoice.invoice_code}\nE-invoice number: {invoice.invoice_number}\n"
            f"Check code: {invoice.check_code}\n") in printer.last_text
    assert f"[QR] {invoice.verify_url}\nScan to see and check your e-invoice\n" in printer.last_text
    paper = parse(printer.jobs[-1].data).save_png(artifacts_dir / "receipt-einvoice.png")  # the paper, as printed
    assert decode_qr(paper) == [invoice.verify_url]  # a phone scanning the receipt opens the check page
    check = httpx.get(invoice.verify_url)  # what the patient's phone opens from the QR (the demo check page)
    assert check.status_code == 200 and invoice.invoice_number in check.text and "¥65.95" in check.text
    assert httpx.get(invoice.verify_url[:-1] + "X").status_code == 404  # a wrong check code checks nothing
    assert vm.journal.get(pid).state == "done"
    vm.payment.finish()
    assert vm.touches - mark <= 4 and vm.screen == "home"
    vm.home.choose("payment")
    vm.on_card("YB1001")
    assert vm.payment.state == "nothing"  # paid once: nothing left to pay


def test_not_a_code_and_declined_alipay_take_nothing_then_alipay_pays(module_queue_server):
    vm, printer = _kiosk(module_queue_server)
    vm.home.choose("payment")
    vm.on_card("YB1003")
    vm.payment.choose("payment_code")
    vm.on_scan("AP1003")  # an appointment slip under the scanner
    assert vm.payment.state == "scan_code" and "not a WeChat Pay or Alipay payment code" in vm.payment.error
    vm.on_scan(ALIPAY_EMPTY)
    assert vm.payment.state == "failed" and "Alipay declined" in vm.payment.result
    assert "Nothing was charged" in vm.payment.result
    declined = vm.payment.payment.payment_id
    assert vm.journal.get(declined).state == "failed"
    vm.end_session()
    vm.home.choose("payment")
    vm.on_card("YB1003")
    assert vm.payment.bills.self_pay == Decimal("54.00")  # still due
    vm.payment.choose("payment_code")
    vm.on_scan(ALIPAY)
    assert vm.payment.state == "paid" and "Method: Alipay\n" in printer.last_text


class AnswerLostThenCrash(KioskServerClient):
    """The server takes the payment, and at that instant the network goes (then the kiosk 'crashes')."""

    def __init__(self, *a, cut, **kw) -> None:
        super().__init__(*a, **kw)
        self.cut = cut

    def pay(self, session, request):
        super().pay(session, request)
        self.cut()
        raise ServerUnavailableError("the answer never came back")


def test_payment_code_charged_then_kiosk_crash_is_settled_once_after_restart(queue_server, tmp_path):
    path = tmp_path / "journal.sqlite3"
    lossy = AnswerLostThenCrash(queue_server.base_url, token=queue_server.tokens["kiosk"], timeout=3,
                                cut=queue_server.kill)
    vm, _ = _kiosk(queue_server, PaymentJournal(path), lossy)
    vm.home.choose("payment")
    vm.on_card("YB1006")
    vm.decline_accessibility()
    vm.payment.choose("payment_code")
    vm.on_scan(WECHAT)
    assert vm.payment.state == "failed" and "not pay twice" in vm.payment.result
    pid = vm.payment._payment_id
    del vm  # only the journal file is left

    queue_server.start()
    client = KioskServerClient(queue_server.base_url, token=queue_server.tokens["kiosk"], timeout=3)
    journal = PaymentJournal(path)
    assert [(e.method, e.state) for e in journal.open_entries()] == [("payment_code", "started")]
    assert [(r.before, r.after) for r in reconcile(journal, client)] == [("started", "receipt_missed")]
    record = client.payment(pid)
    assert record.status == "paid" and record.method == "payment_code" and record.amount == Decimal("10.00")
    assert reconcile(journal, client) == []
    vm2, _ = _kiosk(queue_server, journal, client)
    vm2.home.choose("payment")
    vm2.on_card("YB1006")
    vm2.decline_accessibility()
    assert vm2.payment.state == "nothing"  # settled: the bill cannot be paid again


def test_insurance_e_voucher_identifies_and_pays_the_insurance_part(module_queue_server):
    vm, printer = _kiosk(module_queue_server)
    vm.home.choose("payment")
    vm.on_scan("EC:YB1002:sandbox-token-1")  # the e-voucher QR from the patient's phone, instead of the card
    vm.decline_accessibility()  # 82: the large text / voice offer comes first
    assert vm.patient is not None and vm.payment.state == "bills"
    vm.payment.choose("insurance_card")
    vm.on_scan("EC:YB1002:sandbox-token-2")  # and again as the insurance part of the payment
    assert vm.payment.state == "paid" and vm.payment.payment.method == "insurance_card"
    assert "Payment receipt" in printer.last_text and "Method: Insurance card" in printer.last_text


def test_slow_e_invoice_does_not_hold_the_receipt_and_reaches_the_phone_page(module_queue_server, browser_page,
                                                                             artifacts_dir):
    from playwright.sync_api import expect

    server = module_queue_server
    his = EmbeddedHospitalBackend(server.data_dir / "hospital.sqlite3")  # the HIS's side of the demo
    his.set_einvoice_delay(3600)  # the finance bureau's platform is slow today
    try:
        vm, printer = _kiosk(server)
        vm.home.choose("payment")
        vm.on_card("E12344321")  # Emily Carter pays by bank card
        vm.payment.choose("bank_card")
        assert vm.payment.state == "paid" and vm.payment.payment.invoice.status == "pending"
        assert "e-invoice is being issued: see it later on your phone page" in vm.payment.result
        assert "Payment receipt" in printer.last_text and "See it later on your phone page" in printer.last_text
        assert "[QR]" not in printer.last_text and "E-invoice number" not in printer.last_text
        kiosk = server.client("kiosk")  # her queue ticket, whose QR code opens the phone page
        session = kiosk.post("/api/v1/patient/identify", json={"method": "card", "card_number": "E12344321"}).json()
        ticket = kiosk.post("/api/v1/patient/registrations", json={"department": "surgery"},
                            headers={"X-Patient-Session": session["session"]}).json()
        page = browser_page
        open_phone_page(page, ticket["status_url"])
        expect(page.locator("#einvoices-need-id")).to_be_visible()
        identify_on_phone_page(page, "13800000008", "4321")
        expect(page.locator("#einvoices-list li")).to_have_count(1)
        expect(page.locator("#einvoices-list li")).to_contain_text("开具中 Being issued")
        his.set_einvoice_delay(0)  # the platform answers: the page shows the invoice without a reload
    finally:
        his.set_einvoice_delay(0)
        his.close()
    issued = page.locator("#einvoices-list li[data-status=issued]")
    expect(issued).to_contain_text("No. 3106", timeout=10000)
    page.screenshot(path=str(artifacts_dir / "phone-einvoice.png"), full_page=True)
    stored = server.client("kiosk").get(f"/api/v1/payments/{vm.payment.payment.payment_id}").json()["invoice"]
    assert stored["status"] == "issued" and f"{stored['invoice_code']}-{stored['invoice_number']}" in issued.inner_text()
    with page.context.expect_page() as opened:
        issued.get_by_role("link", name="查看查验 View").click()
    check = opened.value
    expect(check.locator("#number")).to_have_text(stored["invoice_number"])
    expect(check.locator("#paid")).to_have_text("¥65.00")
    check.screenshot(path=str(artifacts_dir / "phone-einvoice-check.png"), full_page=True)
    assert page.console_errors == []  # type: ignore[attr-defined]

