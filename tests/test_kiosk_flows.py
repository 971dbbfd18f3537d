"""The kiosk's flows through their view-models, against a real queue server (subprocess, SQLite, Mosquitto).

Each test is what a patient does at the machine; printers, card terminal and speaker are the
fakes shipped in ``hardware/``. The server is shared by the module, so each test uses its own
demo patients (see ``queueserver/hospital/seed.py``).
"""
from __future__ import annotations

import re
from datetime import datetime
from decimal import Decimal
from pathlib import Path

import httpx
import pytest

from clinicflow.broker import free_port
from hardware.payment_terminal import FakePaymentTerminal
from hardware.report_printer import FakeReportPrinter
from hardware.speech import FakeSpeaker
from hardware.ticket_printer import FakeTicketPrinter
from kiosk.clock import ManualClock
from kiosk.payment_journal import PaymentJournal
from kiosk.server_client import KioskServerClient
from kiosk.viewmodels import KioskSettings, KioskViewModel
from tests.fixtures_server import DEMO_HOSPITAL, QueueServerProcess, daytime_hospital, daytime_zone

TZ = daytime_zone()  # the hospital's wall clock at mid-morning: the demo's late and early patients are today's


@pytest.fixture(scope="module")
def server(tmp_path_factory, mosquitto):
    data_dir = tmp_path_factory.mktemp("kiosk-flows")
    proc = QueueServerProcess(data_dir, mosquitto.url, hospital=daytime_hospital(data_dir / "hospital.toml", TZ)).start()
    yield proc
    proc.stop()


class Kiosk:
    """A kiosk view-model with fake devices, a manual clock, and helpers to count touches."""

    def __init__(self, base_url: str, token: str, journal_path: Path | None = None, language: str = "en", **kw):
        self.printer = kw.pop("printer", FakeTicketPrinter())
        self.reports = FakeReportPrinter()
        self.speaker = FakeSpeaker()
        self.terminal = kw.pop("terminal", FakePaymentTerminal())
        self.clock = ManualClock()
        self.journal = PaymentJournal(journal_path or ":memory:")
        self.vm = KioskViewModel(client=KioskServerClient(base_url, token=token, timeout=3), printer=self.printer,
                                 report_printer=self.reports, speaker=self.speaker, terminal=self.terminal,
                                 clock=self.clock, journal=self.journal, language=language,
                                 settings=KioskSettings(device_id="kiosk-test", idle_timeout=60, timezone=TZ.key), **kw)
        self._mark = 0

    def mark(self) -> None:
        self._mark = self.vm.touches

    @property
    def touches_since_mark(self) -> int:
        return self.vm.touches - self._mark


@pytest.fixture
def kiosk(server):
    return Kiosk(server.base_url, server.tokens["kiosk"])


def admin(server) -> httpx.Client:
    return server.client("admin")


# -- check-in ----------------------------------------------------------------------------------
def test_checkin_on_keypad_shows_and_prints_the_ticket(kiosk):
    vm = kiosk.vm
    vm.home.choose("checkin")
    for key in "1003":
        vm.checkin.press(key)
    assert vm.checkin.code == "AP1003"
    vm.checkin.press("ok")
    assert vm.screen == "ticket"
    ticket = vm.ticket.ticket
    assert ticket.number.startswith("B") and ticket.department == "surgery"
    assert vm.ticket.printed and ticket.number in kiosk.printer.last_text
    assert vm.ticket.qr_text == ticket.status_url and "/status/" in ticket.status_url
    assert "[QR]" in kiosk.printer.last_text  # the printed slip carries the QR code of the status page


def test_wrong_appointment_number_gives_clear_message_and_no_ticket(kiosk):
    vm = kiosk.vm
    vm.home.choose("checkin")
    for key in "9999":
        vm.checkin.press(key)
    vm.checkin.press("ok")
    assert vm.screen == "checkin" and vm.ticket.ticket is None
    assert "AP9999" in vm.checkin.error and "could not find" in vm.checkin.error
    assert kiosk.printer.jobs == []


def test_scanning_an_appointment_qr_on_home_checks_in_without_a_touch(kiosk):
    vm = kiosk.vm
    vm.on_scan("AP1006\n")
    assert vm.screen == "ticket" and vm.touches == 0
    assert vm.ticket.ticket.room == "r2"  # booked into room 2


def test_identified_patient_checks_in_single_appointment_in_one_touch(kiosk):
    vm = kiosk.vm
    vm.home.choose("checkin")
    vm.on_card("YB1005")  # the child's insurance card (the card reader, not a touch)
    assert vm.screen == "appointments"
    kiosk.mark()
    assert vm.appointments.can_check_in
    vm.appointments.confirm()
    assert vm.screen == "ticket" and vm.ticket.ticket.number.startswith("C")
    assert kiosk.touches_since_mark <= 2


def test_early_patient_is_told_when_check_in_opens_and_gets_no_ticket(kiosk):
    vm = kiosk.vm
    vm.home.choose("checkin")
    vm.on_card("YB1002")
    vm.decline_accessibility()  # 82: the large text / voice offer comes first
    vm.appointments.select("AP1002")
    assert not vm.appointments.can_check_in
    slot = vm.format_time(vm.appointments.selected.slot_start)
    opens = vm.format_time(vm.appointments.selected.checkin_opens_at)
    assert slot in vm.appointments.guidance and opens in vm.appointments.guidance
    vm.appointments.confirm()
    assert vm.screen == "appointments" and kiosk.printer.jobs == []


def test_late_patient_is_warned_and_can_still_check_in(kiosk):
    vm = kiosk.vm
    vm.home.choose("checkin")
    vm.on_card("YB1004")
    assert "late" in vm.appointments.guidance
    vm.appointments.confirm()
    assert vm.screen == "ticket"


def test_printer_out_of_paper_keeps_the_ticket_on_screen_with_its_qr(kiosk):
    kiosk.printer.simulate_paper_out()
    vm = kiosk.vm
    vm.checkin.type_code("AP1003")  # already checked in above: the same ticket again
    vm.go("checkin")
    vm.checkin.submit()
    assert vm.screen == "ticket" and vm.ticket.qr_text
    assert "photo" in vm.ticket.print_problem and not vm.ticket.printed
    assert vm.printer_fault == "paper_out"  # what the device status reports


# -- accessibility -------------------------------------------------------------------------------
def test_patient_over_65_is_offered_large_text_and_voice(kiosk):
    vm = kiosk.vm
    vm.home.choose("payment")
    vm.on_card("YB1002")  # 82 years old
    assert vm.screen == "access" and vm.offer_accessibility  # a step of its own, before the bills
    assert kiosk.speaker.spoken[-1].text.startswith("Would you like larger text")  # spoken, voice off or not
    kiosk.mark()
    vm.accept_accessibility()
    assert vm.large_text and vm.voice and vm.screen == "payment"
    assert kiosk.touches_since_mark == 1
    assert "you pay" in kiosk.speaker.spoken[-1].text.lower()  # the bills are read next
    vm.end_session()
    vm.large_text = vm.voice = False
    vm.home.choose("payment")
    vm.on_card("YB1001")  # 40 years old
    assert not vm.offer_accessibility


# -- payment -------------------------------------------------------------------------------------
def _identify_by_phone(vm, phone: str, last4: str) -> None:
    vm.identify.use_phone()
    for key in phone:
        vm.identify.press(key)
    vm.identify.press("ok")
    for key in last4:
        vm.identify.press(key)
    vm.identify.press("ok")


def test_qr_payment_itemised_paid_on_phone_in_few_touches(kiosk, server):
    vm = kiosk.vm
    vm.home.choose("payment")
    _identify_by_phone(vm, "13800000001", "1234")
    assert vm.screen == "payment" and vm.payment.state == "bills"
    kiosk.mark()
    bills = vm.payment.bills
    assert [len(b.items) for b in bills.bills] == [3, 1]
    assert bills.total == Decimal("211.50") and bills.insurance_part == Decimal("145.55")
    assert "¥65.95" in vm.payment.summary and "pay_later" not in vm.payment.methods
    vm.payment.choose("qr")
    assert vm.payment.state == "qr" and "/pay/" in vm.payment.qr_payload
    assert 100 <= vm.payment.countdown <= 120
    kiosk.clock.advance(3)
    assert vm.payment.state == "qr" and vm.payment.countdown <= 117  # visibly counting down
    pid = vm.payment.payment.payment_id
    assert admin(server).post(f"/api/v1/payments/{pid}/confirm").json()["status"] == "paid"  # the phone paid
    kiosk.clock.advance(2)
    assert vm.payment.state == "paid"
    receipt = kiosk.printer.last_text
    assert "Chest X-ray" in receipt and "65.95" in receipt
    assert receipt.startswith("Demo Hospital\nPayment receipt\n")
    assert "Patient: " in receipt and "****0001" in receipt and "13800000001" not in receipt  # masked
    now = datetime.now(TZ)  # the hospital's clock, whatever the machine's zone
    stamp = re.search(r"Date and time: (\d{4}-\d\d-\d\d \d\d:\d\d)", receipt).group(1)
    assert abs((datetime.strptime(stamp, "%Y-%m-%d %H:%M").replace(tzinfo=now.tzinfo) - now).total_seconds()) < 120
    assert kiosk.journal.get(pid).state == "done"
    vm.payment.finish()
    assert kiosk.touches_since_mark <= 4 and vm.screen == "home"


def test_expired_qr_code_takes_nothing_then_insurance_card_pays(kiosk, server):
    vm = kiosk.vm
    vm.home.choose("payment")
    vm.on_card("YB1003")
    vm.payment.choose("qr")
    kiosk.clock.advance(125)
    assert vm.payment.state == "failed" and "expired" in vm.payment.result and "Nothing was charged" in vm.payment.result
    # Start again: the bills are still there; the insurance card pays them.
    vm.end_session()
    vm.home.choose("payment")
    vm.on_card("YB1003")
    assert vm.payment.bills.self_pay == Decimal("54.00")
    vm.payment.choose("insurance_card")
    assert vm.payment.state == "insert_card"
    vm.on_card("YB1003")
    assert vm.payment.state == "paid" and vm.payment.payment.method == "insurance_card"


def test_declined_bank_card_takes_nothing_and_approved_card_pays_once(kiosk):
    vm = kiosk.vm
    kiosk.terminal.next_outcome = "declined"
    vm.home.choose("payment")
    vm.on_card("E12344321")  # uninsured: no insurance card method
    assert vm.payment.methods == ["qr", "payment_code", "bank_card"]
    vm.payment.choose("bank_card")
    assert vm.payment.state == "failed" and "declined" in vm.payment.result and "Nothing was charged" in vm.payment.result
    vm.end_session()
    kiosk.terminal.next_outcome = "approved"
    vm.home.choose("payment")
    vm.on_card("E12344321")
    vm.payment.choose("bank_card")
    assert vm.payment.state == "paid"
    assert [sale[1] for sale in kiosk.terminal.sales] == [6500, 6500]  # two sales tried, one approved
    vm.end_session()
    vm.home.choose("payment")
    vm.on_card("E12344321")
    assert vm.payment.state == "nothing"


def test_pay_later_only_for_eligible_patients(kiosk):
    vm = kiosk.vm
    vm.home.choose("payment")
    vm.on_card("YB1002")
    vm.decline_accessibility()
    assert "pay_later" in vm.payment.methods
    kiosk.mark()
    vm.payment.choose("pay_later")
    vm.payment.confirm_pay_later()
    assert vm.payment.state == "paid" and vm.payment.payment.status == "deferred"
    slip = kiosk.printer.last_text
    assert "Pay-later slip: not paid yet" in slip and "Payment receipt" not in slip  # nothing was paid
    assert vm.payment.payment.invoice is None and "E-invoice" not in slip and "[QR]" not in slip  # so no invoice
    assert kiosk.touches_since_mark <= 4


# -- reports -------------------------------------------------------------------------------------
def test_reports_print_in_one_touch_and_not_ready_says_when(kiosk):
    vm = kiosk.vm
    vm.home.choose("reports")
    vm.on_card("YB1001")
    kiosk.mark()
    lines = [vm.reports.line(r) for r in vm.reports.reports]
    assert "Full blood count: ready" in lines
    pending = next(r for r in vm.reports.reports if not r.ready)
    assert vm.format_time(pending.ready_at) in vm.reports.line(pending)
    vm.reports.print_ready()
    assert [job.title for job in kiosk.reports.jobs] == ["report R1001"]
    assert kiosk.reports.jobs[0].data.startswith(b"%PDF")
    assert "printed" in vm.reports.status_text
    assert kiosk.touches_since_mark <= 3


def test_reprints_are_limited(kiosk):
    vm = kiosk.vm
    for _ in range(3):
        vm.end_session()
        vm.home.choose("reports")
        vm.on_card("YB1001")
        vm.reports.print_ready()
    blood = next(r for r in vm.reports.reports if r.report_id == "R1001")
    assert blood.prints == 2 and blood.reprints_left == 0  # first print + one reprint (hospital setting)
    assert "ask at the desk" in vm.reports.line(blood)
    assert len(kiosk.reports.jobs) == 1  # the first print was in the test above: this kiosk printed once


def test_report_printer_failure_is_said_and_not_recorded(server):
    k = Kiosk(server.base_url, server.tokens["kiosk"])
    k.reports.simulate_paper_out()
    k.vm.home.choose("reports")
    k.vm.on_card("YB1002")
    k.vm.decline_accessibility()
    k.vm.reports.print_ready()
    assert "not working" in k.vm.reports.error
    assert all(r.prints == 0 for r in k.vm.reports.reports)


# -- registration --------------------------------------------------------------------------------
def test_walk_in_guide_recommends_paediatrics_for_a_child_with_fever(kiosk):
    vm = kiosk.vm
    vm.home.choose("register")
    vm.on_card("YB1005")
    assert vm.screen == "register"
    assert [d.department for d in vm.register.departments] == ["internal", "surgery", "pediatrics"]
    vm.register.start_guide()
    vm.register.pick_area("whole")
    vm.register.toggle_symptom("fever")
    vm.register.finish_guide()
    assert vm.register.stage == "advice" and vm.register.recommendation.department == "pediatrics"
    vm.register.accept_advice()
    vm.register.pick_slot(vm.register.department.slots[0].start)
    assert vm.screen == "ticket" and vm.ticket.ticket.number.startswith("C")


def test_registration_by_an_identified_patient_is_her_ticket_on_the_phone_the_desk_and_the_console(kiosk, server):
    """王秀英 (82, two reports) registers for surgery with her card: the ticket is hers, as a check-in's is."""
    vm = kiosk.vm
    vm.home.choose("register")
    vm.on_card("YB1002")
    vm.decline_accessibility()
    vm.register.pick_department("surgery")
    vm.register.pick_slot(vm.register.department.slots[0].start)
    ticket = vm.ticket.ticket
    assert vm.screen == "ticket" and ticket.masked_name == "王*英"
    phone = httpx.Client(base_url=server.base_url, timeout=5)  # the status page behind the ticket's QR code
    summary = phone.get(f"/api/v1/phone/tickets/{ticket.ticket_id}/reports").json()
    session = phone.post("/api/v1/phone/identify", json={"phone": "13800000002", "id_last4": "5678"}).json()["session"]
    listed = phone.get("/api/v1/phone/reports", headers={"X-Patient-Session": session}).json()
    assert summary["count"] == len(listed) == 2 and summary["ready"] == sum(r["ready"] for r in listed)
    queue = admin(server).get("/api/v1/rooms/r3/console").json()["queue"]
    mine = next(q for q in queue if q["ticket_id"] == ticket.ticket_id)
    assert mine["priority"] == "age 82" and mine["masked_name"] == "王*英"  # the clinician sees why, as at check-in
    vm.go("help")
    vm.help.call_staff()  # still identified: the desk sees her ticket
    latest = admin(server).get("/api/v1/help-requests").json()["help_requests"][0]
    assert latest["ticket"] == ticket.number
    vm.end_session()
    anonymous = server.client("kiosk").post("/api/v1/walkins", json={"department": "surgery"})  # no patient: still fine
    assert anonymous.status_code == 201 and anonymous.json()["masked_name"] == ""
    assert phone.get(f"/api/v1/phone/tickets/{anonymous.json()['ticket_id']}/reports").json()["count"] == 0


def _guide(vm, symptoms, card: str = "YB1004") -> None:
    """A walk-in (56) picks ``symptoms`` in the symptom guide, area by area, and presses Done."""
    vm.end_session()
    vm.home.choose("register")
    vm.on_card(card)
    vm.register.start_guide()
    for symptom in symptoms:
        vm.register.pick_area(vm.guide.symptom(symptom).area)
        vm.register.toggle_symptom(symptom)
    vm.register.finish_guide()


def test_red_flag_sends_to_emergency_and_alerts_staff(kiosk, server):
    vm = kiosk.vm
    _guide(vm, ["chest_pain", "breathless"])
    assert vm.register.stage == "emergency" and "Emergency" in vm.register.advice
    requests = admin(server).get("/api/v1/help-requests").json()["help_requests"]
    assert requests[0]["reason"] == "red_flag" and requests[0]["device"] == "kiosk-test"


def test_every_red_flag_alerts_staff_with_its_triage_reference_and_issues_no_ticket(kiosk, server):
    vm = kiosk.vm
    for rule in [r for r in vm.guide.rules if r.red_flag]:
        _guide(vm, sorted(rule.all) + sorted(rule.any)[:1])
        assert vm.register.stage == "emergency", rule.id
        latest = admin(server).get("/api/v1/help-requests").json()["help_requests"][0]
        assert latest["reason"] == "red_flag" and latest["department"] == "emergency"
        assert latest["message"].startswith(rule.id + ": ") and rule.triage[:40] in latest["message"]
        direction = vm.register.emergency_direction
        assert ("nurse" in direction) == (rule.action == "nurse") and ("red line" in direction) == (rule.action == "emergency")
    assert kiosk.printer.jobs == []  # no queue ticket for any of them


def test_chest_pain_alone_calls_a_nurse_to_the_kiosk(kiosk, server):
    vm = kiosk.vm
    _guide(vm, ["chest_pain"])
    assert vm.register.stage == "emergency" and vm.register.nurse_comes
    assert "stay here" in vm.register.advice and "ECG" in vm.register.advice
    assert vm.register.department is None  # not sent to Internal medicine's queue


def test_ticket_of_a_multi_room_department_says_where_to_wait_and_next_in_line(kiosk):
    vm = kiosk.vm
    vm.set_language("zh", touched=False)
    vm.checkin.type_code("AP1001")  # internal medicine, no room assigned yet
    vm.go("checkin")
    vm.checkin.submit()
    ticket = vm.ticket.ticket
    # where to wait comes from the hospital file's location of the department's waiting area
    assert ticket.room is None and ticket.where["zh"] == "门诊楼 2 楼，出电梯左转"
    assert "门诊楼 2 楼，出电梯左转" in vm.ticket.room_text
    assert "候诊：门诊楼 2 楼，出电梯左转" in kiosk.printer.last_text
    vm.ticket.show(ticket.model_copy(update={"position": 1, "estimated_wait_min": 0}))  # the next one in line
    assert vm.ticket.position_text == "下一位就是您。" and vm.ticket.wait_text == ""
    assert "下一位就是您" in kiosk.printer.last_text and "0 分钟" not in kiosk.printer.last_text


def test_touch_counts_in_large_text_meet_the_goals(kiosk):
    """After identification: check-in <= 2, payment <= 4, reports <= 3 touches, with large text on."""
    vm = kiosk.vm
    vm.large_text = True
    vm.home.choose("checkin")
    vm.on_card("E12344321")
    kiosk.mark()
    vm.appointments.confirm()
    assert vm.screen == "ticket" and kiosk.touches_since_mark <= 2
    vm.ticket.done()
    vm.home.choose("payment")
    vm.on_card("YB1006")  # 68: large text already on, so no offer step
    kiosk.mark()
    vm.payment.choose("insurance_card")
    vm.on_card("YB1006")
    assert vm.payment.state == "paid"
    vm.payment.finish()
    assert kiosk.touches_since_mark <= 4
    vm.home.choose("reports")
    vm.on_card("YB1002")  # 82: large text already on, so no offer step
    assert vm.screen == "reports"
    kiosk.mark()
    vm.reports.print_ready()
    vm.reports.finish()
    assert kiosk.reports.jobs and kiosk.touches_since_mark <= 3


# -- help, idle, errors ------------------------------------------------------------------------
def test_call_staff_raises_a_help_request(kiosk, server):
    vm = kiosk.vm
    vm.home.choose("help")
    vm.help.call_staff()
    assert vm.help.called and "reached the staff" in vm.help.prompt  # "on their way" only once someone acknowledges
    assert admin(server).get("/api/v1/help-requests").json()["help_requests"][0]["reason"] == "help"


def test_idle_timeout_counts_down_visibly_then_clears_everything(kiosk):
    vm = kiosk.vm
    vm.home.choose("payment")
    vm.on_card("YB1001")
    assert vm.payment.bills is not None and vm.patient is not None
    vm.tick(44)
    assert vm.idle_remaining == 16 and not vm.idle_warning
    vm.tick(2)
    assert vm.idle_warning  # the countdown turns prominent
    vm.payment.choose("qr")  # a touch restarts the countdown
    assert vm.idle_remaining == 60
    vm.tick(60)
    assert vm.screen == "home" and vm.patient is None
    assert vm.payment.bills is None and vm.payment.qr_payload == "" and vm.identify.phone == ""


def test_server_unreachable_says_where_to_go(server):
    k = Kiosk(f"http://127.0.0.1:{free_port()}", "x")
    k.vm.home.choose("payment")
    k.vm.on_card("YB1001")
    assert "desk" in k.vm.identify.error and "window 1" in k.vm.identify.error
    k.vm.home.choose("help")
    k.vm.help.call_staff()
    assert "window 1" in k.vm.help.error


def test_red_flag_whose_alert_fails_never_promises_a_nurse(kiosk):
    """The alert to staff does not get through: the kiosk says where to go instead of "a nurse is coming"."""
    vm = kiosk.vm
    real = vm.client.call_staff

    def unreachable(*_a, **_k):
        from kiosk.server_client import ServerUnavailableError
        raise ServerUnavailableError("the queue server is not reachable")

    vm.client.call_staff = unreachable
    try:
        _guide(vm, ["chest_pain"])
    finally:
        vm.client.call_staff = real
    assert vm.register.stage == "emergency" and vm.register.nurse_comes
    direction = vm.register.emergency_direction
    assert "could not reach the staff" in direction and "window 1" in direction and "nurse" not in direction


def test_check_in_survives_a_server_outage_and_issues_one_ticket(queue_server):
    k = Kiosk(queue_server.base_url, queue_server.tokens["kiosk"])
    queue_server.kill()
    k.vm.go("checkin")
    k.vm.checkin.type_code("AP1001")
    k.vm.checkin.submit()
    assert k.vm.screen == "checkin" and "not reachable" in k.vm.checkin.error
    assert k.vm.checkin.code == "AP1001" and k.vm.checkin.retrying()
    queue_server.start()
    k.clock.advance(5)
    assert k.vm.screen == "ticket" and not k.vm.ticket.ticket.already_checked_in
    again = queue_server.client("kiosk").post("/api/v1/checkins", json={"appointment_no": "AP1001"}).json()
    assert again["already_checked_in"] and again["number"] == k.vm.ticket.ticket.number


def test_switching_language_translates_the_screen(kiosk):
    vm = kiosk.vm
    vm.set_language("zh")
    assert vm.home.prompt.startswith("欢迎")
    vm.set_language("en")
    assert vm.home.prompt.startswith("Welcome")


def test_patient_api_refuses_without_session_token_or_valid_input(server):
    anonymous = httpx.Client(base_url=server.base_url, timeout=5)
    assert anonymous.get("/api/v1/patient/bills").status_code == 401
    kiosk_http = server.client("kiosk")
    r = kiosk_http.get("/api/v1/patient/bills")
    assert r.status_code == 401 and "identify" in r.json()["detail"]
    r = kiosk_http.post("/api/v1/patient/identify", json={"method": "phone", "phone": "138", "id_last4": "1234"})
    assert r.status_code == 422 and r.json()["detail"].startswith("Invalid request")
    r = kiosk_http.post("/api/v1/patient/identify", json={"method": "card", "card_number": "NOSUCHCARD"})
    assert r.status_code == 404 and "desk" in r.json()["detail"]
    display = server.client("display")
    assert display.post("/api/v1/patient/identify", json={"method": "card", "card_number": "YB1001"}).status_code == 403
    session = kiosk_http.post("/api/v1/patient/identify", json={"method": "card", "card_number": "YB1001"}).json()
    assert session["masked_name"] == "张*" and "name" not in session  # never the full name


def test_ticket_with_its_room_prints_where_the_room_is(kiosk):
    """AP1006 is booked into room 2: the slip names the room and, from the hospital file, the way there."""
    vm = kiosk.vm
    vm.set_language("zh", touched=False)
    vm.checkin.type_code("AP1006")
    vm.go("checkin")
    vm.checkin.submit()
    ticket = vm.ticket.ticket
    assert ticket.room == "r2" and ticket.where["en"] == "Clinic building, floor 2, second door left from the lifts"
    assert "位置：门诊楼 2 楼，出电梯左转第二间" in kiosk.printer.last_text
    assert "出电梯左转第二间" in vm.ticket.room_text  # on the ticket screen and in what voice mode says
    # and the floor map the hospital file gives for room 2, fetched from the server for the ticket screen
    assert ticket.where_map == "/api/v1/maps/demo_floor2.png"
    assert vm.ticket.floor_map == (DEMO_HOSPITAL.parent / "demo_floor2.png").read_bytes()
