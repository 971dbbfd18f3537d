"""Booking at the kiosk through its view-models against a real queue server: 4 touches after identification,
change and cancel, a taken time said plainly, voice mode saying what to do, and the report screen's not-ready list."""
from __future__ import annotations

import re

import pytest

from tests.fixtures_server import QueueServerProcess
from tests.test_kiosk_flows import Kiosk


@pytest.fixture(scope="module")
def server(tmp_path_factory, mosquitto):
    proc = QueueServerProcess(tmp_path_factory.mktemp("booking-kiosk"), mosquitto.url).start()
    yield proc
    proc.stop()


@pytest.fixture
def kiosk(server):
    return Kiosk(server.base_url, server.tokens["kiosk"])


def test_book_in_four_touches_after_identifying_by_card(kiosk):
    vm = kiosk.vm
    vm.home.choose("booking")
    vm.on_card("YB1004")  # 刘洋, 56: no accessibility offer step
    assert vm.screen == "booking" and vm.booking.step == "department"
    kiosk.mark()
    vm.booking.choose_department("surgery")
    vm.booking.choose_day(vm.booking.days[2])
    assert vm.booking.step == "slot" and vm.booking.slots
    first = vm.booking.slots[0]
    vm.booking.choose_slot(first["slot_id"])
    assert "Confirm" in vm.booking.prompt and vm.booking.slot_label(first) in vm.booking.prompt
    vm.booking.confirm()
    assert kiosk.touches_since_mark == 4
    assert vm.booking.step == "done", vm.booking.error
    assert re.match(r"Booked: BK\d+, Surgery, ", vm.booking.status_text)
    assert "floor 3" in vm.booking.status_text  # where to come, from the kiosk's waiting areas
    vm.booking.confirm()  # a second touch on the same Confirm (or a retried request) books nothing more
    vm.end_session()
    vm.home.choose("booking")
    vm.on_card("YB1004")
    assert [b["appointment_no"] for b in vm.booking.bookings if b["appointment_no"].startswith("BK")] == \
        [vm.booking.bookings[-1]["appointment_no"]]
    assert "You have" in vm.booking.prompt


def test_change_then_cancel_a_booking_and_a_taken_time_is_said(kiosk, server):
    vm = kiosk.vm
    vm.home.choose("booking")
    vm.on_card("YB1005")  # 陈小明's parent at the kiosk with his card
    vm.booking.choose_department("pediatrics")
    vm.booking.choose_day(vm.booking.days[3])
    slot, later = vm.booking.slots[0], vm.booking.slots[2]
    vm.booking.choose_slot(slot["slot_id"])
    vm.booking.confirm()
    no = vm.booking.result["appointment_no"]
    vm.end_session()

    vm.home.choose("booking")
    vm.on_card("YB1005")
    vm.booking.change(no)
    vm.booking.choose_day(vm.booking.days[3])
    assert later["slot_id"] in [s["slot_id"] for s in vm.booking.slots]
    vm.booking.choose_slot(later["slot_id"])
    vm.booking.confirm()
    assert vm.booking.status_text.startswith(f"Changed: {no}, Paediatrics") or \
        vm.booking.status_text.startswith(f"Changed: {no}, Pediatrics"), vm.booking.status_text
    vm.end_session()

    other = Kiosk(server.base_url, server.tokens["kiosk"])  # someone else wants the same time
    other.vm.home.choose("booking")
    other.vm.on_card("YB1003")
    other.vm.booking.choose_department("pediatrics")
    other.vm.booking.choose_day(other.vm.booking.days[3])
    assert later["slot_id"] not in [s["slot_id"] for s in other.vm.booking.slots]  # taken: not offered

    vm.home.choose("booking")
    vm.on_card("YB1005")
    vm.booking.cancel(no)
    assert vm.booking.status_text.startswith(f"Cancelled: {no}")
    assert no not in [b["appointment_no"] for b in vm.booking.bookings]


def test_voice_mode_says_each_step(kiosk):
    vm = kiosk.vm
    vm.set_language("zh", touched=False)
    vm.home.choose("booking")
    vm.on_card("YB1001")
    vm.set_voice(True)
    vm.speak_screen(again=True)
    assert "预约" in kiosk.speaker.spoken[-1].text  # which department to book
    labels = [label for label, _ in vm.booking.voice_options()]
    assert "内科" in labels
    vm.booking.voice_options()[labels.index("内科")][1]()
    vm.speak_screen(again=True)
    assert "哪一天" in kiosk.speaker.spoken[-1].text


def test_report_screen_lists_reports_not_ready_yet_with_when(kiosk):
    vm = kiosk.vm
    vm.home.choose("reports")
    vm.on_card("YB1001")  # R1001 ready, R1002 expected in 2 h
    pending = next(r for r in vm.reports.reports if not r.ready)
    assert vm.reports.not_ready == [pending]
    note = vm.reports.not_ready_text()
    assert "Chest CT" in note and vm.format_time(pending.ready_at) in note
    assert note in vm.reports.prompt  # said in voice mode too
