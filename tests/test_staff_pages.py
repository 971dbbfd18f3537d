"""The staff pages (console, desk, fleet) as a nurse holds them: a phone at 390x844, Chinese by default and
English on request (remembered), at a plain-HTTP LAN origin, and a double click that calls one patient."""
from __future__ import annotations

import re
import uuid

import pytest
from playwright.sync_api import expect

from clinicflow.agent import DeviceAgent
from clinicflow.mqtt import PahoMessageBus
from protocol import topics
from queueserver.page_i18n import extract, messages
from tests.fixtures_browser import CHROMIUM, CHROMIUM_ARGS

PHONE = {"width": 390, "height": 844}
LAN_HOST = "clinicflow.test"  # mapped to 127.0.0.1 inside Chromium: an insecure origin, traffic on loopback

# What a page measures about itself: horizontal overflow, text smaller than 14 px, targets under 44 px.
MEASURE = """() => {
  const visible = (el) => { const r = el.getBoundingClientRect(); const s = getComputedStyle(el);
    return r.width > 0 && r.height > 0 && s.visibility !== "hidden" && s.display !== "none"; };
  const small = [], tiny = [];
  for (const el of document.querySelectorAll("body *")) {
    if (!visible(el)) continue;
    const ownText = [...el.childNodes].some((n) => n.nodeType === 3 && n.textContent.trim());
    if (ownText && parseFloat(getComputedStyle(el).fontSize) < 14) small.push(el.tagName + ": " + el.textContent.trim().slice(0, 30));
  }
  for (const el of document.querySelectorAll("button, select, input")) {
    if (!visible(el)) continue;
    const r = el.getBoundingClientRect();
    if (r.height < 44 || r.width < 44) tiny.push(el.tagName + " " + (el.textContent || el.id).trim().slice(0, 20) + " " + Math.round(r.width) + "x" + Math.round(r.height));
  }
  return { scrollWidth: document.documentElement.scrollWidth, small, tiny,
           buttons: [...document.querySelectorAll("button")].filter(visible).map((b) => b.textContent.trim()) };
}"""


@pytest.fixture(scope="module")
def lan_browser(browser):
    """Chromium that resolves clinicflow.test to 127.0.0.1 (so pages run at a non-localhost, insecure origin);
    launched by the session's Playwright (one Playwright per process)."""
    chromium = browser.browser_type.launch(executable_path=CHROMIUM, headless=True,
                                           args=[*CHROMIUM_ARGS, f"--host-resolver-rules=MAP {LAN_HOST} 127.0.0.1"])
    try:
        yield chromium
    finally:
        chromium.close()


def lan_url(server, path: str) -> str:
    return server.base_url.replace("127.0.0.1", LAN_HOST) + path


def new_page(browser, viewport=PHONE):
    context = browser.new_context(viewport=viewport, locale="zh-CN")
    context.set_default_timeout(5000)
    page = context.new_page()
    page.errors = []
    page.on("pageerror", lambda e: page.errors.append(str(e)))
    return page


@pytest.fixture
def busy_site(queue_server, mosquitto):
    """A site with patients waiting, open help requests and one device reporting to the fleet page."""
    with queue_server.client("kiosk") as kiosk:
        kiosk.post("/api/v1/checkins", json={"appointment_no": "AP1001"}).raise_for_status()
        for _ in range(2):
            kiosk.post("/api/v1/walkins", json={"department": "internal"}).raise_for_status()
        kiosk.post("/api/v1/help-requests", json={"device": "kiosk-hall-1", "reason": "payment"}).raise_for_status()
        kiosk.post("/api/v1/help-requests", json={"device": "kiosk-hall-2", "reason": "red_flag",
                                                  "department": "emergency", "symptoms": ["chest_pain"]})
    device_id = f"hall-{uuid.uuid4().hex[:6]}"
    bus = PahoMessageBus(mosquitto.url, availability_topic=topics.device(queue_server.site, device_id, "availability"))
    agent = DeviceAgent(bus, site=queue_server.site, device_id=device_id, role="hall_board", version="2.0.1",
                        status_interval=60, settings={"rooms": ["r1"]}, reboot=lambda: None)
    agent.start()
    bus.start()
    assert bus.wait_connected(5)
    try:
        yield queue_server, device_id
    finally:
        agent.stop()
        bus.stop()


PAGES = {  # page -> (path, token name, a Chinese label that must show in zh, its English text)
    "console": ("/console/r1", "clinician:zhou", "叫下一位", "Call next"),
    "desk": ("/desk", "admin", "我来处理", "I'll take it"),
    "fleet": ("/fleet", "admin", "自检", "Self-test"),
}


@pytest.mark.parametrize("language", ["zh", "en"])
def test_every_staff_page_fits_a_phone_with_readable_text_and_finger_sized_buttons(busy_site, lan_browser, language,
                                                                                  artifacts_dir):
    server, device_id = busy_site
    for name, (path, token, zh_label, en_label) in PAGES.items():
        page = new_page(lan_browser)
        suffix = "&lang=en" if language == "en" else ""
        page.goto(lan_url(server, f"{path}#token={server.tokens[token]}{suffix}"))
        label = zh_label if language == "zh" else en_label
        expect(page.get_by_role("button", name=label).first).to_be_visible()
        if name == "fleet":
            expect(page.locator(f"tr[data-device='{device_id}']")).to_be_visible()
        page.wait_for_timeout(300)  # fonts and the live stream's first render settle
        found = page.evaluate(MEASURE)
        page.screenshot(path=str(artifacts_dir / f"staff-{name}-390-{language}.png"), full_page=True)
        assert found["scrollWidth"] <= 390, f"{name} ({language}) scrolls sideways: {found['scrollWidth']} px"
        assert found["small"] == [], f"{name} ({language}) has text under 14 px: {found['small']}"
        assert found["tiny"] == [], f"{name} ({language}) has targets under 44 px: {found['tiny']}"
        chinese = [b for b in found["buttons"] if re.search(r"[\u4e00-\u9fff]", b)]
        if language == "zh":
            assert zh_label in found["buttons"] and len(chinese) >= len(found["buttons"]) - 1, found["buttons"]
        else:
            assert chinese == [] or chinese == ["中文"], found["buttons"]  # only the switch back says 中文
        assert page.evaluate("isSecureContext") is False
        assert page.errors == [], page.errors
        page.context.close()


def test_the_language_choice_is_remembered_across_pages(queue_server, lan_browser):
    page = new_page(lan_browser, viewport={"width": 1280, "height": 800})
    page.goto(lan_url(queue_server, f"/console/r1#token={queue_server.tokens['clinician:zhou']}"))
    expect(page.get_by_role("button", name="叫下一位")).to_be_visible()
    page.get_by_role("button", name="English").click()
    expect(page.get_by_role("button", name="Call next")).to_be_visible()
    page.goto(lan_url(queue_server, f"/desk#token={queue_server.tokens['admin']}"))
    expect(page.get_by_role("heading", name="Nurse station")).to_be_visible()
    page.reload()
    expect(page.get_by_role("heading", name="Nurse station")).to_be_visible()
    page.context.close()


def test_a_double_click_on_call_next_at_a_lan_origin_calls_one_patient(queue_server, lan_browser):
    with queue_server.client("kiosk") as kiosk:
        first = kiosk.post("/api/v1/walkins", json={"department": "internal"}).json()
        second = kiosk.post("/api/v1/walkins", json={"department": "internal"}).json()
    page = new_page(lan_browser, viewport={"width": 1280, "height": 800})
    calls = []
    page.on("request", lambda r: r.url.endswith("/call-next") and calls.append(r.headers.get("idempotency-key")))
    page.goto(lan_url(queue_server, f"/console/r1#token={queue_server.tokens['clinician:zhou']}&lang=en"))
    assert page.evaluate("isSecureContext") is False  # crypto.randomUUID would not exist here
    expect(page.locator("#queue tr")).to_have_count(2)
    page.get_by_role("button", name="Call next").dblclick()
    expect(page.locator("#current-number")).to_have_text(first["number"])
    page.wait_for_timeout(500)  # a second request, had there been one, would have landed by now
    with queue_server.client("clinician") as clinician:
        view = clinician.get("/api/v1/rooms/r1/console").json()
    assert view["current"]["number"] == first["number"]
    assert [e["number"] for e in view["queue"]] == [second["number"]]
    assert len(calls) == 1 and calls[0] and len(calls[0]) == 32
    assert page.errors == []
    page.context.close()


def test_every_label_the_staff_pages_use_has_a_chinese_translation():
    ids = extract()
    assert len(ids) > 60
    zh = messages("zh")
    assert sorted(i for i in ids if not zh.get(i)) == []
    assert all(re.search(r"[\u4e00-\u9fff]", zh[i]) or not re.search(r"[A-Za-z]{3}", i) for i in ids)
