"""Booking future appointments (kiosk and phone page), relative booking, SMS reminders: a real queue server.

The server is shared by the module; each test books for its own demo patients and days.
"""
from __future__ import annotations

import sqlite3
import uuid
from datetime import date, datetime, timedelta

import httpx
import pytest

from tests.fixtures_server import DEMO_HOSPITAL, QueueServerProcess, daytime_hospital, daytime_zone
from tests.phone_page import identify_on_phone_page, open_phone_page

TZ = daytime_zone()  # the module's hospital: mid-morning now, so "a slot within the hour, today" exists


@pytest.fixture(scope="module")
def server(tmp_path_factory, mosquitto):
    """The demo hospital with bookings open round the clock and its wall clock at mid-morning, so that a
    slot near "now" exists whenever the suite runs (the relative's booking is checked in at once); clinic
    hours are checked on their own below."""
    data_dir = tmp_path_factory.mktemp("booking")
    text = (DEMO_HOSPITAL.read_text(encoding="utf-8").replace("booking_opens = 08:00:00", "booking_opens = 00:00:00")
            .replace("booking_closes = 17:00:00", ""))
    all_day = daytime_hospital(data_dir / "hospital.toml", TZ, text)
    proc = QueueServerProcess(data_dir, mosquitto.url, hospital=all_day).start()
    yield proc
    proc.stop()


def phone_session(server: QueueServerProcess, phone: str, last4: str) -> httpx.Client:
    """An anonymous client (the phone page) that identified with phone + last 4."""
    c = server.client(None)
    r = c.post("/api/v1/phone/identify", json={"phone": phone, "id_last4": last4})
    assert r.status_code == 200, r.text
    c.headers["X-Patient-Session"] = r.json()["session"]
    return c


def free(c: httpx.Client, department: str, day: date) -> list[dict]:
    r = c.get("/api/v1/booking/slots", params={"department": department, "day": day.isoformat()})
    assert r.status_code == 200, r.text
    return r.json()


def numbers(c: httpx.Client) -> list[str]:
    """The appointment numbers the identified patient sees as coming up (today's included)."""
    return [b["appointment_no"] for b in c.get("/api/v1/booking/appointments").json()]


def book(c: httpx.Client, slot_id: str, request_id: str | None = None, **extra) -> httpx.Response:
    return c.post("/api/v1/booking/appointments",
                  json={"slot_id": slot_id, "request_id": request_id or uuid.uuid4().hex, **extra})


def test_book_change_cancel_from_the_phone(server):
    c = phone_session(server, "13800000003", "2468")  # 李娜
    day = datetime.now(TZ).date() + timedelta(days=2)
    slots = free(c, "surgery", day)
    assert len(slots) == 48  # bookable all day in this module's hospital file, 30-minute slots
    first, other = slots[18], slots[20]  # 09:00 and 10:00
    assert datetime.fromisoformat(first["end"]) - datetime.fromisoformat(first["start"]) == timedelta(minutes=30)
    r = book(c, first["slot_id"])
    assert r.status_code == 201, r.text
    no = r.json()["appointment_no"]
    assert no in numbers(c)
    assert first["slot_id"] not in [s["slot_id"] for s in free(c, "surgery", day)]

    moved = c.put(f"/api/v1/booking/appointments/{no}", json={"slot_id": other["slot_id"]})
    assert moved.status_code == 200, moved.text
    assert datetime.fromisoformat(moved.json()["start"]) == datetime.fromisoformat(other["start"])
    assert first["slot_id"] in [s["slot_id"] for s in free(c, "surgery", day)]  # the old time is free again

    gone = c.delete(f"/api/v1/booking/appointments/{no}")
    assert gone.status_code == 200 and gone.json()["status"] == "cancelled"
    assert no not in numbers(c)
    assert other["slot_id"] in [s["slot_id"] for s in free(c, "surgery", day)]


def test_a_retried_booking_books_once_and_a_taken_or_past_slot_is_refused(server):
    c = phone_session(server, "13800000004", "1357")  # 刘洋
    day = datetime.now(TZ).date() + timedelta(days=3)
    slot = free(c, "surgery", day)[10]["slot_id"]
    key = uuid.uuid4().hex
    a, b = book(c, slot, key), book(c, slot, key)  # the phone lost the first answer and sent it again
    assert a.status_code == b.status_code == 201
    assert a.json()["appointment_no"] == b.json()["appointment_no"]
    assert [n for n in numbers(c) if n.startswith("BK")] == [a.json()["appointment_no"]]

    someone_else = phone_session(server, "13800000005", "9753")
    taken = book(someone_else, slot)
    assert taken.status_code == 409 and "someone else" in taken.json()["detail"].lower()
    yesterday = (datetime.now(TZ) - timedelta(days=1)).replace(hour=9, minute=0, second=0, microsecond=0)
    past = book(c, f"surgery@{yesterday.isoformat(timespec='minutes')}")
    assert past.status_code == 409 and "passed" in past.json()["detail"]
    assert c.post("/api/v1/booking/appointments", json={"slot_id": "surgery@tomorrow", "request_id": "x" * 10}
                  ).status_code == 422
    assert server.client(None).get("/api/v1/booking/appointments").status_code == 401  # no session: no list


def test_booking_queues_an_sms_reminder_with_time_and_place(server):
    c = phone_session(server, "13800000006", "8642")  # 赵军
    day = datetime.now(TZ).date() + timedelta(days=4)
    slot = free(c, "internal", day)[19]  # 09:30
    no = book(c, slot["slot_id"]).json()["appointment_no"]
    with sqlite3.connect(server.data_dir / "hospital.sqlite3") as db:
        rows = db.execute("SELECT phone, text FROM his_sms_outbox WHERE appointment_no = ?", (no,)).fetchall()
    assert len(rows) == 1
    phone, text = rows[0]
    assert phone == "13800000006"
    assert f"{day.isoformat()} 09:30" in text and "内科" in text and no in text


def test_relative_books_for_elderly_parent_who_then_gets_priority_on_site(server):
    son = phone_session(server, "13800000001", "1234")  # 张伟 books for his mother 王秀英 (82)
    now = datetime.now(TZ)
    slot = next(s for s in free(son, "internal", now.date())
                if datetime.fromisoformat(s["start"]) - now < timedelta(minutes=55))  # check-in is open
    r = book(son, slot["slot_id"], for_patient={"card_number": "11010119440315567X"}, relation="parent")
    assert r.status_code == 201, r.text
    booked = r.json()
    assert booked["booked_by_relative"] and booked["patient_masked_name"] != "王秀英"
    assert booked["appointment_no"] in numbers(son)
    mother = phone_session(server, "13800000002", "5678")
    assert booked["appointment_no"] in numbers(mother)
    wrong = book(son, slot["slot_id"], for_patient={"card_number": "110101000000000000"})
    assert wrong.status_code == 404

    kiosk = server.client("kiosk")
    checkin = kiosk.post("/api/v1/checkins", json={"appointment_no": booked["appointment_no"]})
    assert checkin.status_code in (200, 201), checkin.text
    ticket_id = checkin.json()["ticket_id"]
    console = server.client("admin").get("/api/v1/rooms/r1/console").json()
    mine = next(t for t in console["queue"] if t["ticket_id"] == ticket_id)
    assert mine["priority"] == "age 82", mine  # the queue rules' elderly group: the clinician sees why


def test_phone_identification_is_throttled(server):
    c = server.client(None)
    for _ in range(5):
        assert c.post("/api/v1/phone/identify", json={"phone": "13800000009", "id_last4": "0000"}).status_code == 404
    r = c.post("/api/v1/phone/identify", json={"phone": "13800000009", "id_last4": "0000"})
    assert r.status_code == 429 and "Retry-After" in r.headers


def test_phone_page_books_changes_and_cancels(server, browser_page, artifacts_dir):
    from playwright.sync_api import expect

    ticket = server.client("kiosk").post("/api/v1/checkins", json={"appointment_no": "AP1005"}).json()
    page = browser_page
    open_phone_page(page, ticket["status_url"], height=1600)
    expect(page.locator("#booking-need-id")).to_be_visible()
    identify_on_phone_page(page, "13800000005", "9753")
    expect(page.locator("#booking-main")).to_be_visible()
    page.select_option("#booking-dept", "pediatrics")
    days = page.locator("#booking-day option").all_inner_texts()
    page.select_option("#booking-day", days[5])
    page.locator("#booking-slots button", has_text="10:00").click()
    page.get_by_role("button", name="确认预约 Confirm booking").click()
    expect(page.locator("#booking-done")).to_contain_text("预约成功 Booked: BK")
    booked = page.locator("#booking-mine li", has_text="BK")
    expect(booked).to_have_count(1)
    page.screenshot(path=str(artifacts_dir / "phone-booking-booked.png"), full_page=True)
    stored = next(b for b in phone_session(server, "13800000005", "9753").get("/api/v1/booking/appointments").json()
                  if b["appointment_no"].startswith("BK"))
    assert datetime.fromisoformat(stored["start"]).astimezone(TZ).strftime("%H:%M") == "10:00"  # the hospital's clock

    booked.get_by_role("button", name="改期 Change").click()
    page.locator("#booking-slots button", has_text="11:30").click()
    page.get_by_role("button", name="改到此时间 Move here").click()
    expect(page.locator("#booking-done")).to_contain_text("已改期 Changed")
    expect(booked).to_contain_text("11:30")
    booked.get_by_role("button", name="取消 Cancel").click()
    expect(page.locator("#booking-done")).to_contain_text("已取消 Cancelled")
    expect(page.locator("#booking-mine li", has_text="BK")).to_have_count(0)
    assert page.console_errors == []  # type: ignore[attr-defined]


def test_the_demo_hospital_offers_bookings_in_clinic_hours_only():
    """Walk-ins are taken round the clock in the demo, but nobody is offered a 00:00 appointment."""
    from queueserver.booking_api import department_hours
    from queueserver.hospital.booking import day_slots
    from queueserver.hospital_file import load_hospital

    hours = {h.department: h for h in department_hours(load_hospital())}
    assert "emergency" not in hours
    slots = day_slots(hours["internal"], date(2026, 12, 7), TZ)
    assert [s.start.strftime("%H:%M") for s in slots[:2]] == ["08:00", "08:30"] and len(slots) == 18
    assert slots[-1].end.strftime("%H:%M") == "17:00"
