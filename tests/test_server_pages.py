"""The clinician and patient web pages in real headless Chromium against a real server process."""
from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from queueserver.page_i18n import messages

LIVE_ZH = messages("zh")["live"]  # what the console shows by default once its stream is open


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
        clinician.post("/api/v1/rooms/r3/call-next", params={"confirm": "true"}).raise_for_status()  # now me
        expect(page.locator("#headline")).to_contain_text("Please go to the room")
        expect(page.locator("#room")).to_contain_text("3 诊室")
        # and where room 3 is, from the hospital file: the patient finds it from the phone
        expect(page.locator("#where")).to_have_text("门诊楼 3 楼，出电梯右转 · Clinic building, floor 3, right from the lifts")
        # with the floor map the hospital file gives for it, loaded and within the phone's width
        floor_map = page.locator("#where_map")
        expect(floor_map).to_be_visible()
        page.wait_for_function("document.getElementById('where_map').naturalWidth > 0")
        box = floor_map.bounding_box()
        assert box is not None and 0 < box["x"] and box["x"] + box["width"] <= page.viewport_size["width"]
        page.screenshot(path=str(artifacts_dir / "queue-status-called.png"), full_page=True)
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


# -- the pages' defences: escaped values, a Content-Security-Policy, HTTPS -------------------------------

XSS = "<img src=x onerror=window.__xss=1><svg onload=window.__xss=2>"  # a path segment: no "/"


def test_an_unknown_room_in_the_console_address_comes_back_escaped_under_a_csp(queue_server, browser_page):
    from urllib.parse import quote

    page = browser_page
    response = page.goto(f"{queue_server.base_url}/console/{quote(XSS, safe='')}")
    assert response is not None and response.status == 404
    csp = response.headers["content-security-policy"]
    assert "default-src 'none'" in csp and "'unsafe-inline'" not in csp
    assert response.headers["x-content-type-options"] == "nosniff"
    expect(page.locator("h1")).to_contain_text("<img src=x onerror=")  # shown as text, not parsed as markup
    assert page.locator("img").count() == 0
    assert page.evaluate("window.__xss") is None



def expect_live(page) -> None:
    """The console's live stream is open: its state, and the word for it in the page's language
    (staff pages are Chinese unless asked for English)."""
    expect(page.locator("#live")).to_have_attribute("data-state", "live")
    expect(page.locator("#live")).to_have_text(LIVE_ZH)

def test_the_csp_stops_a_script_that_got_into_a_page_while_the_page_itself_works(queue_server, browser_page):
    page = browser_page

    def inject(route):  # as if some value had reached the page unescaped
        original = route.fetch()
        body = original.text().replace("</body>", "<script>window.__xss = 1</script></body>")
        route.fulfill(response=original, body=body)

    page.route("**/console/r1", inject)
    page.goto(f"{queue_server.base_url}/console/r1#token={queue_server.tokens['clinician:zhou']}")
    expect_live(page)  # the page's own script runs (its hash is allowed)
    assert page.evaluate("window.__xss") is None
    assert any("Content Security Policy" in e for e in page.console_errors)


def test_the_console_stream_needs_no_token_in_any_url(queue_server, browser_page):
    page = browser_page
    urls: list[str] = []
    page.on("request", lambda r: urls.append(r.url))
    token = queue_server.tokens["clinician:zhou"]
    page.goto(f"{queue_server.base_url}/console/r1#token={token}")
    expect_live(page)
    assert any("/events?ticket=" in u for u in urls)
    assert not any(token in u for u in urls if "#token=" not in u)
    with queue_server.client("clinician:zhou") as http:  # and the token itself is refused in a URL
        r = http.get(f"/api/v1/rooms/r1/events?access_token={token}", headers={"Authorization": ""})
    assert r.status_code == 401 and "address" in r.json()["detail"]


def test_the_server_serves_https_with_a_certificate_from_the_site_ca(tmp_path, mosquitto, browser, monkeypatch):
    """``--https`` with the CA that ``clinicflow broker-config`` made; the console is a secure context there."""
    import httpx

    from config.tls import ensure_ca
    from queueserver.process import QueueServerProcess

    ca, _ = ensure_ca(tmp_path / "broker")  # what broker-config leaves in DATA_DIR/broker
    server = QueueServerProcess(tmp_path, mosquitto.url,
                                extra_args=["--https", "--https-name", "clinicflow.test", "--https-name", "127.0.0.1"])
    server.base_url = f"https://127.0.0.1:{server.port}"
    monkeypatch.setenv("SSL_CERT_FILE", str(ca.cert))  # the readiness check trusts the site CA, as staff machines do
    server.start()
    try:
        with httpx.Client(verify=str(ca.cert)) as http:  # verified against the site CA, by name
            assert http.get(f"{server.base_url}/api/v1/health").json()["status"] == "ok"
        with pytest.raises(httpx.ConnectError):  # and it is not just any certificate
            httpx.get(f"{server.base_url}/api/v1/health", verify=True, trust_env=False)
        context = browser.new_context(ignore_https_errors=True)  # Chromium here has no way to add a root CA
        try:
            page = context.new_page()
            page.goto(f"https://127.0.0.1:{server.port}/console/r1#token={server.tokens['clinician:zhou']}")
            expect_live(page)
            assert page.evaluate("window.isSecureContext")
        finally:
            context.close()
    finally:
        server.stop()
