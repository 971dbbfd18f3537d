"""The help loop end to end: a kiosk view-model, a real server process, the desk page and the console in
headless Chromium, the hall board's notice on real Mosquitto, and restarts that lose nothing."""
from __future__ import annotations

import queue
import time

import pytest
from playwright.sync_api import expect

from clinicflow.mqtt import PahoMessageBus
from hardware.speech import FakeSpeaker
from hardware.speech.numbers import speakable
from kiosk.clock import ManualClock
from kiosk.server_client import KioskServerClient
from kiosk.viewmodels import KioskSettings, KioskViewModel
from protocol import topics
from protocol.payloads import Notice


def kiosk_vm(server, language: str = "zh") -> KioskViewModel:
    return KioskViewModel(client=KioskServerClient(server.base_url, token=server.tokens["kiosk"], timeout=3),
                          clock=ManualClock(), language=language, speaker=FakeSpeaker(),
                          settings=KioskSettings(device_id="kiosk-hall-2", idle_timeout=600))


def hear_back(vm: KioskViewModel, until: str, timeout: float = 5.0) -> None:
    """Let the kiosk's clock run its polls (real seconds pass on the server) until the status is reached."""
    deadline = time.monotonic() + timeout
    while vm.help.status != until:
        assert time.monotonic() < deadline, f"the kiosk still says {vm.help.status!r}"
        time.sleep(0.2)
        vm.clock.advance(3.0)


@pytest.fixture
def help_server(queue_server_factory, monkeypatch):
    monkeypatch.setenv("CLINICFLOW_HELP_ESCALATE_AFTER", "3")  # escalate fast in these tests
    return queue_server_factory()


def test_call_staff_appears_on_desk_and_console_and_acknowledging_reaches_the_kiosk(help_server, browser, artifacts_dir):
    desk = browser.new_context(viewport={"width": 1280, "height": 800}, locale="zh-CN").new_page()
    console = browser.new_context(viewport={"width": 1280, "height": 800}, locale="zh-CN").new_page()
    desk.goto(f"{help_server.base_url}/desk#token={help_server.tokens['admin']}")
    console.goto(f"{help_server.base_url}/console/r1#token={help_server.tokens['clinician:zhou']}")
    expect(desk.locator("#live")).to_have_text("实时")
    expect(console.locator("#live")).to_have_text("实时")
    desk.fill("#staff-name", "王护士")
    desk.locator("#staff-name").dispatch_event("change")

    vm = kiosk_vm(help_server)
    vm.home.choose("help")
    vm.help.call_staff()
    assert vm.help.called and "已通知工作人员" in vm.help.prompt
    item = desk.locator(f"li[data-help='{vm.help.help_id}']")
    expect(item).to_contain_text("自助机 kiosk-hall-2", timeout=1000)
    expect(console.locator(f"li[data-help='{vm.help.help_id}']")).to_contain_text("呼叫求助", timeout=1000)
    desk.screenshot(path=str(artifacts_dir / "desk-help-open-zh.png"))

    item.get_by_role("button", name="我来处理").click()
    expect(item).to_contain_text("王护士 正在赶来")
    expect(console.locator(f"li[data-help='{vm.help.help_id}']")).to_contain_text("王护士 正在赶来", timeout=1000)
    hear_back(vm, "acknowledged")
    assert "工作人员正在赶来（王护士）" in vm.help.prompt
    # Said aloud, not only shown: the kiosk's voice sends figures to the engine as words (kiosk/voice.py).
    assert vm.spoken_log[-1] == speakable(vm.help.notice, "zh")
    console.screenshot(path=str(artifacts_dir / "console-help-acknowledged-zh.png"))

    item.get_by_role("button", name="已解决").click()
    expect(item).to_have_count(0)
    with help_server.client("admin") as admin:
        done = admin.get("/api/v1/help-requests").json()["help_requests"][0]
        assert done["acknowledged_by"] == "王护士" and done["resolved_by"] == "王护士" and done["status"] == "resolved"
        stats = admin.get("/api/v1/stats").json()["help"]
        csv_text = admin.get("/api/v1/stats.csv").text
    assert stats["acknowledge"]["help"]["answered"] == 1 and stats["acknowledge"]["help"]["avg_s"] is not None
    assert list(stats["per_kiosk_hour"]) == ["kiosk-hall-2"]
    assert "acknowledge_answered,help,1" in csv_text


def test_an_unanswered_red_flag_escalates_on_the_page_the_hall_board_and_the_kiosk(help_server, browser, mosquitto,
                                                                                   artifacts_dir):
    notices: queue.Queue[Notice] = queue.Queue()
    bus = PahoMessageBus(mosquitto.url)
    bus.subscribe_model(topics.notice(help_server.site), Notice, lambda _t, n, _r: notices.put(n))
    bus.start()
    assert bus.wait_connected(5)
    page = browser.new_context(viewport={"width": 1280, "height": 800}, locale="zh-CN").new_page()
    try:
        page.goto(f"{help_server.base_url}/desk#token={help_server.tokens['admin']}")
        expect(page.locator("#live")).to_have_text("实时")
        vm = kiosk_vm(help_server)
        vm.home.choose("register")
        vm.on_card("YB1004")
        vm.register.start_guide()
        vm.register.pick_area("chest")
        vm.register.toggle_symptom("chest_pain")
        vm.register.toggle_symptom("breathless")
        vm.register.finish_guide()
        assert vm.register.stage == "emergency"
        item = page.locator(f"li[data-help='{vm.help.help_id}']")
        expect(item).to_contain_text("危急症状")
        expect(item).to_contain_text("呼吸困难、胸痛")  # the guide's names, not its ids
        expect(page.locator("#alarm")).to_be_hidden()

        # Nobody answers within the escalation time (3 s here).
        expect(page.locator("body")).to_have_attribute("data-alarm", "on", timeout=6000)
        expect(page.locator("#alarm")).to_be_visible()
        assert page.evaluate("window.cfBeeps || 0") >= 1  # the tone was played (Web Audio), not only shown
        expect(item).to_contain_text("尚无人接手")
        page.screenshot(path=str(artifacts_dir / "desk-red-flag-escalated-zh.png"))
        notice = notices.get(timeout=5)
        while not notice.text:  # a retained empty notice from an earlier test may come first
            notice = notices.get(timeout=5)
        assert "kiosk-hall-2" in notice.text["zh"] and "紧急" in notice.text["zh"]
        hear_back(vm, "escalated")
        assert "人工服务窗口" in vm.help.notice and vm.spoken_log[-1] == speakable(vm.help.notice, "zh")

        item.get_by_role("button", name="我来处理").click()
        expect(page.locator("body")).to_have_attribute("data-alarm", "off")
        cleared = notices.get(timeout=5)
        assert cleared.text == {}  # the hall board's line goes once someone is on the way
        hear_back(vm, "acknowledged")
        assert "工作人员正在赶来" in vm.help.notice
    finally:
        page.context.close()
        bus.stop()


def test_a_restart_between_identify_and_payment_and_between_help_and_acknowledgement_loses_nothing(queue_server):
    with queue_server.client("kiosk") as kiosk:
        patient = kiosk.post("/api/v1/patient/identify", json={"method": "phone", "phone": "13800000001", "id_last4": "1234"}).json()
        session = {"X-Patient-Session": patient["session"]}
        bills = kiosk.get("/api/v1/patient/bills", headers=session).json()
        assert bills["bills"], "the demo patient has bills to pay"
        ticket = kiosk.post("/api/v1/checkins", json={"appointment_no": "AP1001"}).json()  # this patient's
        asked = kiosk.post("/api/v1/help-requests", json={"device": "kiosk-1", "reason": "payment"},
                           headers={"Idempotency-Key": "help-1", **session}).json()

    queue_server.kill()  # SIGKILL: nothing gets to save anything on the way out
    queue_server.start()

    with queue_server.client("kiosk") as kiosk, queue_server.client("clinician") as nurse:
        again = kiosk.post("/api/v1/help-requests", json={"device": "kiosk-1", "reason": "payment"},
                           headers={"Idempotency-Key": "help-1"}).json()
        assert again["help_id"] == asked["help_id"]  # the retry found the request from before the restart
        [item] = nurse.get("/api/v1/help-requests?open=true").json()["help_requests"]
        assert item["ticket"] == ticket["number"]  # the desk sees whose call it is
        nurse.post(f"/api/v1/help-requests/{asked['help_id']}/acknowledge", json={"by": "收费处 李"}).raise_for_status()
        heard = kiosk.get(f"/api/v1/help-requests/{asked['help_id']}").json()
        assert heard["status"] == "acknowledged" and heard["acknowledged_by"] == "收费处 李"

        assert kiosk.get("/api/v1/patient/bills", headers=session).json() == bills  # the session is still there
        due = [b["bill_id"] for b in bills["bills"]]
        paid = kiosk.post("/api/v1/patient/payments", headers=session, json={
            "payment_id": "pay-restart-1", "bill_ids": due, "method": "bank_card", "amount": str(bills["self_pay"]),
            "terminal_ref": "T-REF-1"})
        assert paid.status_code == 200, paid.text
        assert paid.json()["status"] == "paid"


def test_the_rooms_button_box_buzzes_for_an_escalated_red_flag(help_server):
    from gpiozero.pins.mock import MockFactory

    from hardware.buttonbox import ButtonBoxPins, CallButtonBox, RoomApiClient

    pins = MockFactory()
    client = RoomApiClient(help_server.base_url, room="r1", token=help_server.tokens["clinician:zhou"])
    box = CallButtonBox(client=client, pins=ButtonBoxPins(), pin_factory=pins)
    try:
        with help_server.client("kiosk") as kiosk:
            kiosk.post("/api/v1/help-requests", json={"device": "kiosk-1", "reason": "red_flag"}).raise_for_status()
        assert box.check_help() == 0  # not yet escalated: the buzzer stays quiet
        assert not any(s.state for s in pins.pin(25).states)
        deadline = time.monotonic() + 8
        while box.check_help() == 0:
            assert time.monotonic() < deadline, "the red flag never escalated"
            time.sleep(0.5)
        time.sleep(1.5)  # five beeps take 3 s; the first two have sounded by now
        assert sum(1 for s in pins.pin(25).states if s.state) >= 2  # the insistent pattern, not one short beep
    finally:
        box.close()
        client.close()
        pins.reset()
