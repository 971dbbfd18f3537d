"""Results on the phone: the status page says when reports are ready and, after phone + last 4, opens the PDF.

Real queue server (subprocess) and real Chromium; screenshots go to the artifacts directory.
"""
from __future__ import annotations

import pytest
from playwright.sync_api import expect

from tests.fixtures_server import QueueServerProcess


@pytest.fixture(scope="module")
def server(tmp_path_factory, mosquitto):
    proc = QueueServerProcess(tmp_path_factory.mktemp("results-phone"), mosquitto.url).start()
    yield proc
    proc.stop()


def ticket_of(server: QueueServerProcess, appointment_no: str) -> dict:
    r = server.client("kiosk").post("/api/v1/checkins", json={"appointment_no": appointment_no})
    assert r.status_code in (200, 201), r.text
    return r.json()


def test_before_identification_only_the_count_and_ready_times_are_shown(server):
    ticket = ticket_of(server, "AP1001")  # 张伟: R1001 ready, R1002 expected in 2 h
    anonymous = server.client(None)
    summary = anonymous.get(f"/api/v1/phone/tickets/{ticket['ticket_id']}/reports")
    assert summary.status_code == 200
    body = summary.json()
    assert (body["count"], body["ready"], len(body["ready_times"])) == (2, 1, 1)
    assert "title" not in summary.text and "R100" not in summary.text  # nothing says what the reports are
    assert anonymous.get("/api/v1/phone/reports").status_code == 401
    assert anonymous.get("/api/v1/phone/reports/R1001/pdf").status_code == 401
    assert anonymous.get("/api/v1/phone/tickets/nosuchticket/reports").status_code == 404


def test_someone_else_cannot_open_a_report_that_is_not_theirs(server):
    c = server.client(None)
    session = c.post("/api/v1/phone/identify", json={"phone": "13800000003", "id_last4": "2468"}).json()["session"]
    r = c.get("/api/v1/phone/reports/R1001/pdf", headers={"X-Patient-Session": session})
    assert r.status_code == 404


def test_status_page_lists_reports_with_times_and_opens_the_pdf_after_identifying(server, browser_page,
                                                                                   artifacts_dir):
    ticket = ticket_of(server, "AP1001")
    page = browser_page
    page.set_viewport_size({"width": 390, "height": 1400})  # a phone
    page.goto(ticket["status_url"])
    summary = page.locator("#results-summary")
    expect(summary).to_contain_text("2 report(s), 1 ready")
    expect(summary).to_contain_text("others expected at")
    expect(page.locator("#results-list li")).to_have_count(0)  # no titles yet
    page.screenshot(path=str(artifacts_dir / "phone-results-before-id.png"), full_page=True)

    page.fill("#results-phone", "13800000001")
    page.fill("#results-last4", "0000")
    page.get_by_role("button", name="查看报告 See my reports").click()
    expect(page.locator("#results-error")).to_contain_text("No patient matches")
    assert len(page.console_errors) == 1  # type: ignore[attr-defined]  # Chromium logs that 404; nothing else
    page.fill("#results-last4", "1234")
    page.get_by_role("button", name="查看报告 See my reports").click()
    rows = page.locator("#results-list li")
    expect(rows).to_have_count(2)
    expect(page.locator("#results-id")).to_be_hidden()  # identified: the form goes away
    expect(rows.nth(1)).to_contain_text("ready at")  # R1002, not ready: when
    with page.expect_download() as download:
        rows.nth(0).get_by_role("button", name="查看 View").click()
    assert download.value.suggested_filename == "R1001.pdf"
    assert open(download.value.path(), "rb").read(5) == b"%PDF-"  # the report itself, on the phone
    expect(page.locator("a.pdf")).to_have_text("打开 PDF Open")
    page.screenshot(path=str(artifacts_dir / "phone-results-identified.png"), full_page=True)
    assert len(page.console_errors) == 1  # type: ignore[attr-defined]
