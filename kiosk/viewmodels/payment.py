"""Payment: outstanding bills itemised with the insurance / self-pay split; five ways to pay; a receipt.

Where the hospital backend issues electronic invoices (电子票据) the receipt carries the invoice's
code, number and check code and a QR code of its verification page; an invoice still being issued
is not waited for: the receipt says it will be on the phone page.

WeChat Pay / Alipay work both ways round: the kiosk shows a QR code the phone scans (``qr``),
or the kiosk's scanner reads the payment code the phone shows (``payment_code``, "micropay",
charged at once). Cash is not taken by the machine: the screen says which window takes it.

Every payment is journalled (``kiosk.payment_journal``) before anything is charged, under
a ``payment_id`` that is also the server's idempotency key, so a retry or a restart can
never charge twice. A failed, declined or expired payment says so and takes nothing.

Touches after identification: choose a method (1), confirm where needed (2), finish (3).
"""
from __future__ import annotations

import logging
from decimal import Decimal
from typing import Any

from kivy.properties import ListProperty, NumericProperty, ObjectProperty, OptionProperty, StringProperty

from kiosk.i18n import N_
from kiosk.server_client import ServerUnavailableError, new_key
from kiosk.viewmodels.base import FlowViewModel, VoiceOption
from protocol.api_patient import PaymentRequest
from protocol.errors import ClinicflowError, ConflictError, DeviceError

log = logging.getLogger(__name__)

METHOD_LABELS = {
    "insurance_card": N_("Insurance card"),
    "qr": N_("WeChat/Alipay: QR code"),
    "payment_code": N_("WeChat/Alipay: payment code"),
    "bank_card": N_("Bank card"),
    "pay_later": N_("Pay later"),
}


CHANNEL_LABELS = {"wechat": N_("WeChat Pay"), "alipay": N_("Alipay")}


def payment_channel(code: str) -> str | None:
    """``wechat`` / ``alipay`` for a scanned payment code, None for anything else (e.g. an appointment QR).

    The services' published formats: WeChat Pay 18 digits starting 10-15, Alipay 16-24 digits
    starting 25-30. The server checks again (``queueserver.payments.port.payment_code_channel``).
    """
    code = code.strip()
    if not (code.isascii() and code.isdigit()) or len(code) < 16:
        return None
    head = int(code[:2])
    if len(code) == 18 and 10 <= head <= 15:
        return "wechat"
    if len(code) <= 24 and 25 <= head <= 30:
        return "alipay"
    return None


def money(amount: Decimal) -> str:
    return f"¥{amount:.2f}"


class PaymentViewModel(FlowViewModel):
    state = OptionProperty("loading", options=["loading", "bills", "nothing", "insert_card", "qr", "scan_code", "terminal",
                                               "confirm_later", "paid", "failed"])
    bills = ObjectProperty(None, allownone=True)  # protocol.api_patient.BillsOut
    methods = ListProperty([])
    method = StringProperty("")
    payment = ObjectProperty(None, allownone=True)  # protocol.api_patient.PaymentOut
    qr_payload = StringProperty("")
    countdown = NumericProperty(0)  # seconds left to pay by QR
    summary = StringProperty("")  # "Total ¥175.00, insurance ¥120.00, you pay ¥55.00"
    result = StringProperty("")
    channel = StringProperty("")  # wechat / alipay: the payment code last scanned
    receipt_problem = StringProperty("")

    def __init__(self, kiosk, **kw) -> None:
        super().__init__(kiosk, **kw)
        self._payment_id: str | None = None
        self._timers: list = []

    # -- bills ----------------------------------------------------------------------------------
    def enter(self) -> None:
        if self.state in ("loading", "bills", "nothing"):
            self.state = "loading"
            self.prompt = self.tr("Loading your bills...")
            session = self.kiosk.patient.session
            self.kiosk.run(self, lambda: self.kiosk.client.bills(session), self._loaded)
        else:
            self._describe()

    def refresh_texts(self) -> None:
        self._describe()

    def _loaded(self, bills: Any, error: BaseException | None) -> None:
        if error is not None:
            self.state = "failed"
            self.result = self._unreachable() if isinstance(error, ServerUnavailableError) \
                else self.tr("Your bills could not be loaded. Please ask at the desk.")
            self._describe()
            return
        self.bills = bills
        self.methods = list(bills.methods)
        self.state = "bills" if bills.bills else "nothing"
        self._describe()

    def _unreachable(self) -> str:
        return self.tr("The hospital system is not reachable. Nothing was charged. Please go to the staffed desk: {where}",
                       where=self.tr.pick(self.kiosk.settings.directions))

    def _describe(self) -> None:
        tr, b = self.tr, self.bills
        if b is not None:
            self.summary = tr("Total {total}, insurance pays {ins}, you pay {own}.", total=money(b.total),
                              ins=money(b.insurance_part), own=money(b.self_pay))
        self.prompt = {
            "loading": tr("Loading your bills..."),
            "bills": self.summary + " " + tr("Choose how to pay.") + " " + self._cash_note(),
            "nothing": tr("You have nothing to pay."),
            "insert_card": tr("Insert your insurance card to pay {own}.", own=money(b.self_pay) if b else ""),
            "qr": tr("Scan the QR code with your phone to pay {own}.", own=money(b.self_pay) if b else ""),
            "scan_code": tr("Open WeChat Pay or Alipay, tap Pay, and hold the payment code under the scanner to pay {own}.",
                            own=money(b.self_pay) if b else ""),
            "terminal": tr("Insert or tap your bank card on the card terminal to pay {own}.", own=money(b.self_pay) if b else ""),
            "confirm_later": tr("Pay {own} later at the desk or in the app? Press Confirm.", own=money(b.self_pay) if b else ""),
            "paid": self.result,
            "failed": self.result,
        }[self.state]

    def _cash_note(self) -> str:
        return self.tr("Cash is paid at {where}.", where=self.tr.pick(self.kiosk.settings.directions))

    def on_state(self, *_):
        self._describe()

    def method_label(self, method: str) -> str:
        return self.tr(METHOD_LABELS[method])

    # -- choosing a method ------------------------------------------------------------------------
    def choose(self, method: str) -> None:
        """A method button (touch 1)."""
        self.kiosk.touch()
        if self.state != "bills" or method not in self.methods:
            return
        self.method = method
        self.error = ""
        if method == "insurance_card":
            self.state = "insert_card"
        elif method == "qr":
            self._start(PaymentRequest(payment_id=self._new_id(), bill_ids=self._bill_ids(), method="qr",
                                       amount=self.bills.self_pay))
        elif method == "payment_code":
            self.state = "scan_code"
        elif method == "bank_card":
            self.state = "terminal"
            self._charge_card()
        elif method == "pay_later":
            self.state = "confirm_later"

    def confirm_pay_later(self) -> None:
        self.kiosk.touch()
        if self.state == "confirm_later":
            self._start(PaymentRequest(payment_id=self._new_id(), bill_ids=self._bill_ids(), method="pay_later",
                                       amount=self.bills.self_pay))

    def card_read(self, card_number: str) -> None:
        """The card reader read the insurance card (no touch needed)."""
        if self.state != "insert_card":
            return
        try:
            request = PaymentRequest(payment_id=self._new_id(), bill_ids=self._bill_ids(), method="insurance_card",
                                     amount=self.bills.self_pay, card_number=card_number.strip())
        except ValueError:
            self.error = self.tr("The card could not be read. Please take it out and insert it again.")
            return
        self._start(request)

    def code_scanned(self, code: str) -> None:
        """The scanner read a code while the kiosk waits for a payment code (no touch needed)."""
        if self.state != "scan_code":
            return
        channel = payment_channel(code)
        if channel is None:
            self.error = self.tr("That is not a WeChat Pay or Alipay payment code. Open the payment code in the app and scan it again.")
            return
        self.channel, self.error = channel, ""
        self._start(PaymentRequest(payment_id=self._new_id(), bill_ids=self._bill_ids(), method="payment_code",
                                   amount=self.bills.self_pay, payment_code=code.strip()))

    def cancel(self) -> None:
        """Back to the bills (a QR code still shown is withdrawn; nothing is charged)."""
        self.kiosk.touch()
        self._stop_timers()
        if self.state == "terminal" and self.kiosk.terminal is not None:
            self.kiosk.terminal.cancel()  # the sale under way ends "cancelled"; its answer moves the screen on
            return
        if self.state == "qr" and self._payment_id:
            pid, client = self._payment_id, self.kiosk.client
            self.kiosk.run(self, lambda: client.cancel_payment(pid), self._cancelled)
            return
        self.state = "bills" if self.bills is not None and self.bills.bills else "nothing"

    def _cancelled(self, payment: Any, error: BaseException | None) -> None:
        if error is None and payment.status == "paid":  # paid on the phone just before the cancel
            self._settled(payment, None)
            return
        if error is None:
            self._journal_state(payment.payment_id, "cancelled")
        self.state = "bills" if self.bills is not None and self.bills.bills else "nothing"
        self.error = self.tr("The QR payment was cancelled. Nothing was charged.") if error is None else self._unreachable()

    def _bill_ids(self) -> tuple[str, ...]:
        return tuple(b.bill_id for b in self.bills.bills)

    def _new_id(self) -> str:
        self._payment_id = "k" + new_key()[:31]  # 32 characters: also a valid terminal txn_id
        return self._payment_id

    # -- the payment itself ---------------------------------------------------------------------
    def _journal(self, request: PaymentRequest) -> bool:
        journal = self.kiosk.journal
        if journal is None:
            return True
        from kiosk.payment_journal import PaymentInFlightError

        try:
            journal.start(request.payment_id, request.bill_ids, request.method, request.amount)
        except PaymentInFlightError:
            self.state = "failed"
            self.result = self.tr("A payment for these bills is still being processed. Nothing more was charged. Please ask at the desk.")
            return False
        return True

    def _start(self, request: PaymentRequest) -> None:
        if not self._journal(request):
            return
        session, client = self.kiosk.patient.session, self.kiosk.client
        self.kiosk.run(self, lambda: client.pay(session, request), self._answered)

    def _charge_card(self) -> None:
        terminal = self.kiosk.terminal
        if terminal is None:
            self.state = "bills"
            self.error = self.tr("Bank cards cannot be used at this kiosk.")
            return
        request = PaymentRequest(payment_id=self._new_id(), bill_ids=self._bill_ids(), method="bank_card",
                                 amount=self.bills.self_pay)
        if not self._journal(request):
            return
        fen, pid = int(request.amount * 100), request.payment_id
        self.kiosk.run(self, lambda: terminal.sale(txn_id=pid, amount_fen=fen, timeout=90.0),
                       lambda result, err: self._card_done(request, result, err))

    def _card_done(self, request: PaymentRequest, result: Any, error: BaseException | None) -> None:
        from hardware.payment_terminal import PaymentOutcomeUnknownError

        if isinstance(error, PaymentOutcomeUnknownError):
            # The money may have moved: keep the journal entry open; reconciliation settles it.
            self.state = "failed"
            self.result = self.tr("The card terminal stopped answering. If anything was charged it will be settled automatically; you will not pay twice. Please ask at the desk: {where}",
                                  where=self.tr.pick(self.kiosk.settings.directions))
            return
        if error is not None or not result.approved:
            self._journal_state(request.payment_id, "failed")
            self.state = "failed"
            why = {"declined": self.tr("the card was declined"), "timed_out": self.tr("no card was presented in time"),
                   "cancelled": self.tr("cancelled")}.get(getattr(result, "outcome", ""), self.tr("the card terminal is not working"))
            self.result = self.tr("The card payment did not go through ({why}). Nothing was charged.", why=why)
            return
        ref = result.auth_code or result.txn_id
        # The money is taken: journal that before telling the server, so a crash now is reconciled.
        self._journal_state(request.payment_id, "terminal_approved", terminal_ref=ref)
        request = request.model_copy(update={"terminal_ref": ref})
        session, client = self.kiosk.patient.session, self.kiosk.client
        self.kiosk.run(self, lambda: client.pay(session, request), self._answered)

    def _journal_state(self, payment_id: str, state: str, **kw: Any) -> None:
        if self.kiosk.journal is not None:
            self.kiosk.journal.update(payment_id, state, **kw)

    def _answered(self, payment: Any, error: BaseException | None) -> None:
        if error is not None:
            pid = self._payment_id
            if isinstance(error, ServerUnavailableError):
                # Unknown outcome: the journal keeps it open; reconciliation settles it.
                self.state = "failed"
                self.result = self.tr("The hospital system did not answer. If anything was charged it will be settled automatically; you will not pay twice. Please ask at the desk: {where}",
                                      where=self.tr.pick(self.kiosk.settings.directions))
            else:
                if pid:
                    entry = self.kiosk.journal.get(pid) if self.kiosk.journal else None
                    if entry is None or entry.state != "terminal_approved":
                        self._journal_state(pid, "failed")
                self.state = "failed"
                why = getattr(error, "detail", str(error))
                self.result = self.tr("The payment did not go through: {why} Nothing was charged.", why=why) \
                    if isinstance(error, (ConflictError, ClinicflowError)) else str(error)
            return
        self.payment = payment
        if payment.status == "pending" and payment.method == "qr":
            self.qr_payload = payment.qr_payload or ""
            self.state = "qr"
            self._start_countdown(payment)
            return
        self._settled(payment, None)

    def _start_countdown(self, payment: Any) -> None:
        from datetime import datetime, timezone

        left = (payment.expires_at - datetime.now(timezone.utc)).total_seconds() if payment.expires_at else 120
        self.countdown = max(0, int(left))
        self._tick()

    def _tick(self) -> None:
        if self.state != "qr":
            return
        if self.countdown <= 0:
            pid, client = self._payment_id, self.kiosk.client
            self.kiosk.run(self, lambda: client.cancel_payment(pid), self._settled)
            return
        pid, client = self._payment_id, self.kiosk.client
        if not self.busy:
            self.kiosk.run(self, lambda: client.payment(pid), self._polled)
        step = min(self.kiosk.settings.qr_poll_interval, 1.0)
        self._timers.append(self.kiosk.clock.schedule(step, self._countdown_step))

    def _countdown_step(self) -> None:
        self.countdown = max(0, self.countdown - min(self.kiosk.settings.qr_poll_interval, 1.0))
        self.kiosk.restart_idle()  # waiting for the phone is not idling
        self._tick()

    def _polled(self, payment: Any, error: BaseException | None) -> None:
        if error is not None or payment is None or self.state != "qr":
            return  # keep polling; a network blip does not end the payment
        if payment.status != "pending":
            self._stop_timers()
            self._settled(payment, None)

    def _stop_timers(self) -> None:
        for cancel in self._timers:
            cancel()
        self._timers.clear()

    def _settled(self, payment: Any, error: BaseException | None) -> None:
        self._stop_timers()
        if error is not None:
            self.state = "failed"
            self.result = self._unreachable()
            return
        self.payment = payment
        pid = payment.payment_id
        if payment.status == "paid":
            self._journal_state(pid, "paid")
            self.result = self.tr("Paid {amount}. Thank you. Your receipt is printing.", amount=money(payment.amount))
            invoice = getattr(payment, "invoice", None)
            if invoice is not None:  # where the hospital issues e-invoices
                self.result += " " + (self.tr("Your e-invoice is on the receipt and on your phone page.")
                                      if invoice.status == "issued" else
                                      self.tr("Your e-invoice is being issued: see it later on your phone page."))
            self.state = "paid"
            self._print_receipt(payment)
        elif payment.status == "deferred":
            self._journal_state(pid, "deferred")
            self.result = self.tr("Done: {amount} will be paid later. Your slip is printing.", amount=money(payment.amount))
            self.state = "paid"
            self._print_receipt(payment)
        else:
            self._journal_state(pid, "failed")
            self.state = "failed"
            if payment.method == "payment_code":
                self.result = self.tr("{channel} declined the payment. Nothing was charged. Please choose another way to pay.",
                                      channel=self.tr(CHANNEL_LABELS.get(self.channel, CHANNEL_LABELS["wechat"])))
            else:
                self.result = self.tr("The payment was not completed. Nothing was charged.") if self.method != "qr" else \
                    self.tr("The QR code has expired. Nothing was charged.")

    def _print_receipt(self, payment: Any) -> None:
        from hardware.receipt_layout import Receipt

        from datetime import datetime, timezone

        tr = self.tr
        paid = payment.status == "paid"
        now = self.kiosk.local_time(datetime.now(timezone.utc))  # the hospital's clock, not the machine's
        rows = [(tr("Patient"), self.kiosk.patient_ref), (tr("Date and time"), f"{now:%Y-%m-%d %H:%M}")]
        rows += [(tr.pick(item.description), money(item.self_pay)) for bill in self.bills.bills for item in bill.items]
        rows += [(tr("Total"), money(self.bills.total)), (tr("Insurance"), money(self.bills.insurance_part)),
                 (tr("You paid") if paid else tr("To pay later"), money(payment.amount)),
                 (tr("Method"), self._method_on_receipt(payment.method)), (tr("Reference"), payment.payment_id[-10:])]
        invoice = getattr(payment, "invoice", None) if paid else None  # where the hospital issues e-invoices
        qr, caption, notes = None, "", ()
        if invoice is not None and invoice.status == "issued":
            rows += [(tr("E-invoice code"), invoice.invoice_code), (tr("E-invoice number"), invoice.invoice_number),
                     (tr("Check code"), invoice.check_code)]
            qr, caption = invoice.verify_url or None, tr("Scan to see and check your e-invoice")
        elif invoice is not None:  # the finance platform is slow: the receipt does not wait for it
            notes = (tr("E-invoice: being issued. See it later on your phone page (the QR code on your queue ticket)."),)
        # Nothing was paid on a pay-later slip: it must not be titled a receipt.
        receipt = Receipt(title=tr("Payment receipt") if paid else tr("Pay-later slip: not paid yet"),
                          rows=tuple(rows), header=tr.pick(self.kiosk.settings.hospital_name), qr=qr, qr_caption=caption,
                          notes=notes,
                          footer=tr("Keep this receipt.") if paid else tr("Keep this slip; pay at the desk or in the app."))
        printer = self.kiosk.printer

        def done(_r: Any, error: BaseException | None) -> None:
            if error is not None:
                self.kiosk.printer_failed("paper_out" if "paper" in str(error).lower() else str(error))
                self.receipt_problem = tr("The receipt could not be printed. Please take a photo of this screen; the desk can print it again.")
                return
            self.kiosk.printer_ok()
            self._journal_state(payment.payment_id, "done")

        if printer is None:
            done(None, DeviceError("no printer"))
            return
        self.kiosk.run(self, lambda: printer.print_receipt(receipt), done)

    def _method_on_receipt(self, method: str) -> str:
        if method == "payment_code" and self.channel in CHANNEL_LABELS:
            return self.tr(CHANNEL_LABELS[self.channel])  # the receipt says which app paid
        return self.tr(METHOD_LABELS[method])

    def finish(self) -> None:
        self.kiosk.touch()
        self.kiosk.end_session()

    def voice_prompt(self) -> str:
        if self.state == "bills" and self.bills is not None:  # what to do and how much, first
            b = self.bills  # the amount to pay first; the rest short (the screen shows every item)
            return self.tr("You pay {own}: choose how to pay.", own=money(b.self_pay)) + " " + \
                self.tr("Insurance pays {ins} of {total}.", ins=money(b.insurance_part), total=money(b.total))
        return self.prompt

    def voice_options(self) -> list[VoiceOption]:
        if self.state == "bills":
            return [(self.method_label(m), lambda m=m: self.choose(m)) for m in self.methods]
        if self.state == "confirm_later":
            return [(self.tr("Confirm"), self.confirm_pay_later), (self.tr("Cancel"), self.cancel)]
        if self.state in ("qr", "scan_code", "insert_card", "terminal"):
            return [(self.tr("Cancel"), self.cancel)]
        if self.state in ("paid", "failed", "nothing"):
            return [(self.tr("Finish"), self.finish)]
        return []

    def reset(self) -> None:
        super().reset()
        self._stop_timers()
        self.state = "loading"
        self.bills = None
        self.methods = []
        self.method = self.channel = ""
        self.payment = None
        self.qr_payload = ""
        self.countdown = 0
        self.summary = self.result = self.receipt_problem = ""
        self._payment_id = None
