"""The clinician and patient web pages in real headless Chromium against a real server process."""
from __future__ import annotations

import re

from playwright.sync_api import expect


def test_clinician_page_calls_next_shows_reasons_and_updates_live(queue_server, browser_page, artifacts_dir):
    page = browser_page
    with queue_server.client("kiosk") as kiosk:
        appt = kiosk.post("/api/v1/checkins", json={"appointment_no": "AP1001"}).json()
        walk = kiosk.post("/api/v1/walkins", json={"department": "internal"}).json()
        page.goto(f"{queue_server.base_url}/console/r1#token={queue_server.tokens['clinician:zhou']}&lang=en")
        rows = page.locator("#queue tr")
        expect(rows).to_have_count(2)
        expect(rows.first).to_contain_text("inside slot")
        expect(page.locator("#live")).to_have_text("live")

        page.get_by_role("button", name="Call next").click()
        expect(page.locator("#current-number")).to_have_text(appt["number"])
        expect(page.locator("#current-reason")).to_contain_text("appointment")
        expect(page.locator("#current-reason")).to_contain_text("inside slot")
        expect(rows).to_have_count(1)
        expect(rows.first).to_contain_text(walk["number"])

        # A patient checks in at a kiosk: the list grows without a reload.
        late = kiosk.post("/api/v1/walkins", json={"department": "internal"}).json()
        expect(rows).to_have_count(2)
        expect(rows.nth(1)).to_contain_text(late["number"])
        expect(rows.nth(1)).to_contain_text(re.compile(r"walk-in, arrived \d\d:\d\d"))

    page.get_by_role("button", name="Pause room").click()
    expect(page.locator("#room-status")).to_have_text("paused")
    expect(page.get_by_role("button", name="Call next")).to_be_disabled()
    page.get_by_role("button", name="Resume room").click()
    expect(page.locator("#room-status")).to_have_text("open")
    page.screenshot(path=str(artifacts_dir / "queue-console-r1.png"))
    assert page.url.endswith("/console/r1")  # the token left the address bar
    assert not page.console_errors


def test_clinician_page_with_a_token_for_another_room_says_so(queue_server, browser_page):
    page = browser_page
    page.goto(f"{queue_server.base_url}/console/r1#token={queue_server.tokens['clinician:sun']}&lang=en")
    expect(page.locator("#message")).to_contain_text("not for room r1")


def test_patient_status_page_follows_the_ticket_and_takes_the_survey(queue_server, browser_page, artifacts_dir):
    page = browser_page
    with queue_server.client("kiosk") as kiosk, queue_server.client("clinician") as clinician:
        first = kiosk.post("/api/v1/walkins", json={"department": "surgery"}).json()
        mine = kiosk.post("/api/v1/walkins", json={"department": "surgery"}).json()
        page.goto(mine["status_url"])
        expect(page.locator("#number")).to_have_text(mine["number"])
        expect(page.locator("#position")).to_have_text("2")
        expect(page.locator("#live")).to_contain_text("live")

        clinician.post("/api/v1/rooms/r3/call-next").raise_for_status()  # calls the first patient
        expect(page.locator("#position")).to_have_text("1")
        clinician.post("/api/v1/rooms/r3/call-next").raise_for_status()  # now me
        expect(page.locator("#headline")).to_contain_text("Please go to the room")
        expect(page.locator("#room")).to_contain_text("3 诊室")
        page.screenshot(path=str(artifacts_dir / "queue-status-called.png"))
        clinician.post("/api/v1/rooms/r3/finish").raise_for_status()

        expect(page.locator("#survey")).to_be_visible()
        page.locator("#stars button").nth(3).click()
        page.locator("#comment").fill("很好 very good")
        page.get_by_role("button", name="提交 Send").click()
        expect(page.locator("#thanks")).to_be_visible()
        with queue_server.client("admin") as admin:
            surgery = admin.get("/api/v1/stats").json()["departments"]["surgery"]
        assert surgery["survey_count"] == 1 and surgery["survey_avg"] == 4.0
        assert first["number"] != mine["number"]
    assert not page.console_errors
